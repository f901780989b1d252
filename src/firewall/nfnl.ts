// Set and map elements of loom's tables written as one nf_tables netlink batch, without libnftables.
//
// Why hand-written: libnftables (nft.ts) fetches the namespace's tables, chains, sets and objects before
// every command to resolve names and types (~0.3-0.5 ms of each per-container transaction in the daemon,
// growing with what else lives in the namespace), and no maintained JavaScript library encodes
// nf_tables messages. Per-endpoint changes are only elements added to or deleted from loom's own maps and
// sets, whose types loom itself declared (ruleset.ts), so their binary form is fixed and small:
//   batch begin · NFT_MSG_NEWSETELEM / NFT_MSG_DELSETELEM per element · batch end
// in one datagram: the kernel applies the batch as one transaction (all or nothing) inside the send()
// call and queues one acknowledgement per message. Whole-table loads (networks, reconcile) stay with
// libnftables, whose text is golden-tested.
//
// Encoding (what nft 1.0.6 sends for the same `add element`, checked by test/netns/nfnl.test.ts, which
// lists both results with `nft -j`): a concatenated key or value is its fields one after the other, each
// padded with zeros to a multiple of 4 bytes (NFT_REG32_SIZE); addresses and ports in network byte
// order, a protocol as one byte, an interface name as 16 bytes (IFNAMSIZ) zero-filled. Interval maps of
// concatenations (port_ranges, port_ranges_same: the kernel's pipapo set) take the first and the last key
// of the range as NFTA_SET_ELEM_KEY and NFTA_SET_ELEM_KEY_END.
//
// The batch is sent from the main thread, so the NFT_MSG_NEWGEN notification that ends the transaction
// carries the daemon's pid: watch.ts still recognises these changes as loom's own.
import koffi from 'koffi';
import net from 'node:net';
import os from 'node:os';
import ipaddr from 'ipaddr.js';
import { errnoError } from '../kernel/netns.ts';
import type { FwLink, FwPort } from './model.ts';
import { TABLE } from './ruleset.ts';

const NETLINK_NETFILTER = 12;
const AF_NETLINK = 16, SOCK_RAW = 3, SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1, SO_RCVTIMEO = 20;
const SOL_NETLINK = 270, NETLINK_CAP_ACK = 10, NETLINK_EXT_ACK = 11;
const MSG_DONTWAIT = 0x40;
const NLMSG_HDRLEN = 16, NFGENMSG_LEN = 4;
const NLMSG_ERROR = 2;
const NLM_F_REQUEST = 0x1, NLM_F_ACK = 0x4, NLM_F_CREATE = 0x400, NLM_F_ACK_TLVS = 0x200;
const NLMSGERR_ATTR_MSG = 1;
const NFNL_MSG_BATCH_BEGIN = 0x10, NFNL_MSG_BATCH_END = 0x11;
const NFNL_SUBSYS_NFTABLES = 10;
const NFT_MSG_NEWSETELEM = 12, NFT_MSG_DELSETELEM = 14;
const NFTA_SET_ELEM_LIST_TABLE = 1, NFTA_SET_ELEM_LIST_SET = 2, NFTA_SET_ELEM_LIST_ELEMENTS = 3;
const NFTA_LIST_ELEM = 1;
const NFTA_SET_ELEM_KEY = 1, NFTA_SET_ELEM_DATA = 2, NFTA_SET_ELEM_KEY_END = 10;
const NFTA_DATA_VALUE = 1;
const NLA_F_NESTED = 0x8000;
const AF_INET = 2, AF_INET6 = 10;
const IFNAMSIZ = 16;
const { EAGAIN, EINTR, EIO } = os.constants.errno;

const PROTO_NUM = { tcp: 6, udp: 17, sctp: 132 } as const;

/** One element to add or delete: set name, family, key (and the range's last key), map data. */
export interface ElemOp {
  verb: 'add' | 'delete';
  family: 4 | 6;
  set: string;
  key: Buffer;
  keyEnd?: Buffer;
  data?: Buffer;
  /** nft's text for the same element, for error messages */
  text: string;
}

/** Applies element changes as one transaction; throws (nothing applied) naming the element refused. */
export interface ElementWriter {
  apply(ops: ElemOp[]): void;
  close(): void;
}

// ------------------------------------------------------------------ field encoding

/** Concatenation: each field zero-padded to a multiple of 4 bytes. */
function concat(fields: Buffer[]): Buffer {
  const len = fields.reduce((n, f) => n + ((f.length + 3) & ~3), 0);
  const out = Buffer.alloc(len);
  let at = 0;
  for (const f of fields) {
    f.copy(out, at);
    at += (f.length + 3) & ~3;
  }
  return out;
}

const addrBytes = (ip: string): Buffer => Buffer.from(ipaddr.parse(ip).toByteArray());
const proto = (p: keyof typeof PROTO_NUM): Buffer => Buffer.of(PROTO_NUM[p]);
const service = (port: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(port, 0);
  return b;
};
const ifname = (name: string): Buffer => {
  const b = Buffer.alloc(IFNAMSIZ);
  b.write(name, 'latin1');
  return b;
};
/** First and last address of "every address" (the key 0.0.0.0/0 or ::/0 of the interval maps) */
const anyFirst = (f: 4 | 6) => Buffer.alloc(f === 4 ? 4 : 16, 0);
const anyLast = (f: 4 | 6) => Buffer.alloc(f === 4 ? 4 : 16, 0xff);

// ------------------------------------------------------------------ elements of loom's maps and sets (ruleset.ts)

/** Which of the four port maps an (already normalised) port element lives in; mirrors ruleset.ts's portMap. */
export function portMapOf(p: FwPort): 'ports' | 'ports_on_addr' | 'port_ranges' | 'port_ranges_same' {
  const range = p.hostPortEnd > p.hostPort;
  if (range && p.containerPort === p.hostPort && p.containerPortEnd === p.hostPortEnd) return 'port_ranges_same';
  if (range) return 'port_ranges';
  return p.hostIp ? 'ports_on_addr' : 'ports';
}

/** The element of a normalised port (normPorts' output), as ruleset.ts renders it in text. */
export function portOp(verb: 'add' | 'delete', p: FwPort, text: string): ElemOp {
  const set = portMapOf(p);
  const op: ElemOp = { verb, family: p.family, set, key: Buffer.alloc(0), text };
  if (set === 'ports') {
    op.key = concat([proto(p.proto), service(p.hostPort)]);
  } else if (set === 'ports_on_addr') {
    op.key = concat([addrBytes(p.hostIp), proto(p.proto), service(p.hostPort)]);
  } else {
    op.key = concat([p.hostIp ? addrBytes(p.hostIp) : anyFirst(p.family), proto(p.proto), service(p.hostPort)]);
    op.keyEnd = concat([p.hostIp ? addrBytes(p.hostIp) : anyLast(p.family), proto(p.proto), service(p.hostPortEnd)]);
  }
  if (verb === 'add') {
    op.data = set === 'port_ranges_same' ? concat([addrBytes(p.containerIp)]) : concat([addrBytes(p.containerIp), service(p.containerPort)]);
  }
  return op;
}

/** The element of a normalised link (normLink's output) in the `links` set. */
export function linkOp(verb: 'add' | 'delete', l: FwLink, text: string): ElemOp {
  const family = net.isIP(l.fromIp) === 6 ? 6 : 4;
  return {
    verb, family, set: 'links', text,
    key: concat([ifname(l.bridge), addrBytes(l.fromIp), addrBytes(l.toIp), proto(l.proto), service(l.port)]),
  };
}

// ------------------------------------------------------------------ messages

class Writer {
  buf = Buffer.alloc(4096);
  len = 0;
  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const b = Buffer.alloc(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(b, 0, 0, this.len);
    this.buf = b;
  }
  /** Starts a message; returns its offset (the length is written by endMsg). */
  msg(type: number, flags: number, seq: number, family: number, resId: number): number {
    this.room(NLMSG_HDRLEN + NFGENMSG_LEN);
    const at = this.len;
    this.buf.fill(0, at, at + NLMSG_HDRLEN + NFGENMSG_LEN);
    this.buf.writeUInt16LE(type, at + 4);
    this.buf.writeUInt16LE(flags | NLM_F_REQUEST, at + 6);
    this.buf.writeUInt32LE(seq, at + 8);
    this.buf.writeUInt8(family, at + NLMSG_HDRLEN);
    this.buf.writeUInt16BE(resId, at + NLMSG_HDRLEN + 2);
    this.len += NLMSG_HDRLEN + NFGENMSG_LEN;
    return at;
  }
  endMsg(at: number): void {
    this.buf.writeUInt32LE(this.len - at, at);
  }
  attr(type: number, data: Buffer): void {
    const alen = 4 + data.length;
    const padded = (alen + 3) & ~3;
    this.room(padded);
    this.buf.writeUInt16LE(alen, this.len);
    this.buf.writeUInt16LE(type, this.len + 2);
    data.copy(this.buf, this.len + 4);
    this.buf.fill(0, this.len + alen, this.len + padded);
    this.len += padded;
  }
  str(type: number, s: string): void {
    this.attr(type, Buffer.from(s + '\0', 'latin1'));
  }
  begin(type: number): number {
    this.room(4);
    const at = this.len;
    this.buf.writeUInt16LE(type | NLA_F_NESTED, at + 2);
    this.len += 4;
    return at;
  }
  end(at: number): void {
    this.buf.writeUInt16LE(this.len - at, at);
  }
  data(type: number, value: Buffer): void {
    const n = this.begin(type);
    this.attr(NFTA_DATA_VALUE, value);
    this.end(n);
  }
}

/**
 * The batch for `ops` (pure; exported for tests): begin, one message per element (so that an error
 * names its element), end. Returns the bytes and the sequence number of each element's message.
 */
export function encodeBatch(ops: ElemOp[], firstSeq: number): { buf: Buffer; seqs: number[] } {
  const w = new Writer();
  let seq = firstSeq;
  const begin = w.msg(NFNL_MSG_BATCH_BEGIN, 0, seq++, 0, NFNL_SUBSYS_NFTABLES);
  w.endMsg(begin);
  const seqs: number[] = [];
  for (const op of ops) {
    const type = (NFNL_SUBSYS_NFTABLES << 8) | (op.verb === 'add' ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM);
    // as nft: `add element` creates, and an element already there with the same value is no error
    const flags = NLM_F_ACK | (op.verb === 'add' ? NLM_F_CREATE : 0);
    seqs.push(seq);
    const m = w.msg(type, flags, seq++, op.family === 4 ? AF_INET : AF_INET6, 0);
    w.str(NFTA_SET_ELEM_LIST_TABLE, TABLE);
    w.str(NFTA_SET_ELEM_LIST_SET, op.set);
    const list = w.begin(NFTA_SET_ELEM_LIST_ELEMENTS);
    const el = w.begin(NFTA_LIST_ELEM);
    w.data(NFTA_SET_ELEM_KEY, op.key);
    if (op.keyEnd) w.data(NFTA_SET_ELEM_KEY_END, op.keyEnd);
    if (op.data) w.data(NFTA_SET_ELEM_DATA, op.data);
    w.end(el);
    w.end(list);
    w.endMsg(m);
  }
  const end = w.msg(NFNL_MSG_BATCH_END, 0, seq++, 0, NFNL_SUBSYS_NFTABLES);
  w.endMsg(end);
  return { buf: Buffer.from(w.buf.subarray(0, w.len)), seqs };
}

// ------------------------------------------------------------------ the socket

interface Libc {
  socket: (d: number, t: number, p: number) => number;
  send: (fd: number, buf: Buffer, len: number, flags: number) => number;
  recv: (fd: number, buf: Buffer, len: number, flags: number) => number;
  close: (fd: number) => number;
  setsockopt: (fd: number, level: number, name: number, val: Buffer, len: number) => number;
}
let libc: Libc | null = null;
function loadLibc(): Libc {
  if (libc) return libc;
  const l = koffi.load('libc.so.6');
  libc = {
    socket: l.func('int socket(int domain, int type, int protocol)'),
    send: l.func('long send(int fd, const void *buf, unsigned long len, int flags)'),
    recv: l.func('long recv(int fd, void *buf, unsigned long len, int flags)'),
    close: l.func('int close(int fd)'),
    setsockopt: l.func('int setsockopt(int fd, int level, int name, const void *val, uint32_t len)'),
  };
  return libc;
}

/** Thrown when the kernel refused the batch: nothing of it was applied. */
export class NfnlError extends Error {
  readonly errno: number;
  constructor(message: string, errno: number) {
    super(message);
    this.name = 'NfnlError';
    this.errno = errno;
  }
}

/**
 * A NETLINK_NETFILTER socket in the network namespace of the thread that creates it (the daemon's: the
 * same one its libnftables context talks to). Synchronous: the kernel processes a batch inside send().
 */
export class NfnlSocket implements ElementWriter {
  private fd: number;
  private readonly c = loadLibc();
  private seq = (Math.random() * 0x3fffffff) >>> 0;
  private readonly rbuf = Buffer.alloc(64 * 1024);

  constructor() {
    const fd = this.c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
    if (fd < 0) throw errnoError('open nfnetlink socket', koffi.errno());
    const one = Buffer.from(Int32Array.of(1).buffer);
    // errors carry the kernel's own explanation, and not a copy of the request
    this.c.setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, one, 4);
    this.c.setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, one, 4);
    // should an acknowledgement ever not be queued when send() returns, wait for it at most 5 s
    const tv = Buffer.alloc(16);
    tv.writeBigInt64LE(5n, 0);
    this.c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, 16);
    this.fd = fd;
  }

  apply(ops: ElemOp[]): void {
    if (!ops.length) return;
    if (this.fd < 0) throw new NfnlError('nfnetlink socket is closed', EIO);
    const first = this.seq;
    const { buf, seqs } = encodeBatch(ops, first);
    this.seq = (first + ops.length + 2) & 0x3fffffff;
    let n: number;
    do n = this.c.send(this.fd, buf, buf.length, 0); while (n < 0 && koffi.errno() === EINTR);
    if (n < 0) throw new NfnlError(errnoError('send nf_tables batch', koffi.errno()).message, koffi.errno());
    // One acknowledgement per element message; the kernel reports every refused one (and on failure
    // aborts the whole batch). The acknowledgements are queued before send() returns.
    const bySeq = new Map(seqs.map((s, i) => [s, i]));
    let acked = 0;
    let failure: NfnlError | null = null;
    while (acked < ops.length) {
      let r = this.c.recv(this.fd, this.rbuf, this.rbuf.length, MSG_DONTWAIT);
      if (r < 0 && koffi.errno() === EAGAIN) {
        // not queued yet (never seen): wait for it, up to SO_RCVTIMEO
        do r = this.c.recv(this.fd, this.rbuf, this.rbuf.length, 0); while (r < 0 && koffi.errno() === EINTR);
      }
      if (r < 0) {
        const errno = koffi.errno();
        if (errno === EINTR) continue;
        throw new NfnlError(`nf_tables batch: no acknowledgement from the kernel (${errnoError('recv', errno).message})`, errno);
      }
      for (let p = 0; p + NLMSG_HDRLEN <= r;) {
        const len = this.rbuf.readUInt32LE(p);
        if (len < NLMSG_HDRLEN || p + len > r) break;
        const type = this.rbuf.readUInt16LE(p + 4), mflags = this.rbuf.readUInt16LE(p + 6);
        const s = this.rbuf.readUInt32LE(p + 8);
        if (type === NLMSG_ERROR) {
          const errno = -this.rbuf.readInt32LE(p + NLMSG_HDRLEN);
          const i = bySeq.get(s);
          if (i !== undefined) acked++;
          else if (errno) acked = ops.length; // the batch itself was refused (begin/end): no element acks follow
          if (errno && !failure) {
            const what = i !== undefined ? `${ops[i]!.verb} element ${ops[i]!.family === 4 ? 'ip' : 'ip6'} ${TABLE} ${ops[i]!.set} { ${ops[i]!.text} }` : 'nf_tables batch';
            let text = errnoError(what, errno).message;
            const ext = extack(this.rbuf, p, len, mflags);
            if (ext) text += ` (${ext})`;
            failure = new NfnlError(text, errno);
          }
        }
        p += (len + 3) & ~3;
      }
    }
    if (failure) throw failure;
  }

  close(): void {
    if (this.fd >= 0) this.c.close(this.fd);
    this.fd = -1;
  }
}

/** The kernel's extended-ack text ("Set element already exists"), when it gave one. */
function extack(buf: Buffer, p: number, len: number, flags: number): string {
  if (!(flags & NLM_F_ACK_TLVS)) return '';
  // NETLINK_CAP_ACK: the error code, then only the header of the request, then the attributes
  for (let a = p + NLMSG_HDRLEN + 4 + NLMSG_HDRLEN; a + 4 <= p + len;) {
    const alen = buf.readUInt16LE(a), atype = buf.readUInt16LE(a + 2) & 0x3fff;
    if (alen < 4) break;
    if (atype === NLMSGERR_ATTR_MSG) return buf.toString('latin1', a + 4, a + alen).replace(/\0.*$/s, '');
    a += (alen + 3) & ~3;
  }
  return '';
}
