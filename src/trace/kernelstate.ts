// What the kernel remembers of a probe after it went by, read in process over netlink: the neighbour
// entries (ARP / NDP: which MAC the next hop has, RTM_GETNEIGH), a bridge's forwarding database (which
// port a MAC sits behind; on a vxlan device, which remote tunnel endpoint) and the conntrack entry of the
// probe's 5-tuple (ctnetlink IPCTNL_MSG_CT_GET: its state and, after NAT, where the reply comes from).
// rtnl.ts has no neighbour dump and no ctnetlink, so these few read-only requests are encoded here on the
// `netlink` package's RawNetlinkSocket (as outside.ts does), opened inside the namespace to be read.
import net from 'node:net';
import ipaddr from 'ipaddr.js';
import { RawNetlinkSocket } from 'netlink';
import { withNetns } from '../kernel/netns.ts';
import { attrMap as attrs } from '../kernel/netmsg.ts';

const NETLINK_ROUTE = 0, NETLINK_NETFILTER = 12;
const NLM_F_REQUEST = 1, NLM_F_DUMP = 0x300;
const NLMSG_ERROR = 2, NLMSG_DONE = 3;
const RTM_NEWNEIGH = 28, RTM_GETNEIGH = 30;
const AF_INET = 2, AF_INET6 = 10, AF_BRIDGE = 7;
const NDA_DST = 1, NDA_LLADDR = 2, NDA_MASTER = 9;
const NTF_SELF = 0x02, NTF_MASTER = 0x04;
const NUD: [number, string][] = [[0x01, 'incomplete'], [0x02, 'reachable'], [0x04, 'stale'], [0x08, 'delay'], [0x10, 'probe'], [0x20, 'failed'], [0x40, 'noarp'], [0x80, 'permanent']];


function attr(type: number, v: Buffer, nested = false): Buffer {
  const a = Buffer.alloc((4 + v.length + 3) & ~3);
  a.writeUInt16LE(4 + v.length, 0);
  a.writeUInt16LE(type | (nested ? 0x8000 : 0), 2);
  v.copy(a, 4);
  return a;
}

const fmtIp = (b: Buffer) => (b.length === 4 ? `${b[0]}.${b[1]}.${b[2]}.${b[3]}` : ipaddr.fromByteArray([...b]).toString());
const fmtMac = (b: Buffer) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
const ipBytes = (ip: string) => Buffer.from(ipaddr.parse(ip).toByteArray());

/** One request and its answer(s) (a dump's parts up to NLMSG_DONE), on a socket opened in `netns`. */
class Nl {
  private readonly sock: RawNetlinkSocket;
  private seq = 1;
  private readonly pending = new Map<number, { parts: Buffer[]; done: (e: Error | null) => void }>();

  constructor(proto: number, netns?: string) {
    const open = () => new RawNetlinkSocket(proto, { recvBufferSize: 1 << 20 } as never);
    this.sock = netns ? withNetns(netns, open) : open();
    this.sock.on('message', (msg: Buffer) => {
      let off = 0;
      while (off + 16 <= msg.length) {
        const len = msg.readUInt32LE(off);
        if (len < 16 || off + len > msg.length) break;
        const p = this.pending.get(msg.readUInt32LE(off + 8));
        const type = msg.readUInt16LE(off + 4);
        const flags = msg.readUInt16LE(off + 6);
        if (p) {
          if (type === NLMSG_DONE) p.done(null);
          else if (type === NLMSG_ERROR) {
            const err = msg.readInt32LE(off + 16);
            p.done(err === 0 ? null : Object.assign(new Error(`netlink error ${-err}`), { errno: -err }));
          } else {
            p.parts.push(Buffer.from(msg.subarray(off, off + len)));
            if (!(flags & 2 /* NLM_F_MULTI */)) p.done(null);
          }
        }
        off += (len + 3) & ~3;
      }
    });
  }

  request(type: number, flags: number, body: Buffer, extra: Buffer[] = []): Promise<Buffer[]> {
    const seq = this.seq++;
    const msg = Buffer.concat([Buffer.alloc(16), body, ...extra]);
    msg.writeUInt32LE(msg.length, 0);
    msg.writeUInt16LE(type, 4);
    msg.writeUInt16LE(NLM_F_REQUEST | flags, 6);
    msg.writeUInt32LE(seq, 8);
    return new Promise((resolve, reject) => {
      const parts: Buffer[] = [];
      const t = setTimeout(() => { this.pending.delete(seq); reject(new Error('netlink: no answer')); }, 2000);
      this.pending.set(seq, { parts, done: (e) => { clearTimeout(t); this.pending.delete(seq); if (e) reject(e); else resolve(parts); } });
      this.sock.send(msg, {}, (e) => { if (e) { clearTimeout(t); this.pending.delete(seq); reject(e); } });
    });
  }

  close(): void {
    this.sock.close();
  }
}

export interface Neighbour {
  ifindex: number;
  /** the neighbour's address (ARP/NDP), or a vxlan FDB entry's remote tunnel endpoint */
  ip?: string;
  mac?: string;
  state: string;
  /** FDB: the bridge the port belongs to (NTF_MASTER entries) */
  master?: number;
  /** FDB: the device's own entry (NTF_SELF: a vxlan device's remote endpoint) */
  self?: boolean;
}

function nudState(s: number): string {
  return NUD.filter(([bit]) => s & bit).map(([, n]) => n).join(',') || 'none';
}

/** The neighbour table (family 4 or 6) or the bridge forwarding database ('bridge') of a namespace. */
export async function listNeighbours(netns: string | undefined, family: 4 | 6 | 'bridge'): Promise<Neighbour[]> {
  const nl = new Nl(NETLINK_ROUTE, netns);
  try {
    const body = Buffer.alloc(12);
    body.writeUInt8(family === 'bridge' ? AF_BRIDGE : family === 6 ? AF_INET6 : AF_INET, 0);
    const parts = await nl.request(RTM_GETNEIGH, NLM_F_DUMP, body);
    const out: Neighbour[] = [];
    for (const p of parts) {
      if (p.readUInt16LE(4) !== RTM_NEWNEIGH) continue;
      const a = attrs(p, 16 + 12, p.readUInt32LE(0));
      const flags = p.readUInt8(16 + 10);
      const n: Neighbour = { ifindex: p.readInt32LE(16 + 4), state: nudState(p.readUInt16LE(16 + 8)) };
      if (a.has(NDA_DST)) n.ip = fmtIp(a.get(NDA_DST)!);
      if (a.has(NDA_LLADDR) && a.get(NDA_LLADDR)!.length === 6) n.mac = fmtMac(a.get(NDA_LLADDR)!);
      if (a.has(NDA_MASTER)) n.master = a.get(NDA_MASTER)!.readUInt32LE(0);
      if (flags & NTF_SELF) n.self = true;
      if (flags & NTF_MASTER && n.master === undefined) n.master = -1;
      out.push(n);
    }
    return out;
  } finally {
    nl.close();
  }
}

// --- conntrack ---
const NFNL_SUBSYS_CTNETLINK = 1, IPCTNL_MSG_CT_GET = 1, IPCTNL_MSG_CT_NEW = 0;
const CTA_TUPLE_ORIG = 1, CTA_TUPLE_REPLY = 2, CTA_STATUS = 3, CTA_PROTOINFO = 4, CTA_TIMEOUT = 7;
const CTA_TUPLE_IP = 1, CTA_TUPLE_PROTO = 2;
const CTA_IP_V4_SRC = 1, CTA_IP_V4_DST = 2, CTA_IP_V6_SRC = 3, CTA_IP_V6_DST = 4;
const CTA_PROTO_NUM = 1, CTA_PROTO_SRC_PORT = 2, CTA_PROTO_DST_PORT = 3, CTA_PROTO_ICMP_ID = 4, CTA_PROTO_ICMP_TYPE = 5, CTA_PROTO_ICMP_CODE = 6;
const CTA_PROTO_ICMPV6_ID = 7, CTA_PROTO_ICMPV6_TYPE = 8, CTA_PROTO_ICMPV6_CODE = 9;
const CTA_PROTOINFO_TCP = 1, CTA_PROTOINFO_TCP_STATE = 1;
const TCP_STATES = ['none', 'SYN_SENT', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT', 'CLOSE_WAIT', 'LAST_ACK', 'TIME_WAIT', 'CLOSE', 'SYN_SENT2'];
const STATUS: [number, string][] = [[2, 'SEEN_REPLY'], [4, 'ASSURED'], [8, 'CONFIRMED'], [16, 'SNAT'], [32, 'DNAT']];
const PROTO_NUM: Record<string, number> = { icmp: 1, tcp: 6, udp: 17, icmpv6: 58 };

export interface Tuple { proto: string; saddr: string; daddr: string; sport?: number; dport?: number; icmpId?: number }

export interface ConntrackEntry {
  orig: Tuple;
  reply: Tuple;
  status: string[];
  /** TCP only */
  state?: string;
  timeout?: number;
}

function tupleAttr(type: number, t: Tuple): Buffer {
  const v6 = net.isIP(t.saddr) === 6;
  const ip = Buffer.concat([attr(v6 ? CTA_IP_V6_SRC : CTA_IP_V4_SRC, ipBytes(t.saddr)), attr(v6 ? CTA_IP_V6_DST : CTA_IP_V4_DST, ipBytes(t.daddr))]);
  const u16 = (n: number) => { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; };
  const proto: Buffer[] = [attr(CTA_PROTO_NUM, Buffer.of(PROTO_NUM[t.proto] ?? 0))];
  if (t.proto === 'icmp') proto.push(attr(CTA_PROTO_ICMP_ID, u16(t.icmpId ?? 0)), attr(CTA_PROTO_ICMP_TYPE, Buffer.of(8)), attr(CTA_PROTO_ICMP_CODE, Buffer.of(0)));
  else if (t.proto === 'icmpv6') proto.push(attr(CTA_PROTO_ICMPV6_ID, u16(t.icmpId ?? 0)), attr(CTA_PROTO_ICMPV6_TYPE, Buffer.of(128)), attr(CTA_PROTO_ICMPV6_CODE, Buffer.of(0)));
  else proto.push(attr(CTA_PROTO_SRC_PORT, u16(t.sport ?? 0)), attr(CTA_PROTO_DST_PORT, u16(t.dport ?? 0)));
  return attr(type, Buffer.concat([attr(CTA_TUPLE_IP, ip, true), attr(CTA_TUPLE_PROTO, Buffer.concat(proto), true)]), true);
}

function parseTuple(b: Buffer, proto: string): Tuple {
  const a = attrs(b, 0);
  const ip = attrs(a.get(CTA_TUPLE_IP) ?? Buffer.alloc(0), 0);
  const pr = attrs(a.get(CTA_TUPLE_PROTO) ?? Buffer.alloc(0), 0);
  const t: Tuple = { proto, saddr: fmtIp(ip.get(CTA_IP_V4_SRC) ?? ip.get(CTA_IP_V6_SRC) ?? Buffer.alloc(4)), daddr: fmtIp(ip.get(CTA_IP_V4_DST) ?? ip.get(CTA_IP_V6_DST) ?? Buffer.alloc(4)) };
  if (pr.has(CTA_PROTO_SRC_PORT)) t.sport = pr.get(CTA_PROTO_SRC_PORT)!.readUInt16BE(0);
  if (pr.has(CTA_PROTO_DST_PORT)) t.dport = pr.get(CTA_PROTO_DST_PORT)!.readUInt16BE(0);
  const id = pr.get(CTA_PROTO_ICMP_ID) ?? pr.get(CTA_PROTO_ICMPV6_ID);
  if (id) t.icmpId = id.readUInt16BE(0);
  return t;
}

/** The conntrack entry whose original direction is `t`, in the namespace at `netns`; null: there is none. */
export async function conntrackGet(netns: string | undefined, t: Tuple): Promise<ConntrackEntry | null> {
  const nl = new Nl(NETLINK_NETFILTER, netns);
  try {
    const body = Buffer.alloc(4);
    body.writeUInt8(net.isIP(t.saddr) === 6 ? AF_INET6 : AF_INET, 0);
    let parts: Buffer[];
    try {
      // the entry comes flagged NLM_F_MULTI with no NLMSG_DONE after it: the ACK ends the answer
      parts = await nl.request((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET, 4 /* NLM_F_ACK */, body, [tupleAttr(CTA_TUPLE_ORIG, t)]);
    } catch (e) {
      if ((e as { errno?: number }).errno === 2) return null; // ENOENT
      throw e;
    }
    const p = parts.find((x) => x.readUInt16LE(4) === ((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW));
    if (!p) return null;
    const a = attrs(p, 20, p.readUInt32LE(0));
    const status = a.get(CTA_STATUS)?.readUInt32BE(0) ?? 0;
    const e: ConntrackEntry = {
      orig: parseTuple(a.get(CTA_TUPLE_ORIG) ?? Buffer.alloc(0), t.proto),
      reply: parseTuple(a.get(CTA_TUPLE_REPLY) ?? Buffer.alloc(0), t.proto),
      status: STATUS.filter(([bit]) => status & bit).map(([, n]) => n),
    };
    if (a.has(CTA_TIMEOUT)) e.timeout = a.get(CTA_TIMEOUT)!.readUInt32BE(0);
    const pi = a.get(CTA_PROTOINFO);
    if (pi) {
      const tcp = attrs(pi, 0).get(CTA_PROTOINFO_TCP);
      const st = tcp ? attrs(tcp, 0).get(CTA_PROTOINFO_TCP_STATE) : undefined;
      if (st) e.state = TCP_STATES[st[0]!] ?? String(st[0]);
    }
    return e;
  } finally {
    nl.close();
  }
}

const ep = (ip: string, port?: number) => (port === undefined ? ip : net.isIP(ip) === 6 ? `[${ip}]:${port}` : `${ip}:${port}`);

/** "conntrack: tcp 172.17.0.2:40000 → 172.17.0.3:80, reply from 172.17.0.3:80, CLOSE, SEEN_REPLY ASSURED" */
export function describeConntrack(e: ConntrackEntry): string {
  const o = e.orig, r = e.reply;
  const id = o.icmpId !== undefined ? ` id ${o.icmpId}` : '';
  const nat = r.saddr !== o.daddr || r.sport !== o.dport ? `, reply from ${ep(r.saddr, r.sport)} (DNAT)` : '';
  const snat = r.daddr !== o.saddr ? `, reply to ${ep(r.daddr, r.dport)} (masqueraded)` : '';
  return `conntrack: ${o.proto} ${ep(o.saddr, o.sport)} → ${ep(o.daddr, o.dport)}${id}${nat}${snat}${e.state ? `, ${e.state}` : ''}${e.status.length ? `, ${e.status.join(' ')}` : ''}`;
}
