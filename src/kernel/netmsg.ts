// Address and route messages as the kernel dumps them (ifaddrmsg / rtmsg + attributes), read and
// rewritten without losing anything: moving an interface's addresses and routes to another device and
// back must give them back exactly (protocol, scope, metric, table, preferred source, flags, lifetimes,
// label), which a re-creation from a parsed subset would not. Hand-written: no npm library encodes rtnetlink.

export interface Attr { type: number; data: Buffer }

const NLA_TYPE_MASK = 0x3fff;
export const IFADDRMSG_LEN = 8, RTMSG_LEN = 12;
export const IFA_ADDRESS = 1, IFA_LOCAL = 2, IFA_LABEL = 3, IFA_CACHEINFO = 6, IFA_FLAGS = 8;
export const RTA_DST = 1, RTA_OIF = 4, RTA_GATEWAY = 5, RTA_PRIORITY = 6, RTA_MULTIPATH = 9, RTA_TABLE = 15;
const AF_INET = 2, AF_INET6 = 10;
const RT_TABLE_LOCAL = 255, RTPROT_KERNEL = 2, RT_SCOPE_LINK = 253;
const IFA_F_TEMPORARY = 0x01, IFA_F_NODAD = 0x02;
/** flags a request may carry (the others are states the kernel sets: secondary, tentative, deprecated...) */
const IFA_REQUEST_FLAGS = 0x02 | 0x10 | 0x100 | 0x200 | 0x400;
/** rtm_flags a new route may carry: RTNH_F_ONLINK (the kernel refuses DEAD / LINKDOWN in a request) */
const RTNH_F_ONLINK = 0x04;
/** attributes of a dumped route a new route may carry (not the cache info, expiry or per-dump extras) */
const ROUTE_REQUEST_ATTRS = new Set([RTA_DST, 2 /* SRC */, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, 7 /* PREFSRC */, 8 /* METRICS */, 11 /* FLOW */, RTA_TABLE, 16 /* MARK */, 20 /* PREF */]);

export function parseAttrs(body: Buffer, from: number): Attr[] {
  const out: Attr[] = [];
  for (let p = from; p + 4 <= body.length;) {
    const len = body.readUInt16LE(p);
    if (len < 4 || p + len > body.length) break;
    out.push({ type: body.readUInt16LE(p + 2) & NLA_TYPE_MASK, data: Buffer.from(body.subarray(p + 4, p + len)) });
    p += (len + 3) & ~3;
  }
  return out;
}

/** A message's attributes from `from` to `to` by type (nested flag cleared), as views into `buf`: for reading only. */
export function attrMap(buf: Buffer, from: number, to = buf.length): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  for (let a = from; a + 4 <= to;) {
    const len = buf.readUInt16LE(a);
    if (len < 4 || a + len > to) break;
    out.set(buf.readUInt16LE(a + 2) & NLA_TYPE_MASK, buf.subarray(a + 4, a + len));
    a += (len + 3) & ~3;
  }
  return out;
}

function build(head: Buffer, attrs: Attr[]): Buffer {
  const parts: Buffer[] = [head];
  for (const a of attrs) {
    const len = 4 + a.data.length;
    const b = Buffer.alloc((len + 3) & ~3);
    b.writeUInt16LE(len, 0);
    b.writeUInt16LE(a.type, 2);
    a.data.copy(b, 4);
    parts.push(b);
  }
  return Buffer.concat(parts);
}

const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0, 0);
  return b;
};

function fmtIp(b: Buffer): string {
  if (b.length === 4) return [...b].join('.');
  const w: string[] = [];
  for (let i = 0; i < 16; i += 2) w.push(b.readUInt16BE(i).toString(16));
  return w.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}

// ------------------------------------------------------------------ addresses

export interface AddrMsg { family: 4 | 6; prefix: number; scope: number; index: number; address: string; flags: number; body: Buffer }

export function readAddr(body: Buffer): AddrMsg | null {
  const fam = body.readUInt8(0);
  if (fam !== AF_INET && fam !== AF_INET6) return null;
  const attrs = parseAttrs(body, IFADDRMSG_LEN);
  const local = attrs.find((a) => a.type === IFA_LOCAL) ?? attrs.find((a) => a.type === IFA_ADDRESS);
  if (!local) return null;
  const fl = attrs.find((a) => a.type === IFA_FLAGS);
  return { family: fam === AF_INET ? 4 : 6, prefix: body.readUInt8(1), scope: body.readUInt8(3), index: body.readUInt32LE(4), address: fmtIp(local.data), flags: fl ? fl.data.readUInt32LE(0) : body.readUInt8(2), body };
}

/** Addresses worth moving off an interface: not IPv6 link-local ones (each device has its own) or temporary ones. */
export function movableAddr(a: AddrMsg): boolean {
  return !(a.family === 6 && (a.scope === RT_SCOPE_LINK || a.flags & IFA_F_TEMPORARY));
}

/**
 * The request that adds a dumped address on link `index`. `label` false drops IFA_LABEL (a label must
 * start with its device's name); `nodad` skips IPv6 duplicate detection (the address is ours already).
 */
export function addrRequest(body: Buffer, index: number, opts: { label: boolean; nodad?: boolean }): Buffer {
  const head = Buffer.from(body.subarray(0, IFADDRMSG_LEN));
  head.writeUInt32LE(index, 4);
  let flags = 0;
  const attrs = parseAttrs(body, IFADDRMSG_LEN).filter((a) => a.type !== IFA_LABEL || opts.label).map((a) => {
    if (a.type !== IFA_FLAGS) return a;
    flags = a.data.readUInt32LE(0);
    return null;
  }).filter((a): a is Attr => !!a);
  if (!flags) flags = body.readUInt8(2);
  flags = (flags & IFA_REQUEST_FLAGS) | (opts.nodad ? IFA_F_NODAD : 0);
  head.writeUInt8(flags & 0xff, 2);
  attrs.push({ type: IFA_FLAGS, data: u32(flags) });
  return build(head, attrs);
}

// ------------------------------------------------------------------ routes

export interface RouteMsg { family: 4 | 6; table: number; protocol: number; oif?: number; multipath: boolean; dst: string; key: string; body: Buffer }

export function readRoute(body: Buffer): RouteMsg | null {
  const fam = body.readUInt8(0);
  if (fam !== AF_INET && fam !== AF_INET6) return null;
  const attrs = parseAttrs(body, RTMSG_LEN);
  const get = (t: number) => attrs.find((a) => a.type === t)?.data;
  const table = get(RTA_TABLE)?.readUInt32LE(0) ?? body.readUInt8(4);
  const dst = get(RTA_DST);
  const dstText = dst ? `${fmtIp(dst)}/${body.readUInt8(1)}` : 'default';
  const prio = get(RTA_PRIORITY)?.readUInt32LE(0) ?? 0;
  return {
    family: fam === AF_INET ? 4 : 6, table, protocol: body.readUInt8(5), oif: get(RTA_OIF)?.readUInt32LE(0), multipath: !!get(RTA_MULTIPATH), dst: dstText,
    // what identifies a route to NLM_F_REPLACE: table, destination, tos, metric
    key: `${fam} ${table} ${dstText} ${body.readUInt8(3)} ${prio}`, body,
  };
}

/**
 * Routes that go with an interface when its addresses move: those through it (not the local table's, not
 * the prefix routes the kernel makes for each address: they follow the addresses by themselves).
 */
export function movableRoute(r: RouteMsg, index: number): boolean {
  return r.oif === index && !r.multipath && r.table !== RT_TABLE_LOCAL && r.protocol !== RTPROT_KERNEL;
}

/** The request that puts a dumped route on link `index` instead (sent with NLM_F_REPLACE: one step). */
export function routeRequest(body: Buffer, index: number): Buffer {
  const head = Buffer.from(body.subarray(0, RTMSG_LEN));
  head.writeUInt32LE(body.readUInt32LE(8) & RTNH_F_ONLINK, 8);
  const attrs = parseAttrs(body, RTMSG_LEN).filter((a) => ROUTE_REQUEST_ATTRS.has(a.type)).map((a) => (a.type === RTA_OIF ? { type: RTA_OIF, data: u32(index) } : a));
  return build(head, attrs);
}
