// In-process rtnetlink: links, addresses and routes, one socket per network namespace.
//
// The `netlink` package is not used. Its typed `rt` layer leaves IFLA_LINKINFO an opaque Buffer, so
// neither a veth peer (a nested ifinfomsg carrying IFLA_NET_NS_FD) nor a bridge can be created through
// it, hence the few messages loom needs are encoded here. Its RawNetlinkSocket was the transport at
// first, but it always calls sendmsg() on the main thread, and rtnetlink does all of its work *inside*
// that syscall: deleting a veth waits there for RCU (~19 ms on this machine), freezing the event loop,
// the embedded DNS server included. The socket is therefore a plain fd driven through koffi:
//   - the kernel answers a request before sendmsg() returns, so most requests are sent and their answers
//     read synchronously (no event-loop round trip: ~60 µs per awaited request here);
//   - slow requests (link deletion) are sent from a libuv pool thread (koffi's async calls) and their
//     answers read when that call completes; the main thread stays free meanwhile;
//   - several requests travel in one datagram: the kernel runs them in order and answers each one.
// Should an answer ever not be there yet, a poll on the fd picks it up.
//
// A socket belongs for its whole life to the namespace it was created in (setns → socket → setns back,
// see netns.ts), which is how a daemon in one namespace configures links inside another.
import koffi from 'koffi';
import ipaddr from 'ipaddr.js';
import fs from 'node:fs';
import os from 'node:os';
import { errnoError, openNetnsFd, withNetns } from './netns.ts';
import type { ErrnoError } from './netns.ts';

/** The daemon's own network namespace, for moveLink (see there). */
export const OWN_NETNS = '/proc/thread-self/ns/net';
export interface LinkInfo { index: number; name: string; kind?: string; mac?: string; mtu: number; up: boolean; master?: number }
export interface RouteInfo { dst: string /* 'default' or CIDR */; gateway?: string; index?: number; table: number; family: 4 | 6 }

const { EEXIST, ENODEV, ESRCH, EADDRNOTAVAIL, EPIPE, EINVAL } = os.constants.errno;

// --- protocol constants (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h) ---
const NETLINK_ROUTE = 0;
const NLMSG_HDRLEN = 16;
const NLMSG_ERROR = 2, NLMSG_DONE = 3;
const NLM_F_REQUEST = 0x1, NLM_F_ACK = 0x4, NLM_F_DUMP_INTR = 0x10, NLM_F_DUMP = 0x300;
const NLM_F_REPLACE = 0x100, NLM_F_EXCL = 0x200, NLM_F_CREATE = 0x400;
const RTM_NEWLINK = 16, RTM_DELLINK = 17, RTM_GETLINK = 18, RTM_SETLINK = 19;
const RTM_NEWADDR = 20, RTM_DELADDR = 21, RTM_GETADDR = 22;
const RTM_NEWROUTE = 24, RTM_DELROUTE = 25, RTM_GETROUTE = 26;
const AF_UNSPEC = 0, AF_INET = 2, AF_INET6 = 10, AF_BRIDGE = 7;
const IFLA_PROTINFO = 12, IFLA_BRPORT_MODE = 4, NLA_F_NESTED = 0x8000;
const IFF_UP = 0x1;
const IFLA_ADDRESS = 1, IFLA_IFNAME = 3, IFLA_MTU = 4, IFLA_MASTER = 10, IFLA_LINKINFO = 18, IFLA_NET_NS_FD = 28, IFLA_EXT_MASK = 29;
const IFLA_AF_SPEC = 26, IFLA_INET6_ADDR_GEN_MODE = 8, IN6_ADDR_GEN_MODE_NONE = 1;
const IFLA_INFO_KIND = 1, IFLA_INFO_DATA = 2;
const IFLA_LINK = 5;
const IFLA_GROUP = 27;
const VETH_INFO_PEER = 1;
const RTEXT_FILTER_SKIP_STATS = 1 << 3; // link dumps without the (large) counters
const IFA_ADDRESS = 1, IFA_LOCAL = 2, IFA_BROADCAST = 4, IFA_FLAGS = 8;
const IFA_F_NODAD = 0x02;
const RTA_DST = 1, RTA_OIF = 4, RTA_GATEWAY = 5, RTA_TABLE = 15;
const RT_TABLE_MAIN = 254;
const RTPROT_BOOT = 3;
const RT_SCOPE_UNIVERSE = 0, RT_SCOPE_LINK = 253, RT_SCOPE_HOST = 254, RT_SCOPE_NOWHERE = 255;
const RTN_UNICAST = 1;
const RTM_F_CLONED = 0x200;
const LOOPBACK_IFINDEX = 1; // the kernel gives lo index 1 in every namespace
const NLA_TYPE_MASK = 0x3fff; // strips NLA_F_NESTED / NLA_F_NET_BYTEORDER

// Requests sent but not yet answered, per socket. Answers wait in the socket's receive buffer until read;
// past a few dozen it could overflow (ENOBUFS) and answers would be lost.
const MAX_IN_FLIGHT = 32;

// --- encoding ---

/** Builds one netlink message: header, fixed struct, then attributes (nested ones by begin/end). */
class Msg {
  buf: Buffer;
  len: number;
  constructor(type: number, flags: number, structLen: number) {
    this.buf = Buffer.alloc(256);
    this.len = NLMSG_HDRLEN + structLen;
    this.buf.writeUInt16LE(type, 4);
    this.buf.writeUInt16LE(flags | NLM_F_REQUEST, 6);
  }
  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const b = Buffer.alloc(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(b, 0, 0, this.len);
    this.buf = b;
  }
  /** Offset of the fixed struct (ifinfomsg, ifaddrmsg, rtmsg) that follows the header. */
  get body(): number { return NLMSG_HDRLEN; }
  attr(type: number, data: Uint8Array): this {
    const alen = 4 + data.length;
    this.room((alen + 3) & ~3);
    this.buf.writeUInt16LE(alen, this.len);
    this.buf.writeUInt16LE(type, this.len + 2);
    this.buf.set(data, this.len + 4);
    this.len += (alen + 3) & ~3; // Buffer.alloc zero-fills the padding
    return this;
  }
  u32(type: number, v: number): this {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32LE(v >>> 0, 0);
    return this.attr(type, b);
  }
  str(type: number, s: string): this {
    return this.attr(type, Buffer.from(s + '\0'));
  }
  begin(type: number): number {
    this.room(4);
    const at = this.len;
    this.buf.writeUInt16LE(type, at + 2);
    this.len += 4;
    return at;
  }
  end(at: number): void {
    this.buf.writeUInt16LE(this.len - at, at);
  }
  /** Raw bytes inside a nest (the nested ifinfomsg of a veth peer). */
  bytes(n: number): number {
    this.room(n);
    const at = this.len;
    this.len += n;
    return at;
  }
  finish(seq: number): Buffer {
    this.buf.writeUInt32LE(this.len, 0);
    this.buf.writeUInt32LE(seq, 8);
    return this.buf.subarray(0, this.len);
  }
}

function ifinfo(m: Msg, at: number, index: number, flags = 0, change = 0, family = AF_UNSPEC): void {
  m.buf.writeUInt8(family, at);
  m.buf.writeInt32LE(index, at + 4);
  m.buf.writeUInt32LE(flags, at + 8);
  m.buf.writeUInt32LE(change, at + 12);
}

function linkMsg(type: number, flags: number, index: number, ifFlags = 0, ifChange = 0): Msg {
  const m = new Msg(type, flags, 16);
  ifinfo(m, m.body, index, ifFlags, ifChange);
  return m;
}

/** A link addressed by index, or by name (index 0 + IFLA_IFNAME, which the kernel looks up). */
function linkRef(type: number, flags: number, nameOrIndex: string | number, ifFlags = 0, ifChange = 0): Msg {
  if (typeof nameOrIndex === 'number') return linkMsg(type, flags, nameOrIndex, ifFlags, ifChange);
  return linkMsg(type, flags, 0, ifFlags, ifChange).str(IFLA_IFNAME, nameOrIndex);
}

/** IFLA_AF_SPEC asking for no IPv6 link-local address on the link (`ip link set X addrgenmode none`). */
function noLinkLocal(m: Msg): Msg {
  const spec = m.begin(IFLA_AF_SPEC);
  const inet6 = m.begin(AF_INET6);
  m.attr(IFLA_INET6_ADDR_GEN_MODE, Uint8Array.of(IN6_ADDR_GEN_MODE_NONE));
  m.end(inet6);
  m.end(spec);
  return m;
}

/**
 * `bridge link set dev X hairpin on`: the bridge may send a frame back out of the port it came in on.
 * A container reaching its own published port through a host address needs it: with br_netfilter the
 * DNATed packet is bridged back to the port it arrived on (Docker sets it too when it runs without its
 * userland proxy, as loom always does).
 */
function hairpinOn(index: number): Msg {
  const m = new Msg(RTM_SETLINK, NLM_F_ACK, 16);
  ifinfo(m, m.body, index, 0, 0, AF_BRIDGE);
  const pi = m.begin(IFLA_PROTINFO | NLA_F_NESTED);
  m.attr(IFLA_BRPORT_MODE, Uint8Array.of(1));
  m.end(pi);
  return m;
}

function macBytes(mac: string): Buffer {
  const parts = mac.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) {
    throw errnoError(`invalid MAC address ${JSON.stringify(mac)}`, EINVAL);
  }
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

interface Ip { family: 4 | 6; bytes: Uint8Array }
function parseIp(s: string): Ip {
  let a: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    a = ipaddr.parse(s);
  } catch {
    throw errnoError(`invalid IP address ${JSON.stringify(s)}`, EINVAL);
  }
  return a.kind() === 'ipv4' ? { family: 4, bytes: Uint8Array.from(a.toByteArray()) } : { family: 6, bytes: Uint8Array.from(a.toByteArray()) };
}
interface Cidr extends Ip { prefix: number }
function parseCidr(s: string): Cidr {
  const slash = s.indexOf('/');
  const ip = parseIp(slash < 0 ? s : s.slice(0, slash));
  const max = ip.family === 4 ? 32 : 128;
  const prefix = slash < 0 ? max : Number(s.slice(slash + 1));
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || (slash >= 0 && !/^\d+$/.test(s.slice(slash + 1)))) {
    throw errnoError(`invalid CIDR ${JSON.stringify(s)}`, EINVAL);
  }
  return { ...ip, prefix };
}
function fmtIp(b: Buffer): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  return ipaddr.fromByteArray(Array.from(b)).toString();
}
const famOf = (f: 4 | 6) => (f === 4 ? AF_INET : AF_INET6);

/** One IFLA_INFO_DATA attribute of a link kind. */
export interface LinkData { type: number; value: Uint8Array }
const u16 = (type: number, v: number): LinkData => ({ type, value: Uint8Array.from([v & 0xff, (v >> 8) & 0xff]) });
const u32a = (type: number, v: number): LinkData => ({ type, value: Uint8Array.from([v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff]) });
/** linux/if_link.h MACVLAN_MODE_*: the four port types of a macvlan link */
export const MACVLAN_MODES = { private: 1, vepa: 2, bridge: 4, passthru: 8 } as const;
/** IFLA_MACVLAN_MODE */
export const macvlanData = (mode: keyof typeof MACVLAN_MODES): LinkData[] => [u32a(1, MACVLAN_MODES[mode])];
/** linux/if_link.h IPVLAN_MODE_* and IPVLAN_F_* (bridge is no flag: 0) */
export const IPVLAN_MODES = { l2: 0, l3: 1, l3s: 2 } as const;
export const IPVLAN_FLAGS = { bridge: 0, private: 1, vepa: 2 } as const;
/** IFLA_IPVLAN_MODE, IFLA_IPVLAN_FLAGS */
export const ipvlanData = (mode: keyof typeof IPVLAN_MODES, flag: keyof typeof IPVLAN_FLAGS): LinkData[] => [u16(1, IPVLAN_MODES[mode]), u16(2, IPVLAN_FLAGS[flag])];
/** IFLA_VLAN_ID */
export const vlanData = (id: number): LinkData[] => [u16(1, id)];

// --- decoding ---

/** Attributes of one level, indexed by type (the last one wins; loom reads no repeated attributes). */
function attrs(buf: Buffer, start: number, end: number): (Buffer | undefined)[] {
  const out: (Buffer | undefined)[] = [];
  let p = start;
  while (p + 4 <= end) {
    const len = buf.readUInt16LE(p);
    if (len < 4 || p + len > end) break;
    out[buf.readUInt16LE(p + 2) & NLA_TYPE_MASK] = buf.subarray(p + 4, p + len);
    p += (len + 3) & ~3;
  }
  return out;
}
const cstr = (b: Buffer) => {
  const z = b.indexOf(0);
  return b.toString('latin1', 0, z < 0 ? b.length : z);
};

function parseLink(m: Buffer): LinkInfo {
  const flags = m.readUInt32LE(NLMSG_HDRLEN + 8);
  const a = attrs(m, NLMSG_HDRLEN + 16, m.length);
  const info: LinkInfo = {
    index: m.readInt32LE(NLMSG_HDRLEN + 4),
    name: a[IFLA_IFNAME] ? cstr(a[IFLA_IFNAME]!) : '',
    mtu: a[IFLA_MTU] ? a[IFLA_MTU]!.readUInt32LE(0) : 0,
    up: (flags & IFF_UP) !== 0,
  };
  if (a[IFLA_LINKINFO]) {
    const li = a[IFLA_LINKINFO]!;
    const kind = attrs(li, 0, li.length)[IFLA_INFO_KIND];
    if (kind) info.kind = cstr(kind);
  }
  if (a[IFLA_ADDRESS]) info.mac = Array.from(a[IFLA_ADDRESS]!, (x) => x.toString(16).padStart(2, '0')).join(':');
  if (a[IFLA_MASTER]) info.master = a[IFLA_MASTER]!.readUInt32LE(0);
  return info;
}

// --- the socket: sequence numbers, batching, flow control ---

const libc = koffi.load('libc.so.6');

/**
 * koffi runs at most `max_async_calls` (256) asynchronous calls at once in the whole process and throws
 * beyond that ("Too many asynchronous calls are running"), from inside a socket's pump, which would leave
 * that socket's requests unanswered. Every socket's offloaded sends (link deletions: each holds a pool
 * thread while the kernel waits for RCU) share this budget instead; a socket whose next request would go
 * over it waits until one comes back. Seen: 1,000 containers' namespaces deleted at once.
 */
const OFFLOAD_LIMIT = 64;
let offloadedAll = 0;
const offloadWaiters = new Set<() => void>();
function offloadSlotFreed(): void {
  for (const wake of offloadWaiters) {
    if (offloadedAll >= OFFLOAD_LIMIT) return;
    offloadWaiters.delete(wake);
    wake();
  }
}
const c_socket = libc.func('int socket(int domain, int type, int protocol)');
const c_send = libc.func('long send(int fd, const void *buf, unsigned long len, int flags)');
const c_recv = libc.func('long recv(int fd, void *buf, unsigned long len, int flags)');
const c_close = libc.func('int close(int fd)');
const c_setsockopt = libc.func('int setsockopt(int fd, int level, int name, const void *val, uint32_t len)');

const AF_NETLINK = 16, SOCK_RAW = 3, SOCK_CLOEXEC = 0o2000000;
const MSG_DONTWAIT = 0x40, MSG_TRUNC = 0x20;
const SOL_NETLINK = 270, NETLINK_CAP_ACK = 10, NETLINK_EXT_ACK = 11;
const NLM_F_ACK_TLVS = 0x200, NLMSGERR_ATTR_MSG = 1;
const { EAGAIN, EINTR } = os.constants.errno;

// One receive buffer for every socket: all reads happen synchronously on the main thread, and whatever
// is kept of a datagram is copied out of it. Kernel dump chunks stay below 32 KiB.
let rbuf = Buffer.alloc(64 * 1024);

const KIND_ACK = 0, KIND_GET = 1, KIND_DUMP = 2;

interface Spec {
  msg: Msg;
  kind: number;
  what: string; // "create veth veth1234567": the operation and its object, for error messages
  offload?: boolean; // slow in the kernel: send from a pool thread
}

interface Req extends Spec {
  seq: number;
  parts: Buffer[];
  intr: boolean;
  resolve(parts: Buffer[]): void;
  reject(e: Error): void;
}

// Answers arrive synchronously, so a chain of awaits on them (a loop attaching 1000 containers) would
// never return to the event loop: no I/O, timers or signals until it ends. Settling is therefore deferred
// to the next turn of the loop once the main thread has run for MAX_BUSY_MS without one.
const MAX_BUSY_MS = 5;
let burstStart = 0;
let turnPending = false;
function mustYield(): boolean {
  const now = performance.now();
  if (!turnPending) {
    // The loop has turned since the last check: a new burst of work starts here.
    turnPending = true;
    burstStart = now;
    setImmediate(() => { turnPending = false; });
    return false;
  }
  return now - burstStart > MAX_BUSY_MS;
}

// A socket keeps its namespace alive: one dropped without close() would pin a deleted container's
// namespace (and its veth) for as long as the fd stays open. Collected sockets are closed here.
const unclosed = new FinalizationRegistry<number>((fd) => c_close(fd));

class Conn {
  private fd: number;
  private readonly pending = new Map<number, Req>();
  private readonly waiting: Req[] = [];
  private seq = (Math.random() * 0x7fffffff) >>> 0;
  private dumping = false; // the kernel allows one dump per socket at a time (EBUSY otherwise)
  private offloaded = 0; // sends running on pool threads; the fd is closed only once they are back
  private readonly pumpSoon = (): void => {
    if (!this.closed) this.pump();
  };
  private poller: ReturnType<typeof koffi.node.poll> | null = null;
  private closed = false;

  constructor(fd: number) {
    this.fd = fd;
    unclosed.register(this, fd, this);
  }

  static open(what: string): Conn {
    const fd = c_socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE) as number;
    if (fd < 0) throw errnoError(`open rtnetlink socket${what}`, koffi.errno());
    // Errors carry the kernel's own explanation (extended ack), and not a copy of the whole request.
    const one = Buffer.from(Int32Array.of(1).buffer);
    c_setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, one, 4);
    c_setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, one, 4);
    return new Conn(fd);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.failAll(EPIPE, 'netlink socket closed');
    this.poller?.close();
    this.poller = null;
    if (this.offloaded === 0) this.closeFd();
  }

  private closeFd(): void {
    if (this.fd >= 0) c_close(this.fd);
    this.fd = -1;
  }

  /** Queues the requests in order; they go out batched into as few datagrams as flow control allows. */
  submit(specs: Spec[]): Promise<Buffer[]>[] {
    const out = specs.map((s) => new Promise<Buffer[]>((resolve, reject) => {
      if (this.closed) return reject(Object.assign(errnoError(s.what, EPIPE), { message: `${s.what}: netlink socket closed` }));
      this.waiting.push({ ...s, seq: 0, parts: [], intr: false, resolve, reject });
    }));
    this.pump();
    return out;
  }

  one(spec: Spec): Promise<Buffer[]> {
    return this.submit([spec])[0];
  }

  private pump(): void {
    while (this.waiting.length && this.pending.size < MAX_IN_FLIGHT && !this.closed) {
      const batch: Req[] = [];
      const bufs: Buffer[] = [];
      while (this.waiting.length && this.pending.size < MAX_IN_FLIGHT) {
        const r = this.waiting[0];
        if (r.kind === KIND_DUMP) {
          if (this.dumping) break;
          this.dumping = true;
        }
        // An offloaded request travels alone, so that nothing quick waits behind it on the pool thread.
        if (r.offload && batch.length) break;
        // ... and only while the process has a slot for it (see OFFLOAD_LIMIT); otherwise it waits here
        if (r.offload && offloadedAll >= OFFLOAD_LIMIT) {
          offloadWaiters.add(this.pumpSoon);
          break;
        }
        this.waiting.shift();
        this.seq = (this.seq + 1) >>> 0 || 1;
        r.seq = this.seq;
        this.pending.set(r.seq, r);
        batch.push(r);
        bufs.push(r.msg.finish(r.seq));
        if (r.offload || r.kind === KIND_DUMP) break; // a dump's answer is produced while it is read
      }
      if (!batch.length) break;
      const buf = bufs.length === 1 ? bufs[0] : Buffer.concat(bufs);
      if (batch[0].offload) {
        this.offloaded++;
        offloadedAll++;
        c_send.async(this.fd, buf, buf.length, 0, (err: unknown, n: number) => {
          this.offloaded--;
          offloadedAll--;
          queueMicrotask(offloadSlotFreed);
          if (this.closed) {
            if (this.offloaded === 0) this.closeFd();
            return;
          }
          // errno of a pool thread is out of reach; a failed send to the kernel is next to impossible.
          if (err || n < 0) this.failBatch(batch, EPIPE);
          this.settle();
        });
        continue;
      }
      let n: number;
      do n = c_send(this.fd, buf, buf.length, 0) as number; while (n < 0 && koffi.errno() === EINTR);
      if (n < 0) this.failBatch(batch, koffi.errno());
      this.drain();
    }
    this.watch();
  }

  /** After an offloaded send: read what it produced, then send what waited. */
  private settle(): void {
    this.drain();
    this.pump();
  }

  /** Reads every answer already queued on the socket, without blocking. */
  private drain(): void {
    for (;;) {
      const n = c_recv(this.fd, rbuf, rbuf.length, MSG_DONTWAIT | MSG_TRUNC) as number;
      if (n < 0) {
        const errno = koffi.errno();
        if (errno === EINTR) continue;
        if (errno === EAGAIN) return;
        // ENOBUFS: answers were dropped; whatever is pending will never hear back.
        this.failAll(errno, null);
        return;
      }
      if (n > rbuf.length) {
        rbuf = Buffer.alloc(n * 2); // this datagram is lost; the next one fits
        this.failAll(os.constants.errno.EMSGSIZE, null);
        continue;
      }
      this.receive(rbuf, n);
    }
  }

  /** Falls back to waiting for readability while answers are outstanding (not expected with rtnetlink). */
  private watch(): void {
    const idle = this.pending.size === 0 || this.offloaded > 0;
    if (idle) {
      this.poller?.stop();
      return;
    }
    if (!this.poller) this.poller = koffi.node.poll(this.fd, { readable: true }, () => this.settle());
    else this.poller.start({ readable: true }, () => this.settle());
  }

  private failBatch(batch: Req[], errno: number): void {
    for (const r of batch) if (this.pending.has(r.seq)) this.done(r, errnoError(r.what, errno));
  }

  private failAll(errno: number, text: string | null): void {
    const all = [...this.pending.values(), ...this.waiting];
    this.pending.clear();
    this.waiting.length = 0;
    this.dumping = false;
    for (const r of all) {
      const e = errnoError(r.what, errno);
      if (text) e.message = `${r.what}: ${text}`;
      r.reject(e);
    }
    if (this.closed) unclosed.unregister(this);
  }

  private done(r: Req, err: Error | null): void {
    this.pending.delete(r.seq);
    if (r.kind === KIND_DUMP) this.dumping = false;
    const settle = err ? () => r.reject(err) : () => r.resolve(r.parts);
    if (mustYield()) setImmediate(settle);
    else settle();
  }

  private receive(buf: Buffer, end: number): void {
    let p = 0;
    while (p + NLMSG_HDRLEN <= end) {
      const len = buf.readUInt32LE(p);
      if (len < NLMSG_HDRLEN || p + len > end) break;
      const type = buf.readUInt16LE(p + 4);
      const flags = buf.readUInt16LE(p + 6);
      const r = this.pending.get(buf.readUInt32LE(p + 8));
      if (r) {
        if (type === NLMSG_ERROR) {
          const errno = -buf.readInt32LE(p + NLMSG_HDRLEN);
          this.done(r, errno ? withExtack(errnoError(r.what, errno), buf, p, len, flags) : null);
        } else if (type === NLMSG_DONE) {
          const errno = len >= NLMSG_HDRLEN + 4 ? -buf.readInt32LE(p + NLMSG_HDRLEN) : 0;
          if (errno) this.done(r, withExtack(errnoError(r.what, errno), buf, p, len, flags));
          else if (r.intr) this.done(r, Object.assign(errnoError(r.what, EAGAIN), { dumpInterrupted: true }));
          else this.done(r, null);
        } else {
          if (flags & NLM_F_DUMP_INTR) r.intr = true;
          r.parts.push(Buffer.from(buf.subarray(p, p + len))); // copied: the receive buffer is reused
          if (r.kind === KIND_GET) this.done(r, null);
        }
      }
      p += (len + 3) & ~3;
    }
  }
}

/** Appends the kernel's extended-ack text ("Master device not found"), when it gave one. */
function withExtack(e: ErrnoError, buf: Buffer, p: number, len: number, flags: number): ErrnoError {
  if (!(flags & NLM_F_ACK_TLVS)) return e;
  // NETLINK_CAP_ACK: error code, then only the header of the request, then the attributes.
  const at = p + NLMSG_HDRLEN + 4 + NLMSG_HDRLEN;
  const msg = attrs(buf, at, p + len)[NLMSGERR_ATTR_MSG];
  if (msg) e.message += ` (${cstr(msg)})`;
  return e;
}

/** Dumps restart when the kernel flags them as interrupted by a concurrent change. */
async function dump(c: Conn, spec: () => Spec): Promise<Buffer[]> {
  for (let i = 0; ; i++) {
    try {
      return await c.one(spec());
    } catch (e) {
      if (i >= 4 || !(e as { dumpInterrupted?: boolean }).dumpInterrupted) throw e;
    }
  }
}

const ignoring = (...codes: number[]) => (e: ErrnoError) => {
  if (!codes.includes(e.errno)) throw e;
};

function addrMsg(type: number, flags: number, index: number, c: Cidr, nodad: boolean): Msg {
  const m = new Msg(type, flags, 8);
  const b = m.body;
  const loopback = c.family === 4 ? c.bytes[0] === 127 : c.bytes.every((x, i) => x === (i === 15 ? 1 : 0));
  m.buf.writeUInt8(famOf(c.family), b);
  m.buf.writeUInt8(c.prefix, b + 1);
  m.buf.writeUInt8(nodad ? IFA_F_NODAD : 0, b + 2);
  m.buf.writeUInt8(loopback ? RT_SCOPE_HOST : RT_SCOPE_UNIVERSE, b + 3);
  m.buf.writeUInt32LE(index, b + 4);
  m.attr(IFA_LOCAL, c.bytes).attr(IFA_ADDRESS, c.bytes);
  if (type === RTM_NEWADDR) {
    // `brd +`: the all-ones host part, for the subnets that have a broadcast address at all.
    if (c.family === 4 && c.prefix <= 30) {
      const v = ((c.bytes[0] << 24) | (c.bytes[1] << 16) | (c.bytes[2] << 8) | c.bytes[3]) | (c.prefix === 0 ? -1 : (1 << (32 - c.prefix)) - 1);
      const brd = Buffer.allocUnsafe(4);
      brd.writeInt32BE(v | 0, 0);
      m.attr(IFA_BROADCAST, brd);
    }
    if (nodad) m.u32(IFA_FLAGS, IFA_F_NODAD);
  }
  return m;
}

interface RouteSpec { dst: string; gateway?: string; index?: number; family?: 4 | 6; replace?: boolean }

function routeMsg(type: number, flags: number, r: RouteSpec): { msg: Msg; what: string } {
  const dst = r.dst === 'default' ? null : parseCidr(r.dst);
  const gw = r.gateway ? parseIp(r.gateway) : null;
  const family = r.family ?? dst?.family ?? gw?.family ?? 4;
  const what = `${r.dst}${r.gateway ? ` via ${r.gateway}` : ''}${r.index ? ` dev ${r.index}` : ''}`;
  if ((dst && dst.family !== family) || (gw && gw.family !== family)) {
    throw errnoError(`route ${what}: mixed address families`, EINVAL);
  }
  const m = new Msg(type, flags, 12);
  const b = m.body;
  const del = type === RTM_DELROUTE;
  m.buf.writeUInt8(famOf(family), b);
  m.buf.writeUInt8(dst ? dst.prefix : 0, b + 1);
  m.buf.writeUInt8(RT_TABLE_MAIN, b + 4);
  // Deletion matches any protocol/type/scope (zero / NOWHERE), as `ip route del` does.
  m.buf.writeUInt8(del ? 0 : RTPROT_BOOT, b + 5);
  m.buf.writeUInt8(del ? RT_SCOPE_NOWHERE : gw || family === 6 ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK, b + 6);
  m.buf.writeUInt8(del ? 0 : RTN_UNICAST, b + 7);
  if (dst && dst.prefix > 0) m.attr(RTA_DST, dst.bytes);
  if (gw) m.attr(RTA_GATEWAY, gw.bytes);
  if (r.index) m.u32(RTA_OIF, r.index);
  return { msg: m, what };
}

// --- the public API ---

export class Rtnl {
  private readonly c: Conn;
  private readonly where: string;

  private constructor(c: Conn, where: string) {
    this.c = c;
    this.where = where;
  }

  /** A socket in the namespace at `netnsPath` (the caller's namespace when omitted); it stays bound there. */
  static open(netnsPath?: string): Rtnl {
    const where = netnsPath ? ` in ${netnsPath}` : '';
    return new Rtnl(netnsPath ? withNetns(netnsPath, () => Conn.open(where)) : Conn.open(where), where);
  }

  close(): void {
    this.c.close();
  }

  private w(s: string): string {
    return s + this.where;
  }

  async getLink(nameOrIndex: string | number): Promise<LinkInfo | null> {
    const m = linkRef(RTM_GETLINK, 0, nameOrIndex).u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
    try {
      const [reply] = await this.c.one({ msg: m, kind: KIND_GET, what: this.w(`get link ${nameOrIndex}`) });
      return reply ? parseLink(reply) : null;
    } catch (e) {
      if ((e as ErrnoError).errno === ENODEV) return null;
      throw e;
    }
  }

  async listLinks(): Promise<LinkInfo[]> {
    const parts = await dump(this.c, () => ({
      msg: linkMsg(RTM_GETLINK, NLM_F_DUMP, 0).u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS),
      kind: KIND_DUMP,
      what: this.w('list links'),
    }));
    return parts.filter((p) => p.readUInt16LE(4) === RTM_NEWLINK).map(parseLink);
  }

  /** Sends a create request and, in the same datagram, a lookup of the new link by name: one round trip. */
  private async createAndIndex(m: Msg, name: string, what: string): Promise<number> {
    const [created, got] = this.c.submit([
      { msg: m, kind: KIND_ACK, what },
      { msg: linkRef(RTM_GETLINK, 0, name), kind: KIND_GET, what: this.w(`get link ${name}`) },
    ]);
    got.catch(() => {}); // fails only when the creation did; that error is the one reported
    await created;
    return parseLink((await got)[0]).index;
  }

  /**
   * A link of `kind` (macvlan, ipvlan, vlan, dummy...) on the lower device `link` (an index in this
   * socket's namespace). With `netnsPath` it is created directly inside that namespace (IFLA_NET_NS_FD:
   * the kernel looks the lower device up here and registers the new one there), so nothing is moved.
   * `data` are the kind's IFLA_INFO_DATA attributes (see macvlanData, ipvlanData, vlanData). Returns
   * the new index when the link stays in this namespace, 0 otherwise.
   */
  async createLink(opts: { name: string; kind: string; link?: number; netnsPath?: string; mac?: string; mtu?: number; up?: boolean; data?: LinkData[] }): Promise<number> {
    const what = this.w(`create ${opts.kind} ${opts.name}${opts.netnsPath ? ` in ${opts.netnsPath}` : ''}`);
    const m = linkMsg(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, 0, opts.up ? IFF_UP : 0, opts.up ? IFF_UP : 0);
    m.str(IFLA_IFNAME, opts.name);
    if (opts.link) m.u32(IFLA_LINK, opts.link);
    if (opts.mtu) m.u32(IFLA_MTU, opts.mtu);
    if (opts.mac) m.attr(IFLA_ADDRESS, macBytes(opts.mac));
    const li = m.begin(IFLA_LINKINFO);
    m.str(IFLA_INFO_KIND, opts.kind);
    if (opts.data?.length) {
      const d = m.begin(IFLA_INFO_DATA);
      for (const a of opts.data) m.attr(a.type, a.value);
      m.end(d);
    }
    m.end(li);
    if (!opts.netnsPath) return this.createAndIndex(m, opts.name, what);
    let fd: number;
    try {
      fd = openNetnsFd(opts.netnsPath);
    } catch (e) {
      throw errnoError(`${what}: namespace ${opts.netnsPath}`, (e as ErrnoError).errno);
    }
    try {
      m.u32(IFLA_NET_NS_FD, fd);
      // the fd is read when the kernel processes the request: open until the answer
      await this.c.one({ msg: m, kind: KIND_ACK, what });
    } finally {
      fs.closeSync(fd);
    }
    return 0;
  }

  /**
   * Moves a link of this namespace into the one at `netnsPath`, renamed to `newName` there, in one
   * request: the kernel changes the namespace, then the name. The link arrives down. Costs ~18 ms here;
   * loom moves a link only when a remote plugin hands one over. The daemon's own namespace is
   * OWN_NETNS: opened here on the main thread, which is never inside another namespace outside a
   * synchronous withNetns() (a pid would be resolved later, on the pool thread that sends).
   */
  async moveLink(nameOrIndex: string | number, netnsPath: string, newName?: string): Promise<void> {
    const what = this.w(`move link ${nameOrIndex} to ${netnsPath}${newName ? ` as ${newName}` : ''}`);
    // addressed by index: IFLA_IFNAME is then the new name
    const index = typeof nameOrIndex === 'number' ? nameOrIndex : (await this.getLink(nameOrIndex))?.index;
    if (!index) throw errnoError(what, ENODEV);
    const m = linkMsg(RTM_SETLINK, NLM_F_ACK, index);
    if (newName) m.str(IFLA_IFNAME, newName);
    const fd = openNetnsFd(netnsPath);
    try {
      m.u32(IFLA_NET_NS_FD, fd);
      await this.c.one({ msg: m, kind: KIND_ACK, what, offload: true });
    } finally {
      fs.closeSync(fd);
    }
  }

  async createBridge(name: string, opts: { mtu?: number; mac?: string; up?: boolean } = {}): Promise<number> {
    const m = linkMsg(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, 0, opts.up ? IFF_UP : 0, opts.up ? IFF_UP : 0);
    m.str(IFLA_IFNAME, name);
    if (opts.mtu) m.u32(IFLA_MTU, opts.mtu);
    if (opts.mac) m.attr(IFLA_ADDRESS, macBytes(opts.mac));
    const li = m.begin(IFLA_LINKINFO);
    m.str(IFLA_INFO_KIND, 'bridge');
    m.end(li);
    return this.createAndIndex(m, name, this.w(`create bridge ${name}`));
  }

  /**
   * Changes IFLA_INFO_DATA attributes of an existing link of `kind` (e.g. bridgeNfCallData on a bridge):
   * RTM_NEWLINK without NLM_F_CREATE, as `ip link set DEV type bridge ...` sends.
   */
  async setLinkData(index: number, kind: string, data: LinkData[]): Promise<void> {
    const m = linkMsg(RTM_NEWLINK, NLM_F_ACK, index);
    const li = m.begin(IFLA_LINKINFO);
    m.str(IFLA_INFO_KIND, kind);
    const d = m.begin(IFLA_INFO_DATA);
    for (const a of data) m.attr(a.type, a.value);
    m.end(d);
    m.end(li);
    await this.c.one({ msg: m, kind: KIND_ACK, what: this.w(`set ${kind} options of link ${index}`) });
  }

  /**
   * A veth pair whose peer is created directly inside another namespace (IFLA_NET_NS_FD on the peer):
   * moving a link between namespaces afterwards costs ~18 ms here. The host end is enslaved to `master`
   * by the creating request itself.
   *
   * The host end gets no IPv6 link-local address (addrgenmode none): it is a bridge port, it never
   * talks IPv6 itself, and otherwise each new port sends DAD, router solicitations and MLD reports that
   * the bridge floods to every other port — attach time then grows with the number of containers
   * (5× at 1000 here). The kernel refuses that setting in a creating request (EAFNOSUPPORT), so it
   * follows in a second one, addressed by the new index, and only then is the link brought up.
   */
  async createVeth(opts: { name: string; peerName: string; peerNetnsPath: string; peerMac?: string; mtu?: number; master?: number; up?: boolean; hairpin?: boolean }): Promise<number> {
    const what = this.w(`create veth ${opts.name}`);
    const m = linkMsg(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, 0);
    const peerMac = opts.peerMac ? macBytes(opts.peerMac) : null;
    m.str(IFLA_IFNAME, opts.name);
    if (opts.mtu) m.u32(IFLA_MTU, opts.mtu);
    if (opts.master) m.u32(IFLA_MASTER, opts.master);
    let fd: number;
    try {
      fd = openNetnsFd(opts.peerNetnsPath);
    } catch (e) {
      throw errnoError(`${what}: peer namespace ${opts.peerNetnsPath}`, (e as ErrnoError).errno);
    }
    let index: number;
    try {
      const li = m.begin(IFLA_LINKINFO);
      m.str(IFLA_INFO_KIND, 'veth');
      const data = m.begin(IFLA_INFO_DATA);
      const peer = m.begin(VETH_INFO_PEER);
      ifinfo(m, m.bytes(16), 0);
      m.str(IFLA_IFNAME, opts.peerName);
      m.u32(IFLA_NET_NS_FD, fd);
      if (peerMac) m.attr(IFLA_ADDRESS, peerMac);
      if (opts.mtu) m.u32(IFLA_MTU, opts.mtu);
      m.end(peer);
      m.end(data);
      m.end(li);
      // The fd is read by the kernel when the request is processed; keep it open until the answer.
      index = await this.createAndIndex(m, opts.name, what);
    } finally {
      fs.closeSync(fd);
    }
    const [quiet, ...more] = this.c.submit([
      { msg: noLinkLocal(linkMsg(RTM_SETLINK, NLM_F_ACK, index)), kind: KIND_ACK, what },
      ...(opts.hairpin && opts.master ? [{ msg: hairpinOn(index), kind: KIND_ACK, what: this.w(`set ${opts.name} hairpin on`) }] : []),
      ...(opts.up ? [{ msg: linkMsg(RTM_SETLINK, NLM_F_ACK, index, IFF_UP, IFF_UP), kind: KIND_ACK, what: this.w(`set ${opts.name} up`) }] : []),
    ]);
    for (const p of more) p.catch(() => {});
    try {
      // EAFNOSUPPORT: a kernel without IPv6, nothing to keep quiet.
      await quiet.catch(ignoring(os.constants.errno.EAFNOSUPPORT));
      for (const p of more) await p;
    } catch (e) {
      await this.deleteLink(index).catch(() => {});
      throw e;
    }
    return index;
  }

  async setLink(index: number, opts: { up?: boolean; master?: number | null; mtu?: number; mac?: string; name?: string }): Promise<void> {
    const up = opts.up === undefined ? 0 : IFF_UP;
    const m = linkMsg(RTM_SETLINK, NLM_F_ACK, index, opts.up ? IFF_UP : 0, up);
    if (opts.name) m.str(IFLA_IFNAME, opts.name);
    if (opts.mtu) m.u32(IFLA_MTU, opts.mtu);
    if (opts.mac) m.attr(IFLA_ADDRESS, macBytes(opts.mac));
    if (opts.master !== undefined) m.u32(IFLA_MASTER, opts.master ?? 0); // 0: release from its master
    await this.c.one({ msg: m, kind: KIND_ACK, what: this.w(`set link ${index}`) });
  }

  /**
   * Takes a link out of use at once, for a deletion that finishes later: down (its routes go with it), then
   * renamed to `newName` so that its name is free again (a link must be down to be renamed: two requests,
   * one datagram), and put in device group `group` when given (deleteGroup then deletes all such links
   * in one request). Returns its index, or null when there is no such link.
   */
  async retireLink(nameOrIndex: string | number, newName: string, group?: number): Promise<number | null> {
    const index = typeof nameOrIndex === 'number' ? nameOrIndex : (await this.getLink(nameOrIndex))?.index;
    if (index === undefined) return null;
    const what = this.w(`retire link ${nameOrIndex} as ${newName}`);
    const down = linkMsg(RTM_SETLINK, NLM_F_ACK, index, 0, IFF_UP);
    const rename = linkMsg(RTM_SETLINK, NLM_F_ACK, index).str(IFLA_IFNAME, newName);
    if (group !== undefined) rename.u32(IFLA_GROUP, group);
    try {
      await Promise.all(this.c.submit([{ msg: down, kind: KIND_ACK, what }, { msg: rename, kind: KIND_ACK, what }]));
    } catch (e) {
      if ((e as ErrnoError).errno === ENODEV) return null;
      throw e;
    }
    return index;
  }

  /**
   * Deletes every link of device group `group` (`ip link delete group N`) in one request: the kernel
   * unregisters them together, with one wait for RCU instead of one per link. None there is fine.
   */
  async deleteGroup(group: number, opts: { onMainThread?: boolean } = {}): Promise<void> {
    const m = linkMsg(RTM_DELLINK, NLM_F_ACK, 0).u32(IFLA_GROUP, group);
    // onMainThread: sent (and done by the kernel) before this returns its promise, e.g. just before close()
    await this.c.one({ msg: m, kind: KIND_ACK, what: this.w(`delete link group ${group}`), offload: !opts.onMainThread }).catch(ignoring(ENODEV));
  }

  /** Deletes a link (a veth takes its peer along); absent is fine. */
  async deleteLink(nameOrIndex: string | number): Promise<void> {
    await this.c
      // Offloaded: the kernel waits for RCU inside this request (~19 ms here).
      .one({ msg: linkRef(RTM_DELLINK, NLM_F_ACK, nameOrIndex), kind: KIND_ACK, what: this.w(`delete link ${nameOrIndex}`), offload: true })
      .catch(ignoring(ENODEV));
  }

  /** Adds a v4 or v6 address; v4 gets its broadcast address like `ip addr add ... brd +`. */
  async addAddress(index: number, cidr: string, opts: { ignoreExisting?: boolean; nodad?: boolean } = {}): Promise<void> {
    const m = addrMsg(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, index, parseCidr(cidr), !!opts.nodad);
    const p = this.c.one({ msg: m, kind: KIND_ACK, what: this.w(`add address ${cidr} to link ${index}`) });
    await (opts.ignoreExisting ? p.catch(ignoring(EEXIST)) : p);
  }

  async delAddress(index: number, cidr: string): Promise<void> {
    const m = addrMsg(RTM_DELADDR, NLM_F_ACK, index, parseCidr(cidr), false);
    await this.c.one({ msg: m, kind: KIND_ACK, what: this.w(`delete address ${cidr} from link ${index}`) }).catch(ignoring(EADDRNOTAVAIL, ENODEV));
  }

  async listAddresses(index?: number): Promise<{ index: number; cidr: string; family: 4 | 6 }[]> {
    const parts = await dump(this.c, () => {
      const m = new Msg(RTM_GETADDR, NLM_F_DUMP, 8);
      return { msg: m, kind: KIND_DUMP, what: this.w('list addresses') };
    });
    const out: { index: number; cidr: string; family: 4 | 6 }[] = [];
    for (const p of parts) {
      if (p.readUInt16LE(4) !== RTM_NEWADDR) continue;
      const fam = p.readUInt8(NLMSG_HDRLEN);
      if (fam !== AF_INET && fam !== AF_INET6) continue;
      const idx = p.readUInt32LE(NLMSG_HDRLEN + 4);
      if (index !== undefined && idx !== index) continue;
      const a = attrs(p, NLMSG_HDRLEN + 8, p.length);
      const addr = a[IFA_LOCAL] ?? a[IFA_ADDRESS]; // IFA_ADDRESS is the peer on point-to-point links
      if (!addr) continue;
      out.push({ index: idx, cidr: `${fmtIp(addr)}/${p.readUInt8(NLMSG_HDRLEN + 1)}`, family: fam === AF_INET ? 4 : 6 });
    }
    return out;
  }

  async addRoute(r: RouteSpec): Promise<void> {
    const { msg, what } = routeMsg(RTM_NEWROUTE, NLM_F_CREATE | (r.replace ? NLM_F_REPLACE : NLM_F_EXCL) | NLM_F_ACK, r);
    await this.c.one({ msg, kind: KIND_ACK, what: this.w(`add route ${what}`) });
  }

  /** Absent is fine (ESRCH), and so is a route whose device is gone. */
  async delRoute(r: RouteSpec): Promise<void> {
    const { msg, what } = routeMsg(RTM_DELROUTE, NLM_F_ACK, r);
    await this.c.one({ msg, kind: KIND_ACK, what: this.w(`delete route ${what}`) }).catch(ignoring(ESRCH, ENODEV));
  }

  /** Routes of the main table. */
  async listRoutes(family?: 4 | 6): Promise<RouteInfo[]> {
    const parts = await dump(this.c, () => {
      const m = new Msg(RTM_GETROUTE, NLM_F_DUMP, 12);
      m.buf.writeUInt8(family ? famOf(family) : AF_UNSPEC, m.body);
      return { msg: m, kind: KIND_DUMP, what: this.w('list routes') };
    });
    const out: RouteInfo[] = [];
    for (const p of parts) {
      if (p.readUInt16LE(4) !== RTM_NEWROUTE) continue;
      const b = NLMSG_HDRLEN;
      const fam = p.readUInt8(b);
      if (fam !== AF_INET && fam !== AF_INET6) continue;
      if (p.readUInt32LE(b + 8) & RTM_F_CLONED) continue;
      const a = attrs(p, b + 12, p.length);
      const table = a[RTA_TABLE] ? a[RTA_TABLE]!.readUInt32LE(0) : p.readUInt8(b + 4);
      if (table !== RT_TABLE_MAIN) continue;
      const dstLen = p.readUInt8(b + 1);
      const r: RouteInfo = {
        dst: dstLen === 0 || !a[RTA_DST] ? 'default' : `${fmtIp(a[RTA_DST]!)}/${dstLen}`,
        table,
        family: fam === AF_INET ? 4 : 6,
      };
      if (a[RTA_GATEWAY]) r.gateway = fmtIp(a[RTA_GATEWAY]!);
      if (a[RTA_OIF]) r.index = a[RTA_OIF]!.readUInt32LE(0);
      out.push(r);
    }
    return out;
  }

  /**
   * Every address ('addr') or route ('route', all tables) as the kernel dumps it: the message bodies
   * (ifaddrmsg / rtmsg and attributes), for src/kernel/netmsg.ts, which replays them exactly elsewhere.
   */
  async dumpBodies(what: 'addr' | 'route'): Promise<Buffer[]> {
    const addr = what === 'addr';
    const parts = await dump(this.c, () => ({ msg: new Msg(addr ? RTM_GETADDR : RTM_GETROUTE, NLM_F_DUMP, addr ? 8 : 12), kind: KIND_DUMP, what: this.w(`list ${what}s`) }));
    return parts.filter((p) => p.readUInt16LE(4) === (addr ? RTM_NEWADDR : RTM_NEWROUTE)).map((p) => Buffer.from(p.subarray(NLMSG_HDRLEN, p.readUInt32LE(0))));
  }

  /** Sends one address or route message whose body the caller built (a new one replaces with `replace`). */
  async sendBody(op: 'newaddr' | 'deladdr' | 'newroute' | 'delroute', body: Buffer, opts: { replace?: boolean } = {}): Promise<void> {
    const type = { newaddr: RTM_NEWADDR, deladdr: RTM_DELADDR, newroute: RTM_NEWROUTE, delroute: RTM_DELROUTE }[op];
    const flags = NLM_F_ACK | (op.startsWith('new') ? NLM_F_CREATE | (opts.replace ? NLM_F_REPLACE : NLM_F_EXCL) : 0);
    const m = new Msg(type, flags, 0);
    const at = m.bytes(body.length); // first: it may grow m.buf
    body.copy(m.buf, at);
    await this.c.one({ msg: m, kind: KIND_ACK, what: this.w(op) });
  }

  // --- neighbours: ARP entries and a vxlan device's forwarding database (overlay peers) ---

  /**
   * `ip neigh replace IP lladdr MAC dev X nud permanent` (family 4), or with `vtep`
   * `bridge fdb replace MAC dev X dst VTEP self permanent` (a vxlan device's own forwarding entry: frames
   * for MAC go to that remote tunnel endpoint). Idempotent.
   */
  async addNeighbor(n: { index: number; mac: string; ip?: string; vtep?: string }): Promise<void> {
    const { msg, what } = neighMsg(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK, n);
    await this.c.one({ msg, kind: KIND_ACK, what: this.w(`add ${what}`) });
  }

  /** Removes what addNeighbor added; absent is fine. */
  async delNeighbor(n: { index: number; mac: string; ip?: string; vtep?: string }): Promise<void> {
    const { msg, what } = neighMsg(RTM_DELNEIGH, NLM_F_ACK, n);
    await this.c.one({ msg, kind: KIND_ACK, what: this.w(`delete ${what}`) }).catch(ignoring(os.constants.errno.ENOENT, ENODEV));
  }
}

const RTM_NEWNEIGH = 28, RTM_DELNEIGH = 29;
const NDA_DST = 1, NDA_LLADDR = 2, NUD_PERMANENT = 0x80, NTF_SELF = 0x02;

/** An ndmsg: an IPv4 (ARP) or IPv6 (NDP) neighbour (ip) or, with vtep, a bridge-family FDB entry of the device itself (NTF_SELF). */
function neighMsg(type: number, flags: number, n: { index: number; mac: string; ip?: string; vtep?: string }): { msg: Msg; what: string } {
  const fdb = n.vtep !== undefined;
  const dst = parseIp(fdb ? n.vtep! : n.ip ?? '');
  // a tunnel endpoint is IPv4 (loom's VXLAN underlay); a neighbour may be either family (ARP or NDP entry)
  if (fdb && dst.family !== 4) throw errnoError(`neighbour ${n.mac}: ${n.vtep} is not IPv4`, EINVAL);
  const m = new Msg(type, flags, 12);
  const b = m.body;
  m.buf.writeUInt8(fdb ? AF_BRIDGE : famOf(dst.family), b);
  m.buf.writeInt32LE(n.index, b + 4);
  m.buf.writeUInt16LE(NUD_PERMANENT, b + 8);
  m.buf.writeUInt8(fdb ? NTF_SELF : 0, b + 10);
  m.attr(NDA_LLADDR, macBytes(n.mac));
  m.attr(NDA_DST, dst.bytes);
  return { msg: m, what: fdb ? `fdb entry ${n.mac} dst ${n.vtep} on link ${n.index}` : `neighbour ${n.ip} lladdr ${n.mac} on link ${n.index}` };
}

/**
 * IFLA_INFO_DATA of a bridge: whether frames bridged between two of its ports are handed to the IPv4 and
 * IPv6 netfilter hooks (br_netfilter) even when the namespace's net.bridge.bridge-nf-call-ip(6)tables
 * is 0 (IFLA_BR_NF_CALL_IPTABLES, IFLA_BR_NF_CALL_IP6TABLES; `ip link set BR type bridge nf_call_iptables 1`).
 */
export function bridgeNfCallData(on: boolean): LinkData[] {
  return [{ type: 36, value: Uint8Array.of(on ? 1 : 0) }, { type: 37, value: Uint8Array.of(on ? 1 : 0) }];
}

/**
 * IFLA_INFO_DATA of a vxlan link (for Rtnl.createLink): VNI, local tunnel address, UDP port, and the
 * two switches overlay networks set: no learning of remote MACs from traffic (the control plane
 * programs them) and proxy ARP answered from the neighbour table.
 */
export function vxlanData(o: { vni: number; local?: string; port?: number; learning?: boolean; proxy?: boolean }): LinkData[] {
  const out: LinkData[] = [u32a(1, o.vni)]; // IFLA_VXLAN_ID
  if (o.local) out.push({ type: 4, value: parseIp(o.local).bytes }); // IFLA_VXLAN_LOCAL
  out.push({ type: 7, value: Uint8Array.of(o.learning ? 1 : 0) }); // IFLA_VXLAN_LEARNING
  if (o.proxy) out.push({ type: 11, value: Uint8Array.of(1) }); // IFLA_VXLAN_PROXY
  const port = o.port ?? 4789;
  out.push({ type: 15, value: Uint8Array.of((port >> 8) & 0xff, port & 0xff) }); // IFLA_VXLAN_PORT, network byte order
  return out;
}

/**
 * One-shot setup of a container-side interface: lo up, `ifname` up (with its MTU), its addresses, then
 * default route(s) via the gateway(s). Two round trips on one socket opened inside `netnsPath`: first the
 * link changes plus a lookup of the interface's index, then every address and route in one datagram
 * (addresses before routes, so the gateways are on-link when the routes arrive). IPv6 addresses skip DAD,
 * as Docker's do: the address and the route through it work at once. Idempotent: existing addresses are
 * kept, routes are replaced.
 *
 * `ipv6LinkLocal` (default: only when an IPv6 address is given) decides whether `ifname` gets an fe80::
 * address. Like Docker on an IPv4-only network, it gets none otherwise (addrgenmode none, set while the
 * link is still down): the link-local address would bring DAD, router solicitations and MLD reports that
 * the bridge floods to every container, making each attach slower as the network grows.
 */
export async function configureInterface(
  netnsPath: string,
  opts: { ifname: string; addresses: string[]; gateway4?: string; gateway6?: string; mtu?: number; loUp?: boolean; ipv6LinkLocal?: boolean },
): Promise<void> {
  // Validate everything before touching the kernel, so a bad value changes nothing.
  const cidrs = opts.addresses.map(parseCidr);
  if (opts.gateway4 && parseIp(opts.gateway4).family !== 4) throw errnoError(`configure ${opts.ifname} in ${netnsPath}: gateway4 ${opts.gateway4} is not IPv4`, EINVAL);
  if (opts.gateway6 && parseIp(opts.gateway6).family !== 6) throw errnoError(`configure ${opts.ifname} in ${netnsPath}: gateway6 ${opts.gateway6} is not IPv6`, EINVAL);
  const pre = `configure ${opts.ifname} in ${netnsPath}`;
  const rt = withNetns(netnsPath, () => Conn.open(` in ${netnsPath}`));
  try {
    // The lookup goes first: a missing interface fails as "configure eth0 in ...: No such device".
    const first: Spec[] = [{ msg: linkRef(RTM_GETLINK, 0, opts.ifname), kind: KIND_GET, what: pre }];
    if (opts.loUp && opts.ifname !== 'lo') {
      first.push({ msg: linkMsg(RTM_SETLINK, NLM_F_ACK, LOOPBACK_IFINDEX, IFF_UP, IFF_UP), kind: KIND_ACK, what: `${pre}: set lo up` });
    }
    const linkLocal = opts.ipv6LinkLocal ?? cidrs.some((c) => c.family === 6);
    const quietAt = !linkLocal && opts.ifname !== 'lo' ? first.length : -1;
    if (quietAt >= 0) {
      // Its own request, before the one bringing the link up (which would create the address at once).
      first.push({ msg: noLinkLocal(linkRef(RTM_SETLINK, NLM_F_ACK, opts.ifname)), kind: KIND_ACK, what: `${pre}: set addrgenmode none` });
    }
    const set = linkRef(RTM_SETLINK, NLM_F_ACK, opts.ifname, IFF_UP, IFF_UP);
    if (opts.mtu) set.u32(IFLA_MTU, opts.mtu);
    first.push({ msg: set, kind: KIND_ACK, what: `${pre}: set up${opts.mtu ? ` mtu ${opts.mtu}` : ''}` });
    const firstDone = rt.submit(first);
    for (const p of firstDone) p.catch(() => {}); // awaited below in order; only the first failure is thrown
    for (let i = 0; i < firstDone.length; i++) {
      // EAFNOSUPPORT on addrgenmode: a kernel without IPv6, nothing to keep quiet.
      if (i === quietAt) await firstDone[i].catch(ignoring(os.constants.errno.EAFNOSUPPORT));
      else await firstDone[i];
    }
    const index = parseLink((await firstDone[0])[0]).index;

    const second: Spec[] = [];
    const ignoreExisting: boolean[] = [];
    for (let i = 0; i < cidrs.length; i++) {
      const c = cidrs[i];
      second.push({
        msg: addrMsg(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, index, c, c.family === 6),
        kind: KIND_ACK,
        what: `${pre}: add address ${opts.addresses[i]}`,
      });
      ignoreExisting.push(true);
    }
    for (const gw of [opts.gateway4, opts.gateway6]) {
      if (!gw) continue;
      const { msg } = routeMsg(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK, { dst: 'default', gateway: gw, index });
      second.push({ msg, kind: KIND_ACK, what: `${pre}: add default route via ${gw}` });
      ignoreExisting.push(false);
    }
    if (!second.length) return;
    const secondDone = rt.submit(second);
    for (const p of secondDone) p.catch(() => {});
    for (let i = 0; i < secondDone.length; i++) {
      await (ignoreExisting[i] ? secondDone[i].catch(ignoring(EEXIST)) : secondDone[i]);
    }
  } finally {
    rt.close();
  }
}
