// nftables trace events, read in process: a packet whose skb has nftrace set (by a `meta nftrace set 1`
// rule) makes every nf_tables chain it crosses report each rule that matched, each return and each chain
// policy as an NFT_MSG_TRACE message on NETLINK_NETFILTER's multicast group NFNLGRP_NFTRACE, in the
// namespace where the hook runs. This is what `nft monitor trace` prints; here it is parsed into records.
// The socket only receives, so the `netlink` package's RawNetlinkSocket is enough (as in firewall/watch.ts).
import { attrMap as attrs } from '../kernel/netmsg.ts';
import { RawNetlinkSocket } from 'netlink';
import ipaddr from 'ipaddr.js';

const NETLINK_NETFILTER = 12;
const NFNLGRP_NFTRACE = 9;
const NFNL_SUBSYS_NFTABLES = 10;
const NFT_MSG_TRACE = 17;
const NLMSG_HDRLEN = 16, NFGENMSG_LEN = 4;

const A = { TABLE: 1, CHAIN: 2, RULE_HANDLE: 3, TYPE: 4, VERDICT: 5, ID: 6, NETWORK_HEADER: 8, TRANSPORT_HEADER: 9, IIF: 10, OIF: 12, MARK: 14, NFPROTO: 15, POLICY: 16 };
const NFTA_VERDICT_CODE = 1, NFTA_VERDICT_CHAIN = 2;
const TRACE_TYPES: Record<number, TraceEvent['type']> = { 1: 'policy', 2: 'return', 3: 'rule' };
const VERDICTS: Record<number, string> = { 0: 'drop', 1: 'accept', 2: 'stolen', 3: 'queue', 4: 'repeat', 5: 'stop', [-1]: 'continue', [-2]: 'break', [-3]: 'jump', [-4]: 'goto', [-5]: 'return' };
const FAMILIES: Record<number, string> = { 1: 'inet', 2: 'ip', 3: 'arp', 5: 'netdev', 7: 'bridge', 10: 'ip6' };
const PROTOS: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6', 132: 'sctp' };

/** The packet as the hook saw it (addresses and ports before or after NAT, depending on where). */
export interface TracePacket { proto: string; saddr: string; daddr: string; sport?: number; dport?: number; icmpType?: number; icmpId?: number }

export interface TraceEvent {
  id: number;
  family: string;
  table: string;
  chain: string;
  type: 'rule' | 'return' | 'policy';
  handle?: number;
  /** accept, drop, jump, goto, continue, return... */
  verdict?: string;
  /** the chain of a jump or goto */
  target?: string;
  iif?: number;
  oif?: number;
  packet?: TracePacket;
}

function str(b: Buffer): string {
  return b.toString('latin1').replace(/\0.*$/s, '');
}

function ipv4(b: Buffer, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

function ipv6(b: Buffer, at: number): string {
  return ipaddr.fromByteArray([...b.subarray(at, at + 16)]).toString();
}

/**
 * The IPv4 or IPv6 header and the first bytes of the transport header, as the trace carries them (for
 * IPv6 the next header field names the transport: loom's probes carry no extension headers).
 */
export function parsePacket(net: Buffer | undefined, th: Buffer | undefined): TracePacket | undefined {
  if (!net || net.length < 20) return undefined;
  let p: TracePacket;
  if (net[0]! >> 4 === 6 && net.length >= 40) p = { proto: PROTOS[net[6]!] ?? String(net[6]), saddr: ipv6(net, 8), daddr: ipv6(net, 24) };
  else if (net[0]! >> 4 === 4) p = { proto: PROTOS[net[9]!] ?? String(net[9]), saddr: ipv4(net, 12), daddr: ipv4(net, 16) };
  else return undefined;
  if (th && th.length >= 4 && (p.proto === 'tcp' || p.proto === 'udp' || p.proto === 'sctp')) {
    p.sport = th.readUInt16BE(0);
    p.dport = th.readUInt16BE(2);
  }
  if (th && th.length >= 1 && (p.proto === 'icmp' || p.proto === 'icmpv6')) {
    p.icmpType = th[0];
    if (th.length >= 6) p.icmpId = th.readUInt16BE(4);
  }
  return p;
}

/** Every NFT_MSG_TRACE message in one netlink datagram (pure; exported for tests). */
export function parseTraceEvents(buf: Buffer): TraceEvent[] {
  const out: TraceEvent[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) break;
    const type = buf.readUInt16LE(off + 4);
    if (type === ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_TRACE)) {
      const family = FAMILIES[buf[off + NLMSG_HDRLEN]!] ?? String(buf[off + NLMSG_HDRLEN]);
      const a = attrs(buf, off + NLMSG_HDRLEN + NFGENMSG_LEN, off + len);
      const u32 = (k: number) => (a.get(k)?.length ?? 0) >= 4 ? a.get(k)!.readUInt32BE(0) : undefined;
      const e: TraceEvent = {
        id: u32(A.ID) ?? 0, family, table: a.has(A.TABLE) ? str(a.get(A.TABLE)!) : '', chain: a.has(A.CHAIN) ? str(a.get(A.CHAIN)!) : '',
        type: TRACE_TYPES[u32(A.TYPE) ?? 0] ?? 'rule',
      };
      if ((a.get(A.RULE_HANDLE)?.length ?? 0) >= 8) e.handle = Number(a.get(A.RULE_HANDLE)!.readBigUInt64BE(0));
      const v = a.get(A.VERDICT);
      if (v) {
        const va = attrs(v, 0, v.length);
        if (va.has(NFTA_VERDICT_CODE)) e.verdict = VERDICTS[va.get(NFTA_VERDICT_CODE)!.readInt32BE(0)] ?? String(va.get(NFTA_VERDICT_CODE)!.readInt32BE(0));
        if (va.has(NFTA_VERDICT_CHAIN)) e.target = str(va.get(NFTA_VERDICT_CHAIN)!);
      }
      if (e.type === 'policy' && u32(A.POLICY) !== undefined) e.verdict = VERDICTS[u32(A.POLICY)!] ?? String(u32(A.POLICY));
      if (u32(A.IIF)) e.iif = u32(A.IIF);
      if (u32(A.OIF)) e.oif = u32(A.OIF);
      const pkt = parsePacket(a.get(A.NETWORK_HEADER), a.get(A.TRANSPORT_HEADER));
      if (pkt) e.packet = pkt;
      out.push(e);
    }
    off += (len + 3) & ~3;
  }
  return out;
}

/**
 * One socket on NFNLGRP_NFTRACE for the daemon's life, created on first use in the daemon's namespace:
 * opening and closing one per trace lost events after a few traces (the group's listener check races
 * the socket churn), and one socket is cheaper anyway. Each trace subscribes with a filter.
 */
class TraceMonitor {
  private sock: RawNetlinkSocket | null = null;
  private readonly subs = new Set<TraceListener>();

  add(l: TraceListener): void {
    if (!this.sock) {
      const sock = new RawNetlinkSocket(NETLINK_NETFILTER, { recvBufferSize: 4 << 20, sendBufferSize: 0 } as never);
      sock.addMembership(NFNLGRP_NFTRACE);
      sock.on('message', (msg: Buffer) => {
        const events = parseTraceEvents(msg);
        for (const sub of this.subs) sub.deliver(events);
      });
      sock.on('error', () => { /* ENOBUFS: events lost; a trace reports what arrived */ });
      sock.unref();
      this.sock = sock;
    }
    this.subs.add(l);
  }

  remove(l: TraceListener): void {
    this.subs.delete(l);
  }
}

const monitor = new TraceMonitor();

/** Collects the trace events `keep` accepts, from start() to close(). */
export class TraceListener {
  readonly events: TraceEvent[] = [];
  private readonly packets = new Map<number, TracePacket>();
  private waiters: (() => void)[] = [];
  private readonly keep: (e: TraceEvent) => boolean;

  constructor(keep: (e: TraceEvent) => boolean) {
    this.keep = keep;
  }

  start(): void {
    monitor.add(this);
  }

  deliver(events: TraceEvent[]): void {
    for (const e of events) {
      // the kernel attaches the packet to the first message of a hook only: the later ones (a chain's
      // policy, say) get it from there, by their trace id
      if (e.packet) this.packets.set(e.id, e.packet);
      else if (this.packets.has(e.id)) e.packet = this.packets.get(e.id);
      if (this.keep(e)) this.events.push(e);
    }
    for (const w of this.waiters.splice(0)) w();
  }

  /**
   * Resolves when no event arrived for `quietMs`, checked after an I/O poll: under load the timer can
   * expire before the loop reads the socket (timers run before the poll phase), so each quiet period
   * ends with a setImmediate (after the poll) before counting. With no event at all it waits up to
   * `firstMs`, since events of a probe that crossed a hook may still be queued.
   */
  async settle(quietMs: number, firstMs = 250): Promise<void> {
    const t0 = Date.now();
    for (;;) {
      const n = this.events.length;
      await new Promise<void>((r) => {
        const t = setTimeout(r, quietMs);
        this.waiters.push(() => { clearTimeout(t); r(); });
      });
      await new Promise<void>((r) => setImmediate(r));
      if (this.events.length !== n) continue;
      if (n === 0 && Date.now() - t0 < firstMs) continue;
      return;
    }
  }

  close(): void {
    monitor.remove(this);
  }
}

/** "table ip loom { chain forward { ... # handle 12" → rule text by family/table/chain/handle. */
export function parseHandles(listing: string, family: string): Map<string, string> {
  const out = new Map<string, string>();
  let table = '', chain = '';
  for (const raw of listing.split('\n')) {
    const line = raw.trim();
    let m: RegExpExecArray | null;
    if ((m = /^table \S+ (\S+) \{/.exec(line))) table = m[1]!;
    else if ((m = /^chain (\S+) \{/.exec(line))) chain = m[1]!;
    else if ((m = /^(.*\S)\s+# handle (\d+)$/.exec(line)) && chain) out.set(`${family} ${table} ${chain} ${m[2]}`, m[1]!);
  }
  return out;
}
