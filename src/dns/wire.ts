// The DNS wire format, only as much of it as the embedded resolver needs, written for the hot path: one
// pass over the question (the name is lower-cased into a scratch buffer and decoded once), a scan of the
// additional section for EDNS, and answers written straight into one buffer, the owner name being a
// compression pointer to the question. No per-record objects; dns-packet is ~2.5x slower for this.

export const TYPE_A = 1;
export const TYPE_PTR = 12;
export const TYPE_MX = 15;
export const TYPE_AAAA = 28;
export const TYPE_OPT = 41;
export const TYPE_ANY = 255;
export const CLASS_IN = 1;

export const RCODE_NOERROR = 0;
export const RCODE_FORMERR = 1;
export const RCODE_SERVFAIL = 2;
export const RCODE_NXDOMAIN = 3;
export const RCODE_NOTIMP = 4;
export const RCODE_REFUSED = 5;
/** Extended (EDNS) rcode: upper 8 bits go into the OPT record. */
export const RCODE_BADVERS = 16;

/** Docker answers its own records with this TTL (libnetwork respTTL). */
export const TTL = 600;
/** UDP payload size we advertise in our OPT record (and the most a client may ask us for). */
export const OUR_UDP_SIZE = 4096;
const HEADER = 12;

/** What the resolver needs from a query; `name` is lower-case, without the trailing dot ('' = the root). */
export interface Query {
  id: number;
  flags: number;
  /** lower-cased name, no trailing dot; null when a label holds a byte that can't be in a name we own ('.', controls) */
  name: string | null;
  qtype: number;
  qclass: number;
  /** offset just past the question: bytes 12..qEnd are copied into every answer */
  qEnd: number;
  /** the query carried an OPT record */
  edns: boolean;
  /** the client's UDP payload size (512 without EDNS) */
  udpSize: number;
  ednsVersion: number;
}

export class FormatError extends Error {}

const scratch = Buffer.allocUnsafe(256);

/**
 * Parses a query. Returns null for packets that must be dropped silently (too short, or a response);
 * throws FormatError for a query too broken to answer anything but FORMERR (the header is intact then).
 */
export function parseQuery(buf: Buffer): Query | null {
  const len = buf.length;
  if (len < HEADER) return null;
  const flags = (buf[2] << 8) | buf[3];
  if (flags & 0x8000) return null; // a response: never answer those (no reflection loops)
  const id = (buf[0] << 8) | buf[1];
  const qd = (buf[4] << 8) | buf[5];
  const q: Query = { id, flags, name: null, qtype: 0, qclass: 0, qEnd: HEADER, edns: false, udpSize: 512, ednsVersion: 0 };
  if (qd !== 1) throw new FormatError('question count is not 1');
  // The question name: labels only (a pointer would point into the header).
  let p = HEADER;
  let n = 0; // bytes in scratch
  let odd = false;
  for (;;) {
    if (p >= len) throw new FormatError('truncated name');
    const l = buf[p++];
    if (l === 0) break;
    if (l > 63) throw new FormatError('compressed or invalid label in question');
    if (p + l > len || n + l + 1 > 255) throw new FormatError('name too long');
    if (n > 0) scratch[n++] = 0x2e;
    for (let i = 0; i < l; i++) {
      let c = buf[p + i];
      if (c >= 0x41 && c <= 0x5a) c |= 0x20;
      else if (c === 0x2e || c < 0x21 || c > 0x7e) odd = true;
      scratch[n++] = c;
    }
    p += l;
  }
  if (p + 4 > len) throw new FormatError('truncated question');
  q.name = odd ? null : scratch.toString('latin1', 0, n);
  q.qtype = (buf[p] << 8) | buf[p + 1];
  q.qclass = (buf[p + 2] << 8) | buf[p + 3];
  p += 4;
  q.qEnd = p;
  // EDNS: look for an OPT record in the additional section (skipping any answer/authority records).
  const an = (buf[6] << 8) | buf[7];
  const ns = (buf[8] << 8) | buf[9];
  const ar = (buf[10] << 8) | buf[11];
  if (ar === 0) return q;
  const total = an + ns + ar;
  for (let r = 0; r < total; r++) {
    p = skipName(buf, p);
    if (p < 0 || p + 10 > len) return q; // garbage after the question: answer without EDNS
    const type = (buf[p] << 8) | buf[p + 1];
    const rdlen = (buf[p + 8] << 8) | buf[p + 9];
    if (type === TYPE_OPT && r >= an + ns) {
      q.edns = true;
      const size = (buf[p + 2] << 8) | buf[p + 3];
      q.udpSize = size < 512 ? 512 : size > OUR_UDP_SIZE ? OUR_UDP_SIZE : size;
      q.ednsVersion = buf[p + 5];
      return q;
    }
    p += 10 + rdlen;
  }
  return q;
}

/** Offset past a (possibly compressed) name at `p`, or -1. */
function skipName(buf: Buffer, p: number): number {
  const len = buf.length;
  for (;;) {
    if (p >= len) return -1;
    const l = buf[p];
    if (l === 0) return p + 1;
    if ((l & 0xc0) === 0xc0) return p + 2;
    if (l > 63) return -1;
    p += l + 1;
  }
}

/** The largest response a client accepts over this transport. */
export function maxSize(q: Query, tcp: boolean): number {
  return tcp ? 65535 : q.udpSize;
}

function writeHeader(out: Buffer, q: Query, rcode: number, an: number, ar: number, tc: boolean): void {
  out[0] = q.id >> 8;
  out[1] = q.id & 0xff;
  // QR, opcode copied, RD copied, TC; RA set (Docker sets RecursionAvailable); CD copied
  out[2] = 0x80 | (q.flags >> 8 & 0x79) | (tc ? 0x02 : 0);
  out[3] = 0x80 | (q.flags & 0x10) | (rcode & 0x0f);
  out[4] = 0; out[5] = 1;
  out[6] = an >> 8; out[7] = an & 0xff;
  out[8] = 0; out[9] = 0;
  out[10] = 0; out[11] = ar;
}

function writeOpt(out: Buffer, p: number, rcode: number): number {
  out[p] = 0; // root
  out.writeUInt16BE(TYPE_OPT, p + 1);
  out.writeUInt16BE(OUR_UDP_SIZE, p + 3);
  out[p + 5] = rcode >> 4; // extended rcode
  out[p + 6] = 0; // version
  out[p + 7] = 0; out[p + 8] = 0; // DO, Z
  out[p + 9] = 0; out[p + 10] = 0; // rdlen
  return p + 11;
}

/** A response with the question and no records: NODATA (NOERROR), NXDOMAIN, SERVFAIL, ... */
export function emptyResponse(buf: Buffer, q: Query, rcode: number): Buffer {
  const opt = q.edns ? 11 : 0;
  const out = Buffer.allocUnsafe(q.qEnd + opt);
  buf.copy(out, HEADER, HEADER, q.qEnd);
  writeHeader(out, q, rcode, 0, opt ? 1 : 0, false);
  if (opt) writeOpt(out, q.qEnd, rcode);
  return out;
}

/** FORMERR/NOTIMP for a query whose question could not be read: header only. */
export function headerOnlyResponse(buf: Buffer, rcode: number): Buffer {
  const out = Buffer.alloc(HEADER);
  out[0] = buf[0]; out[1] = buf[1];
  out[2] = 0x80 | (buf[2] & 0x79);
  out[3] = 0x80 | (rcode & 0x0f);
  return out;
}

/**
 * An answer of address records (A: 4-byte rdata, AAAA: 16) for the question's name. `a` and `aaaa` are
 * addresses as strings. When the answer exceeds `limit`, whole records are dropped from the end and TC set.
 */
export function addressResponse(buf: Buffer, q: Query, a: readonly string[], aaaa: readonly string[], limit: number): Buffer {
  const opt = q.edns ? 11 : 0;
  let na = a.length, n6 = aaaa.length;
  let size = q.qEnd + opt + na * 16 + n6 * 28;
  let tc = false;
  while (size > limit && na + n6 > 0) {
    tc = true;
    if (n6 > 0) { n6--; size -= 28; } else { na--; size -= 16; }
  }
  const out = Buffer.allocUnsafe(size);
  buf.copy(out, HEADER, HEADER, q.qEnd);
  writeHeader(out, q, RCODE_NOERROR, na + n6, opt ? 1 : 0, tc);
  let p = q.qEnd;
  for (let i = 0; i < na; i++) {
    p = rrHead(out, p, TYPE_A, 4);
    if (!writeIPv4(out, p, a[i])) throw new Error(`not an IPv4 address: ${a[i]}`);
    p += 4;
  }
  for (let i = 0; i < n6; i++) {
    p = rrHead(out, p, TYPE_AAAA, 16);
    ipv6Bytes(aaaa[i]).copy(out, p);
    p += 16;
  }
  if (opt) writeOpt(out, p, 0);
  return out;
}

/** A PTR answer naming `target` (a dotted name, trailing dot optional). */
export function ptrResponse(buf: Buffer, q: Query, target: string, limit: number): Buffer {
  const rdata = encodeName(target);
  const opt = q.edns ? 11 : 0;
  const size = q.qEnd + 12 + rdata.length + opt;
  if (size > limit) {
    const out = emptyResponse(buf, q, RCODE_NOERROR);
    out[2] |= 0x02;
    return out;
  }
  const out = Buffer.allocUnsafe(size);
  buf.copy(out, HEADER, HEADER, q.qEnd);
  writeHeader(out, q, RCODE_NOERROR, 1, opt ? 1 : 0, false);
  let p = rrHead(out, q.qEnd, TYPE_PTR, rdata.length);
  rdata.copy(out, p);
  p += rdata.length;
  if (opt) writeOpt(out, p, 0);
  return out;
}

function rrHead(out: Buffer, p: number, type: number, rdlen: number): number {
  out[p] = 0xc0; out[p + 1] = HEADER; // pointer to the question's name
  out[p + 2] = type >> 8; out[p + 3] = type & 0xff;
  out[p + 4] = 0; out[p + 5] = CLASS_IN;
  out[p + 6] = TTL >>> 24; out[p + 7] = (TTL >> 16) & 0xff; out[p + 8] = (TTL >> 8) & 0xff; out[p + 9] = TTL & 0xff;
  out[p + 10] = rdlen >> 8; out[p + 11] = rdlen & 0xff;
  return p + 12;
}

/** Wire form of a dotted name. */
export function encodeName(name: string): Buffer {
  const labels = name.split('.').filter((l) => l.length > 0);
  const parts: Buffer[] = [];
  for (const l of labels) {
    const b = Buffer.from(l, 'latin1');
    if (b.length > 63) throw new Error(`label too long in ${name}`);
    parts.push(Buffer.from([b.length]), b);
  }
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

/** Writes dotted-quad `s` at `p`; false when it is not one. No allocation. */
export function writeIPv4(out: Buffer, p: number, s: string): boolean {
  let octet = 0, digits = 0, k = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x2e) {
      if (digits === 0 || k > 2) return false;
      out[p + k++] = octet;
      octet = 0; digits = 0;
    } else if (c >= 0x30 && c <= 0x39 && digits < 3) {
      octet = octet * 10 + (c - 0x30);
      digits++;
      if (octet > 255) return false;
    } else return false;
  }
  if (digits === 0 || k !== 3) return false;
  out[p + 3] = octet;
  return true;
}

const v6cache = new Map<string, Buffer>();

/** 16 bytes of an IPv6 address in any textual form (cached: container addresses repeat). */
export function ipv6Bytes(s: string): Buffer {
  const hit = v6cache.get(s);
  if (hit) return hit;
  const b = parseIPv6(s);
  if (!b) throw new Error(`not an IPv6 address: ${s}`);
  if (v6cache.size >= 4096) v6cache.clear();
  v6cache.set(s, b);
  return b;
}

export function parseIPv6(s: string): Buffer | null {
  const pct = s.indexOf('%');
  if (pct >= 0) s = s.slice(0, pct);
  const out = Buffer.alloc(16);
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const parse = (part: string): number[] | null => {
    if (part === '') return [];
    const groups = part.split(':');
    const words: number[] = [];
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i];
      if (i === groups.length - 1 && g.includes('.')) {
        const v4 = Buffer.alloc(4);
        if (!writeIPv4(v4, 0, g)) return null;
        words.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
        words.push(parseInt(g, 16));
      }
    }
    return words;
  };
  const head = parse(halves[0]);
  const tail = halves.length === 2 ? parse(halves[1]) : [];
  if (!head || !tail) return null;
  if (halves.length === 1 ? head.length !== 8 : head.length + tail.length > 7) return null;
  head.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  tail.forEach((w, i) => out.writeUInt16BE(w, 16 - (tail.length - i) * 2));
  return out;
}

/** RFC 5952 text of 16 address bytes (lower case, longest run of ≥2 zero groups as '::'). */
export function formatIPv6(b: Buffer): string {
  const w: number[] = [];
  for (let i = 0; i < 16; i += 2) w.push((b[i] << 8) | b[i + 1]);
  let bestStart = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':');
  if (bestStart < 0) return hex(w);
  return `${hex(w.slice(0, bestStart))}::${hex(w.slice(bestStart + bestLen))}`;
}

/**
 * The address a reverse name stands for: `4.3.2.1.in-addr.arpa` → `1.2.3.4`, 32 nibbles + `.ip6.arpa` →
 * RFC 5952 text. null for anything else (partial names, other zones).
 */
export function reverseNameToIp(name: string): string | null {
  if (name.endsWith('.in-addr.arpa')) {
    const parts = name.slice(0, -'.in-addr.arpa'.length).split('.');
    if (parts.length !== 4) return null;
    for (const x of parts) if (!/^(0|[1-9][0-9]{0,2})$/.test(x) || Number(x) > 255) return null;
    return parts.reverse().join('.');
  }
  if (name.endsWith('.ip6.arpa')) {
    const parts = name.slice(0, -'.ip6.arpa'.length).split('.');
    if (parts.length !== 32) return null;
    const b = Buffer.alloc(16);
    for (let i = 0; i < 32; i++) {
      const x = parts[31 - i];
      if (!/^[0-9a-f]$/.test(x)) return null;
      const v = parseInt(x, 16);
      b[i >> 1] |= i & 1 ? v : v << 4;
    }
    return formatIPv6(b);
  }
  return null;
}

/** rcode of a response (header only; extended bits ignored). */
export function rcodeOf(buf: Buffer): number {
  return buf[3] & 0x0f;
}

/**
 * A response over UDP that does not fit the client's limit: the header and question with TC set, so the
 * client retries over TCP (what resolvers do with an oversized upstream answer).
 */
export function truncateForwarded(query: Buffer, q: Query, resp: Buffer): Buffer {
  const out = emptyResponse(query, q, rcodeOf(resp));
  out[2] = resp[2] | 0x02;
  out[3] = resp[3];
  return out;
}
