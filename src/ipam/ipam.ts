// Pure address arithmetic and allocation: no I/O here, so it is unit-tested with plain data.
// IPv4 as 32-bit numbers, IPv6 as bigint; ipaddr.js does the parsing.
import net from 'node:net';
import crypto from 'node:crypto';
import ipaddr from 'ipaddr.js';
import { invalidParameter, conflict } from '../util/errors.ts';

export interface Cidr {
  family: 4 | 6;
  /** the network address as text (host bits cleared) */
  network: string;
  prefix: number;
  /** address as written (host bits possibly set, e.g. a --bip 172.17.0.1/16) */
  address: string;
  base: bigint;
  size: bigint;
}

export function parseIp(s: string): { family: 4 | 6; value: bigint; text: string } {
  if (!ipaddr.isValid(s)) throw invalidParameter(`invalid IP address: ${s}`);
  const a = ipaddr.parse(s);
  if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) {
    return parseIp((a as ipaddr.IPv6).toIPv4Address().toString());
  }
  const bytes = a.toByteArray();
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return { family: a.kind() === 'ipv4' ? 4 : 6, value: v, text: a.toString() };
}

export function ipToString(v: bigint, family: 4 | 6): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => Number((v >> s) & 255n)).join('.');
  const bytes: number[] = [];
  for (let i = 15; i >= 0; i--) bytes.push(Number((v >> BigInt(i * 8)) & 255n));
  return ipaddr.fromByteArray(bytes).toString();
}

export function parseCidr(s: string): Cidr {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(s.trim());
  if (!m) throw invalidParameter(`invalid CIDR address: ${s}`);
  let ip;
  try {
    ip = parseIp(m[1]!);
  } catch {
    throw invalidParameter(`invalid CIDR address: ${s}`);
  }
  const prefix = Number(m[2]);
  const bits = ip.family === 4 ? 32 : 128;
  if (prefix > bits) throw invalidParameter(`invalid CIDR address: ${s}`);
  const size = 1n << BigInt(bits - prefix);
  const base = (ip.value / size) * size;
  return { family: ip.family, network: ipToString(base, ip.family), prefix, address: ip.text, base, size };
}

export const cidrString = (c: Cidr) => `${c.network}/${c.prefix}`;

/**
 * Go's netip.ParsePrefix, which Docker validates network configs with: a plain dotted quad or an IPv6
 * address without zone, then a decimal prefix length in range. null for anything else (ipaddr.js alone
 * would take "10.1/8" or "0xa.0.0.0/8", which Docker refuses).
 */
export function parseCidrStrict(s: string): Cidr | null {
  const m = /^([^/]+)\/(0|[1-9]\d{0,2})$/.exec(s);
  if (!m || !isStrictIp(m[1]!)) return null;
  if (Number(m[2]) > (m[1]!.includes(':') ? 128 : 32)) return null;
  return parseCidr(s);
}

/** Go's netip.ParseAddr: dotted quad (no leading zeros) or IPv6 text, no zone. */
export function isStrictIp(s: string): boolean {
  if (s.includes('%')) return false;
  if (net.isIPv4(s)) return s.split('.').every((p) => p === '0' || !p.startsWith('0'));
  return net.isIPv6(s);
}

export function contains(c: Cidr, ip: string): boolean {
  const p = parseIp(ip);
  return p.family === c.family && p.value >= c.base && p.value < c.base + c.size;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.family === b.family && a.base < b.base + b.size && b.base < a.base + a.size;
}

/** Sub-range containment: inner lies entirely within outer. */
export function within(inner: Cidr, outer: Cidr): boolean {
  return inner.family === outer.family && inner.base >= outer.base && inner.base + inner.size <= outer.base + outer.size;
}

/**
 * The addresses Docker's IPAM holds back in every pool: the network address and, for IPv4, the broadcast
 * address (on subnets large enough to have hosts besides them). Asking for one is "Address already in use".
 */
export function isNetworkOrBroadcast(c: Cidr, ip: string): boolean {
  const p = parseIp(ip);
  if (p.family !== c.family || c.size <= 2n) return false;
  return p.value === c.base || (c.family === 4 && p.value === c.base + c.size - 1n);
}

/** The gateway Docker picks when none is given: the first host address. */
export function firstHost(c: Cidr): string {
  return ipToString(c.base + 1n, c.family);
}

/**
 * Next free address in `subnet` (optionally restricted to `range`), searching round-robin after `after`
 * as Docker's allocator does, so a just-released address is not handed out again at once.
 * The network address and (IPv4) the broadcast address are never handed out.
 */
export function allocate(subnet: Cidr, taken: { has(addr: string): boolean }, opts: { range?: Cidr; after?: string } = {}): string | null {
  const lo = subnet.base + 1n;
  const hi = subnet.family === 4 && subnet.prefix < 31 ? subnet.base + subnet.size - 2n : subnet.base + subnet.size - 1n;
  let first = lo;
  let last = hi;
  if (opts.range) {
    first = opts.range.base > lo ? opts.range.base : lo;
    const rEnd = opts.range.base + opts.range.size - 1n;
    last = rEnd < hi ? rEnd : hi;
  }
  if (first > last) return null;
  let start = first;
  if (opts.after) {
    const a = parseIp(opts.after);
    if (a.family === subnet.family && a.value >= first && a.value < last) start = a.value + 1n;
  }
  // IPv6 subnets are huge; the walk is bounded by the number of taken addresses + 1 in practice.
  for (let v = start; v <= last; v++) {
    const s = ipToString(v, subnet.family);
    if (!taken.has(s)) return s;
  }
  for (let v = first; v < start; v++) {
    const s = ipToString(v, subnet.family);
    if (!taken.has(s)) return s;
  }
  return null;
}

export interface PoolSpec {
  base: string;
  size: number;
}

/** Docker's default address pools (libnetwork ipamutils): 172.17-31.0.0/16 each, then 192.168.0.0/16 cut in /20s. */
export const DOCKER_DEFAULT_POOLS: PoolSpec[] = [
  ...Array.from({ length: 15 }, (_, i) => ({ base: `172.${17 + i}.0.0/16`, size: 16 })),
  { base: '192.168.0.0/16', size: 20 },
];

/**
 * Docker's default IPv6 pool (daemon deriveULABaseNetwork): a /48 unique local prefix whose 40-bit global
 * ID comes from the daemon's id, cut in /64s, so networks created with --ipv6 and no IPv6 subnet get a
 * stable, host-specific ULA subnet.
 */
export function ulaPool(daemonId: string): PoolSpec {
  const sha = crypto.createHash('sha256').update(daemonId).digest();
  const gid = sha.readBigUInt64BE(0) & ((1n << 40n) - 1n);
  const base = (0xfdn << 120n) | (gid << 80n);
  return { base: `${ipToString(base, 6)}/48`, size: 64 };
}

/** Parses the daemon flag `--default-address-pool base=CIDR,size=N`. */
export function parsePoolFlag(s: string): PoolSpec {
  const kv = Object.fromEntries(s.split(',').map((p) => p.split('=', 2).map((x) => x.trim()) as [string, string]));
  if (!kv.base || !kv.size || !/^\d+$/.test(kv.size)) throw invalidParameter(`invalid default address pool: ${s}`);
  const c = parseCidr(kv.base);
  const size = Number(kv.size);
  if (size < c.prefix || size > (c.family === 4 ? 32 : 128)) throw invalidParameter(`invalid default address pool: ${s}`);
  return { base: cidrString(c), size };
}

/** First subnet carved from the pools that overlaps none of `used`. */
export function nextFreePool(pools: PoolSpec[], used: Cidr[]): Cidr | null {
  for (const p of pools) {
    const base = parseCidr(p.base);
    const step = 1n << BigInt((base.family === 4 ? 32 : 128) - p.size);
    for (let v = base.base; v < base.base + base.size; v += step) {
      const cand = parseCidr(`${ipToString(v, base.family)}/${p.size}`);
      if (!used.some((u) => overlaps(u, cand))) return cand;
    }
  }
  return null;
}

/** Docker's container MAC: 02:42 followed by the four bytes of the IPv4 address. */
export function macFromIpv4(ip: string): string {
  const parts = ip.split('.').map(Number);
  return ['02', '42', ...parts.map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

export function requireAddressIn(subnet: Cidr, ip: string, what: string): void {
  if (!contains(subnet, ip)) throw invalidParameter(`${what} ${ip} is not in subnet ${cidrString(subnet)}`);
}

export function exhausted(network: string, id: string, family: 4 | 6 = 4): Error {
  return conflict(`no available IPv${family} addresses on this network's address pools: ${network} (${id})`);
}
