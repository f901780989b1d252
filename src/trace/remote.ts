// Traces across an overlay network: the probe crosses the VXLAN tunnel, and the host at the other end
// reports what its kernel did with it. The two daemons talk through the cluster store they share
// (dockerd's classic overlay has no other channel between hosts: their APIs are unix sockets):
//
//   /loom/traces/req/<hostId>/<id>   the asking host: which probe (network, addresses, protocol, source
//                                    port or echo id); leased. Deleted when the probe is over.
//   /loom/traces/ack/<id>            the remote host armed its trace rules: the probe may go
//   /loom/traces/res/<id>            the remote host's hops (JSON), after the request key went
//
// Each side marks the *outer* packet in its own namespace with a temporary `meta nftrace set 1` rule in
// loom's table that matches the VXLAN packet carrying this probe: UDP 4789 whose inner IPv4 packet has
// the probe's protocol and source port / echo id (raw payload offsets behind the outer UDP header, the
// VXLAN header and the inner Ethernet header). Other tunnel traffic is not marked. Trace events of the
// same packet in later chains carry the same trace id, which is how they are kept.
import path from 'node:path';
import crypto from 'node:crypto';
import type { Daemon } from '../daemon.ts';
import type { Watch, WatchEvent } from '../store/cluster.ts';
import { Nft } from '../firewall/nft.ts';
import { parseHandles, TraceListener, type TraceEvent } from './nftrace.ts';
import { meaningOf, type MeaningContext } from './meaning.ts';
import { linkNames } from './routes.ts';
import { listNeighbours } from './kernelstate.ts';
import type { TraceHop } from './tracer.ts';
import { VXLAN_PORT } from '../drivers/overlay.ts';
import { parseClusterFlags } from '../core/cluster.ts';

export const TRACE_PREFIX = '/loom/traces/';
const KEY = {
  req: (host: string, id: string) => `${TRACE_PREFIX}req/${host}/${id}`,
  ack: (id: string) => `${TRACE_PREFIX}ack/${id}`,
  res: (id: string) => `${TRACE_PREFIX}res/${id}`,
};

export interface RemoteTraceRequest {
  id: string;
  /** the asking host's id and tunnel address */
  from: string;
  fromVtep: string;
  network: string;
  proto: 'tcp' | 'udp' | 'icmp';
  sport: number;
  port?: number;
  srcIp: string;
  dstIp: string;
  srcMac?: string;
  timeoutMs: number;
}

export interface RemoteTraceResult { host: string; hops: TraceHop[]; events: number }

const INNER_PROTO: Record<string, number> = { icmp: 1, tcp: 6, udp: 17 };

/**
 * nft matches for the VXLAN packets carrying a probe (inner IPv4 at byte 30 of the UDP payload view:
 * outer UDP 8 + VXLAN 8 + Ethernet 14; its protocol at byte 39, its transport header at byte 50).
 */
export function tunnelMatches(proto: 'tcp' | 'udp' | 'icmp', sport: number): string[] {
  const base = `udp dport ${VXLAN_PORT} @th,312,8 ${INNER_PROTO[proto]}`;
  if (proto === 'icmp') return [`${base} @th,432,16 ${sport}`];
  return [`${base} @th,400,16 ${sport}`, `${base} @th,416,16 ${sport}`];
}

/** `add chain ... add rule ...` / `delete chain ...` for the marking chains of a tunnel trace. */
export function markingChains(name: string, matches: string[], comment: string): { add: string; remove: string } {
  const pre = `${name}_pre`, out = `${name}_out`;
  const rules = (chain: string) => matches.map((m) => `add rule ip loom ${chain} ${m} meta nftrace set 1 comment "${comment}"\n`).join('');
  return {
    add: `add chain ip loom ${pre} { type filter hook prerouting priority -350; policy accept; }\n`
      + `add chain ip loom ${out} { type filter hook output priority -350; policy accept; }\n${rules(pre)}${rules(out)}`,
    remove: `flush chain ip loom ${pre}\ndelete chain ip loom ${pre}\nflush chain ip loom ${out}\ndelete chain ip loom ${out}\n`,
  };
}

/** Keeps the trace events of packets our marking chains (`name`_pre/_out) marked, by trace id. */
export function markedBy(name: string, also: (e: TraceEvent) => boolean = () => false): (e: TraceEvent) => boolean {
  const ids = new Set<number>();
  return (e) => {
    if (e.table === 'loom' && (e.chain === `${name}_pre` || e.chain === `${name}_out`) && e.packet?.proto === 'udp' && (e.packet.dport === VXLAN_PORT)) ids.add(e.id);
    return ids.has(e.id) || also(e);
  };
}


/** The events of outer (VXLAN) packets as hops, each rule explained. */
export function tunnelEventHops(events: TraceEvent[], name: string, where: string, rules: Map<string, string>, ctx: MeaningContext, localVtep: string | undefined): TraceHop[] {
  const hops: TraceHop[] = [];
  for (const e of events) {
    if (e.table === 'loom' && e.chain.startsWith(name)) continue;
    if (e.type === 'return' || !e.packet) continue;
    const rule = e.handle !== undefined ? rules.get(`${e.family} ${e.table} ${e.chain} ${e.handle}`) ?? `handle ${e.handle}` : `policy ${e.verdict}`;
    const meaning = meaningOf(e, rule, ctx);
    if (e.type === 'rule' && e.verdict === 'continue' && !meaning) continue;
    const pk = e.packet;
    hops.push({
      kind: e.type === 'policy' ? 'policy' : 'rule', where, table: `${e.family} ${e.table}`, chain: e.chain, handle: e.handle,
      verdict: e.verdict + (e.target ? ` ${e.target}` : ''), direction: localVtep && pk.daddr === localVtep ? 'reply' : 'request', packet: pk,
      text: `${e.family} ${e.table} ${e.chain}: ${rule}`,
      meaning: `the VXLAN packet carrying the probe (UDP ${pk.saddr} → ${pk.daddr}:${pk.dport})${meaning ? `: ${meaning}` : ' passes'}`,
    });
  }
  return hops;
}

let listerNft: Nft | null = null;
export function ruleTexts(tables: Set<string>): Map<string, string> {
  listerNft ??= new Nft({ handles: true });
  const out = new Map<string, string>();
  for (const t of tables) {
    const [family, table] = t.split(' ');
    try {
      for (const [k, v] of parseHandles(listerNft.run(`list table ${family} ${table}\n`), family!)) out.set(k, v);
    } catch { /* gone meanwhile */ }
  }
  return out;
}

export function meaningContext(d: Daemon, ifname: Map<number, string>): MeaningContext {
  const nets = d.networks.list();
  return {
    ifname,
    bridgeNet: new Map(nets.flatMap((x) => (x.bridge ? [[x.bridge, x.name] as [string, string]] : []))),
    idNet: new Map(nets.map((x) => [x.id.slice(0, 12), x.name])),
    published: new Map(d.containers.list().flatMap((c) => (c.published ?? []).map((m) => [`${m.proto} ${m.hostPort}`, `${c.name}:${m.containerPort}`] as [string, string]))),
  };
}

/** A trace's conversation with the remote host: armed, then finished with its hops. */
export interface RemoteLeg {
  finish(): Promise<RemoteTraceResult | { error: string }>;
}

/** Both roles of one daemon: asking other hosts, and answering them. Started with the cluster. */
export class TraceExchange {
  private watch: Watch | null = null;
  private closed = false;
  private readonly waiting = new Map<string, (v: string) => void>();
  private readonly serving = new Map<string, () => void>();
  private readonly d: Daemon;
  private seq = 0;
  private vtep: string | undefined;

  constructor(d: Daemon) {
    this.d = d;
  }

  private get cluster() {
    return this.d.cluster!;
  }

  /** Watches the trace keys, in the background: a store out of reach is tried again every 2 s. */
  begin(): void {
    if (this.closed) return;
    void this.start().catch(() => { if (!this.closed) setTimeout(() => this.begin(), 2000).unref(); });
  }

  private async start(): Promise<void> {
    const { revision } = await this.cluster.store.list(TRACE_PREFIX);
    const w = await this.cluster.store.watch(TRACE_PREFIX, revision, (e) => this.onEvent(e), () => {
      // broken (store gone): start again later; a trace asked meanwhile reports the remote side missing
      this.watch = null;
      if (!this.closed) setTimeout(() => this.begin(), 1000).unref();
    });
    if (this.closed) await w.cancel();
    else this.watch = w;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.watch?.cancel().catch(() => {});
  }

  private onEvent(e: WatchEvent): void {
    const k = e.key.slice(TRACE_PREFIX.length);
    const mine = `req/${this.cluster.hostId}/`;
    if (k.startsWith(mine)) {
      const id = k.slice(mine.length);
      if (e.type === 'put') void this.serve(JSON.parse(e.value) as RemoteTraceRequest).catch(() => {});
      else this.serving.get(id)?.();
    } else if (e.type === 'put' && (k.startsWith('ack/') || k.startsWith('res/'))) {
      this.waiting.get(k)?.(e.value);
    }
  }

  private wait(k: string, ms: number): Promise<string | null> {
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.waiting.delete(k); resolve(null); }, ms);
      this.waiting.set(k, (v) => { clearTimeout(t); this.waiting.delete(k); resolve(v); });
    });
  }

  /** Asks `host` to watch for the probe; resolves once it is armed (or with an error after 1 s). */
  async ask(host: string, r: Omit<RemoteTraceRequest, 'id' | 'from'>): Promise<RemoteLeg | { error: string }> {
    if (!this.watch) return { error: 'this host does not watch the cluster store (out of reach?): the remote host cannot be asked' };
    const id = `${this.cluster.hostId.slice(0, 12)}-${process.pid}-${++this.seq}-${crypto.randomBytes(3).toString('hex')}`;
    const req: RemoteTraceRequest = { ...r, id, from: this.cluster.hostId };
    const acked = this.wait(`ack/${id}`, 1000);
    const resulted = this.wait(`res/${id}`, 1000 + r.timeoutMs + 2000);
    const store = this.cluster.store;
    await store.txn([], [{ put: KEY.req(host, id), value: JSON.stringify(req), leased: true }]);
    const done = async () => {
      await store.txn([], [{ delete: KEY.req(host, id) }]).catch(() => {});
    };
    if ((await acked) === null) {
      await done();
      return { error: 'the remote host did not answer through the cluster store within 1 s (is its daemon running?)' };
    }
    return {
      finish: async () => {
        await done();
        const v = await resulted;
        void store.txn([], [{ delete: KEY.ack(id) }, { delete: KEY.res(id) }]).catch(() => {});
        return v === null ? { error: 'the remote host sent no result' } : JSON.parse(v) as RemoteTraceResult;
      },
    };
  }

  /** The remote side: arm marking rules for the tunnel packets, wait for the end, report. */
  private async serve(r: RemoteTraceRequest): Promise<void> {
    const name = `rtrace${++this.seq}`;
    const { add, remove } = markingChains(name, tunnelMatches(r.proto, r.sport), `network trace from ${r.fromVtep}`);
    const listener = new TraceListener(markedBy(name));
    const fwKey = `rtrace-${r.id}`;
    const store = this.cluster.store;
    const over = new Promise<void>((resolve) => {
      const t = setTimeout(resolve, r.timeoutMs + 3000);
      this.serving.set(r.id, () => { clearTimeout(t); resolve(); });
    });
    listener.start();
    try {
      this.d.firewall.addExtra(fwKey, add, remove);
      await store.txn([], [{ put: KEY.ack(r.id), value: '1', leased: true }]);
      await over;
      await listener.settle(15, 30);
    } finally {
      this.serving.delete(r.id);
      this.d.firewall.removeExtra(fwKey);
      listener.close();
    }
    const hops = await this.remoteHops(r, name, listener.events);
    const res: RemoteTraceResult = { host: this.hostLabel(), hops, events: listener.events.length };
    await store.txn([], [{ put: KEY.res(r.id), value: JSON.stringify(res), leased: true }]);
    // the asking host deletes both once read; should it have gone meanwhile, they go here
    setTimeout(() => void store.txn([], [{ delete: KEY.ack(r.id) }, { delete: KEY.res(r.id) }]).catch(() => {}), 30_000).unref();
  }

  private hostLabel(): string {
    return `host ${this.advertise}`;
  }

  /** This host's tunnel address (--cluster-advertise, resolved as the daemon did at its start). */
  get advertise(): string {
    this.vtep ??= parseClusterFlags(this.d.opts.clusterStore, this.d.opts.clusterAdvertise, this.d.opts.clusterStoreOpts ?? [])?.advertise ?? '?';
    return this.vtep;
  }

  private async remoteHops(r: RemoteTraceRequest, name: string, events: TraceEvent[]): Promise<TraceHop[]> {
    const where = this.hostLabel();
    const net = this.d.networks.find(r.network);
    const ns = path.join(this.d.opts.execRoot, 'netns', `1-${r.network.slice(0, 10)}`);
    const ctr = this.d.containers.list().find((c) => Object.values(c.endpoints).some((e) => e.networkId === r.network && e.ipv4 === r.dstIp));
    const ep = ctr ? Object.values(ctr.endpoints).find((e) => e.networkId === r.network) : undefined;
    const hops: TraceHop[] = [{ kind: 'tunnel', where, text: `VXLAN from ${r.fromVtep} arrives (UDP ${VXLAN_PORT}), decapsulated by vxlan0 of overlay network ${net?.name ?? r.network.slice(0, 12)} (namespace ${path.basename(ns)})` }];
    const ifname = await linkNames().catch(() => new Map<number, string>());
    const tables = new Set(events.map((e) => `${e.family} ${e.table}`));
    hops.push(...tunnelEventHops(events, name, where, ruleTexts(tables), meaningContext(this.d, ifname), undefined).map((h) => ({
      ...h, direction: h.packet && h.packet.saddr === r.fromVtep ? 'request' as const : 'reply' as const,
    })));
    if (!ctr || !ep) {
      hops.push({ kind: 'interface', where, text: `no container of this host has ${r.dstIp} on that network` });
      return hops;
    }
    try {
      const [links, fdb] = await Promise.all([linkNames(ns), listNeighbours(ns, 'bridge')]);
      const port = fdb.find((x) => x.mac === ep.mac && x.master !== undefined && links.get(x.ifindex) !== 'br0');
      hops.push({ kind: 'fdb', where, text: port ? `bridge br0: ${ep.mac} → port ${links.get(port.ifindex) ?? port.ifindex} (${port.state === 'permanent' ? 'static' : `learned, ${port.state}`})` : `bridge br0: no forwarding entry for ${ep.mac}: the frame is flooded to every port` });
    } catch (e) {
      hops.push({ kind: 'fdb', where, text: `forwarding database unreadable: ${(e as Error).message}` });
    }
    hops.push({ kind: 'interface', where: ctr.name, text: `${ep.hostVeth ?? '?'} on br0 of overlay network ${ep.networkName} ↔ ${ep.ifname} of ${ctr.name} (${ep.ipv4}, ${ep.mac})` });
    // the way back: who the container thinks the source is, and where the overlay sends that MAC
    if (ctr.netnsPath) {
      try {
        const [links, neigh] = await Promise.all([linkNames(ctr.netnsPath), listNeighbours(ctr.netnsPath, 4)]);
        const n = neigh.find((x) => x.ip === r.srcIp);
        hops.push({ kind: 'neighbour', where: ctr.name, direction: 'reply', text: n?.mac ? `reply: neighbour ${r.srcIp} is ${n.mac} on ${links.get(n.ifindex) ?? n.ifindex} (${n.state})` : `reply: no neighbour entry for ${r.srcIp}` });
        const mac = n?.mac ?? r.srcMac;
        if (mac) {
          const fdb = await listNeighbours(ns, 'bridge');
          const tunnel = fdb.find((x) => x.mac === mac && x.self && x.ip);
          const nsLinks = await linkNames(ns);
          hops.push({ kind: 'fdb', where, direction: 'reply', text: tunnel ? `reply: ${nsLinks.get(tunnel.ifindex) ?? 'vxlan0'}: ${mac} → remote tunnel endpoint ${tunnel.ip} (VXLAN, ${tunnel.state}, from the cluster store)` : `reply: no tunnel entry for ${mac} on vxlan0` });
        }
      } catch (e) {
        hops.push({ kind: 'neighbour', where: ctr.name, text: `neighbour table unreadable: ${(e as Error).message}` });
      }
    }
    return hops;
  }
}

const exchanges = new WeakMap<Daemon, TraceExchange>();

/** The daemon's exchange, when it runs with a cluster store (started by startTraceExchange). */
export function exchangeOf(d: Daemon): TraceExchange | undefined {
  return exchanges.get(d);
}

/** Starts answering other hosts' traces (and asking them); with --cluster-store only. Never waits for the store. */
export function startTraceExchange(d: Daemon): void {
  if (!d.cluster || exchanges.has(d)) return;
  const x = new TraceExchange(d);
  exchanges.set(d, x);
  x.begin();
}

export async function stopTraceExchange(d: Daemon): Promise<void> {
  await exchanges.get(d)?.close();
  exchanges.delete(d);
}
