// Published host ports: allocation (explicit, or from the kernel's ephemeral range) and holding.
// Like Docker, loom binds each published host port with a socket of its own, so a later host process
// cannot take the port silently and a port already bound on the host is refused up front. The sockets are
// bound but never listen: DNAT in nftables carries the traffic, the socket only reserves the port.
// Node has no API for a TCP socket that binds without listening, hence socket()/bind() through koffi.
import fs from 'node:fs';
import util from 'node:util';
import koffi from 'koffi';
import { conflict, invalidParameter } from '../util/errors.ts';
import { parseIp } from '../ipam/ipam.ts';

const libc = koffi.load('libc.so.6');
const c_socket = libc.func('int socket(int domain, int type, int protocol)');
const c_bind = libc.func('int bind(int fd, const uint8_t *addr, uint32_t len)');
const c_close = libc.func('int close(int fd)');
const c_setsockopt = libc.func('int setsockopt(int fd, int level, int name, const int *val, uint32_t len)');
const errnoLoc = libc.func('int *__errno_location()');

const AF_INET = 2, AF_INET6 = 10, SOCK_STREAM = 1, SOCK_DGRAM = 2, SOCK_CLOEXEC = 0o2000000, IPPROTO_SCTP = 132;
const IPPROTO_IPV6 = 41, IPV6_V6ONLY = 26;
const EADDRINUSE = 98, EADDRNOTAVAIL = 99, EACCES = 13;

/** Go's wording of the errors a bind can meet (Docker prints these), libuv's for anything else. */
function errnoText(e: number): string {
  if (e === EADDRINUSE) return 'address already in use';
  if (e === EADDRNOTAVAIL) return 'cannot assign requested address';
  if (e === EACCES) return 'permission denied';
  try {
    return util.getSystemErrorMessage(-e);
  } catch {
    return `errno ${e}`;
  }
}

function errno(): number {
  return koffi.decode(errnoLoc(), 'int') as number;
}

export type Proto = 'tcp' | 'udp' | 'sctp';

export interface HeldPort {
  proto: Proto;
  hostIp: string; // '' = every address
  port: number;
  fd: number;
}

function sockaddr(ip: string, port: number): { buf: Uint8Array; family: number } {
  const p = ip ? parseIp(ip) : { family: 4 as const, value: 0n };
  if (p.family === 4) {
    const b = Buffer.alloc(16);
    b.writeUInt16LE(AF_INET, 0);
    b.writeUInt16BE(port, 2);
    b.writeUInt32BE(Number(p.value), 4);
    return { buf: b, family: AF_INET };
  }
  const b = Buffer.alloc(28);
  b.writeUInt16LE(AF_INET6, 0);
  b.writeUInt16BE(port, 2);
  for (let i = 0; i < 16; i++) b[8 + i] = Number((p.value >> BigInt((15 - i) * 8)) & 255n);
  return { buf: b, family: AF_INET6 };
}

/** Binds proto/ip/port; returns the fd or the errno. */
function tryBind(proto: Proto, ip: string, port: number): { fd: number } | { err: number } {
  const { buf, family } = sockaddr(ip, port);
  const type = proto === 'udp' ? SOCK_DGRAM : SOCK_STREAM;
  const fd = c_socket(family, type | SOCK_CLOEXEC, proto === 'sctp' ? IPPROTO_SCTP : 0) as number;
  if (fd < 0) return { err: errno() };
  if (family === AF_INET6) c_setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, [1], 4);
  if (c_bind(fd, buf, buf.length) !== 0) {
    const e = errno();
    c_close(fd);
    return { err: e };
  }
  return { fd };
}

export function ephemeralRange(): [number, number] {
  try {
    const [a, b] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (a && b) return [a, b];
  } catch { /* default */ }
  return [32768, 60999];
}

export class PortHolder {
  private readonly held = new Map<string, HeldPort>();
  /** the same holds by proto/port: a conflict check looks at the few holds of one port, not at all of them */
  private readonly byPort = new Map<string, Set<HeldPort>>();
  private next = 0;

  private add(h: HeldPort): void {
    this.held.set(this.key(h.proto, h.hostIp, h.port), h);
    const k = `${h.proto}/${h.port}`;
    let set = this.byPort.get(k);
    if (!set) this.byPort.set(k, (set = new Set()));
    set.add(h);
  }

  private key(proto: Proto, ip: string, port: number): string {
    return `${proto}/${ip || '*'}/${port}`;
  }

  /**
   * Loom's hold that conflicts, within one address family ('' is IPv4's wildcard, '::' IPv6's; the IPv6
   * sockets are V6ONLY): on the same address, on the wildcard, or (for the wildcard) on any address.
   */
  private heldByLoom(proto: Proto, ip: string, port: number): HeldPort | undefined {
    const fam = (a: string) => (a.includes(':') ? 6 : 4);
    const any = (a: string) => a === '' || a === '0.0.0.0' || a === '::';
    for (const h of this.byPort.get(`${proto}/${port}`) ?? []) {
      if (fam(h.hostIp) === fam(ip) && (any(h.hostIp) || any(ip) || h.hostIp === ip)) return h;
    }
    return undefined;
  }

  /**
   * Holds one explicit port (or the first free one of [from, to]); refuses with 409 naming the port, in
   * Docker's words: "Bind for 0.0.0.0:8080 failed: port is already allocated" when loom itself holds it,
   * "failed to bind host port for 0.0.0.0:8080:172.17.0.2:80/tcp: address already in use" when a host
   * process does. `target` (container address:port) only shapes that second message.
   */
  hold(proto: Proto, ip: string, from: number, to = from, target = ''): HeldPort {
    if (ip) parseIp(ip);
    let lastErr = 0;
    let allLoom = true;
    let holder: HeldPort | undefined;
    for (let port = from; port <= to; port++) {
      const h = this.heldByLoom(proto, ip, port);
      if (h) {
        holder ??= h;
        continue;
      }
      allLoom = false;
      const r = tryBind(proto, ip, port);
      if ('fd' in r) {
        const h = { proto, hostIp: ip, port, fd: r.fd };
        this.add(h);
        return h;
      }
      lastErr = r.err;
      if (r.err !== EADDRINUSE && r.err !== EACCES) break;
    }
    const hostText = (a: string) => (a ? (a.includes(':') ? `[${a}]` : a) : '0.0.0.0');
    const host = hostText(ip);
    const ports = from === to ? String(from) : `${from}-${to}`;
    // Docker names the address the port is already allocated on (0.0.0.0 when that is what holds it)
    if (allLoom) throw conflict(`Bind for ${from === to ? hostText(holder!.hostIp) : host}:${ports} failed: port is already allocated`);
    const what = `${host}:${ports}${target ? `:${target}` : ''}/${proto}`;
    const text = `failed to bind host port for ${what}: ${errnoText(lastErr)}`;
    if (lastErr === EADDRNOTAVAIL) throw invalidParameter(text);
    throw conflict(text);
  }

  /** A free port from the kernel's ephemeral range, sequentially as Docker's allocator does. */
  holdAny(proto: Proto, ip: string): HeldPort {
    const [lo, hi] = ephemeralRange();
    const span = hi - lo + 1;
    if (this.next < lo || this.next > hi) this.next = lo;
    for (let i = 0; i < span; i++) {
      const port = lo + ((this.next - lo + i) % span);
      if (this.heldByLoom(proto, ip, port)) continue;
      const r = tryBind(proto, ip, port);
      if ('fd' in r) {
        this.next = port + 1;
        const h = { proto, hostIp: ip, port, fd: r.fd };
        this.add(h);
        return h;
      }
    }
    throw conflict(`Bind for ${ip ? (ip.includes(':') ? `[${ip}]` : ip) : '0.0.0.0'}:${lo}-${hi} failed: all ports are allocated`);
  }

  release(h: HeldPort): void {
    const k = this.key(h.proto, h.hostIp, h.port);
    const cur = this.held.get(k);
    if (cur?.fd === h.fd) {
      this.held.delete(k);
      const set = this.byPort.get(`${h.proto}/${h.port}`);
      set?.delete(cur);
      if (set && !set.size) this.byPort.delete(`${h.proto}/${h.port}`);
      c_close(h.fd);
    }
  }

  releaseAll(): void {
    for (const h of this.held.values()) c_close(h.fd);
    this.held.clear();
    this.byPort.clear();
  }
}

