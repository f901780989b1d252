// Forwarding to upstream resolvers, from the daemon's own namespace (plain Node sockets).
//
// UDP: one fresh socket per query (a random source port) and a random query ID, restored in the answer;
// an answer counts only from an upstream we sent to, with our ID and the same question. The first
// upstream gets the query at once, the next one after a share of the deadline (or at once when the
// previous answered SERVFAIL/REFUSED, as Docker moves on for those), and the first usable answer wins.
// TCP (when the client asked over TCP): upstreams one after another, each within its share of what is
// left of the deadline. Past the deadline: null, and the caller answers SERVFAIL.
import dgram from 'node:dgram';
import net from 'node:net';
import crypto from 'node:crypto';
import { RCODE_REFUSED, RCODE_SERVFAIL, rcodeOf } from './wire.ts';

export interface Upstream {
  host: string;
  port: number;
  family: 4 | 6;
}

const parsed = new Map<string, Upstream | null>();

/** `1.2.3.4`, `1.2.3.4:5353`, `::1`, `[::1]:5353`; null for anything else. */
export function parseUpstream(s: string): Upstream | null {
  let u = parsed.get(s);
  if (u !== undefined) return u;
  u = null;
  let host = s.trim(), port = 53;
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(host);
  if (m) {
    host = m[1];
    if (m[2]) port = Number(m[2]);
  } else if (host.includes('.') && host.includes(':')) {
    const i = host.lastIndexOf(':');
    port = Number(host.slice(i + 1));
    host = host.slice(0, i);
  }
  const fam = net.isIP(host.replace(/%.*$/, ''));
  if ((fam === 4 || fam === 6) && Number.isInteger(port) && port > 0 && port < 65536) u = { host, port, family: fam };
  if (parsed.size > 1024) parsed.clear();
  parsed.set(s, u);
  return u;
}

function sameQuestion(a: Buffer, b: Buffer, qEnd: number): boolean {
  if (b.length < qEnd) return false;
  for (let i = 12; i < qEnd; i++) {
    let x = a[i], y = b[i];
    if (x !== y) {
      if (x >= 0x41 && x <= 0x5a) x |= 0x20;
      if (y >= 0x41 && y <= 0x5a) y |= 0x20;
      if (x !== y) return false;
    }
  }
  return (b[4] << 8 | b[5]) === 1;
}

function withId(query: Buffer, id: number): Buffer {
  const out = Buffer.from(query);
  out[0] = id >> 8;
  out[1] = id & 0xff;
  return out;
}

/** A response usable as the final answer (not SERVFAIL/REFUSED, which mean "try the next one"). */
function usable(resp: Buffer): boolean {
  const rc = rcodeOf(resp);
  return rc !== RCODE_SERVFAIL && rc !== RCODE_REFUSED;
}

/**
 * Sends `query` (its first `qEnd` bytes are header+question) to the upstreams over UDP. Resolves with
 * the answer, its ID set back to the client's, or null when none answered usably within `timeoutMs`.
 */
export function forwardUdp(query: Buffer, qEnd: number, ups: Upstream[], timeoutMs: number): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const clientId = query.readUInt16BE(0);
    const id = crypto.randomInt(0, 65536);
    const out = withId(query, id);
    const socks: { 4?: dgram.Socket; 6?: dgram.Socket } = {};
    const sent: Upstream[] = [];
    let failed = 0;
    let next = 0;
    let done = false;
    const step = Math.max(50, Math.floor(timeoutMs / ups.length));
    let stagger: NodeJS.Timeout | undefined;
    const finish = (resp: Buffer | null) => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      clearTimeout(stagger);
      for (const s of [socks[4], socks[6]]) if (s) try { s.close(); } catch { /* closed */ }
      if (resp) { resp[0] = clientId >> 8; resp[1] = clientId & 0xff; }
      resolve(resp);
    };
    const onMessage = (msg: Buffer, rinfo: dgram.RemoteInfo) => {
      if (done || msg.length < 12 || msg.readUInt16BE(0) !== id || !(msg[2] & 0x80)) return;
      if (!sent.some((u) => u.port === rinfo.port && net.isIP(rinfo.address) === u.family && sameAddr(u.host, rinfo.address))) return;
      if (!sameQuestion(out, msg, qEnd)) return;
      if (usable(msg)) return finish(msg);
      failed++;
      if (next < ups.length) sendNext();
      else if (failed >= sent.length) finish(null);
    };
    const sockFor = (fam: 4 | 6): dgram.Socket => {
      let s = socks[fam];
      if (!s) {
        s = dgram.createSocket(fam === 4 ? 'udp4' : 'udp6');
        s.on('message', onMessage);
        s.on('error', () => { /* counted as no answer */ });
        socks[fam] = s;
      }
      return s;
    };
    const sendNext = () => {
      clearTimeout(stagger);
      if (done || next >= ups.length) return;
      const u = ups[next++];
      sent.push(u);
      sockFor(u.family).send(out, u.port, u.host, (err) => {
        if (err && !done) {
          failed++;
          if (next < ups.length) sendNext();
          else if (failed >= sent.length) finish(null);
        }
      });
      if (next < ups.length) stagger = setTimeout(sendNext, step);
    };
    const deadline = setTimeout(() => finish(null), timeoutMs);
    if (ups.length === 0) return finish(null);
    sendNext();
  });
}

function sameAddr(a: string, b: string): boolean {
  if (a === b) return true;
  // IPv6 textual forms differ (zero compression, case, zone)
  return a.includes(':') && b.includes(':') && a.replace(/%.*$/, '').toLowerCase() === b.replace(/%.*$/, '').toLowerCase();
}

/** Over TCP, one upstream after another; same contract as forwardUdp. */
export async function forwardTcp(query: Buffer, qEnd: number, ups: Upstream[], timeoutMs: number): Promise<Buffer | null> {
  const clientId = query.readUInt16BE(0);
  const end = Date.now() + timeoutMs;
  for (let i = 0; i < ups.length; i++) {
    const left = end - Date.now();
    if (left <= 0) break;
    const id = crypto.randomInt(0, 65536);
    const out = withId(query, id);
    const resp = await tcpExchange(ups[i], out, Math.floor(left / (ups.length - i)));
    if (resp && resp.length >= 12 && resp.readUInt16BE(0) === id && resp[2] & 0x80 && sameQuestion(out, resp, qEnd) && usable(resp)) {
      resp[0] = clientId >> 8;
      resp[1] = clientId & 0xff;
      return resp;
    }
  }
  return null;
}

function tcpExchange(u: Upstream, msg: Buffer, timeoutMs: number): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: u.host, port: u.port });
    let buf: Buffer = Buffer.alloc(0);
    let done = false;
    const finish = (r: Buffer | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish(null), timeoutMs);
    sock.on('error', () => finish(null));
    sock.on('close', () => finish(null));
    sock.on('connect', () => {
      const framed = Buffer.allocUnsafe(msg.length + 2);
      framed.writeUInt16BE(msg.length, 0);
      msg.copy(framed, 2);
      sock.write(framed);
    });
    sock.on('data', (d: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      if (buf.length < 2) return;
      const n = buf.readUInt16BE(0);
      if (buf.length >= n + 2) finish(Buffer.from(buf.subarray(2, n + 2)));
    });
  });
}
