// `network trace SRC DST`: a real probe (TCP SYN, UDP datagram or ICMP echo) sent from SRC's namespace,
// and what the kernel did with it: the route lookups, the interfaces and bridges on the way, and every
// nftables rule it met (trace events for exactly this probe: a temporary `meta nftrace set 1` rule in
// loom's own table matching the probe's source port / echo id), each explained in Docker's terms, then a
// verdict. The temporary chains go in through the daemon's own Firewall (so the self-heal watcher knows
// them as loom's, and a heal replays them), and always come out again, also on error.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Daemon } from '../daemon.ts';
import { Nft } from '../firewall/nft.ts';
import { invalidParameter, LoomError } from '../util/errors.ts';
import { parseHandles, TraceListener, type TraceEvent, type TracePacket } from './nftrace.ts';
import { meaningOf, type MeaningContext } from './meaning.ts';
import { resolveParties, checkPort, type Party } from './parties.ts';
import { linkNames, lookupRoute, type RouteHop } from './routes.ts';
import { conntrackGet, describeConntrack, listNeighbours, type Neighbour } from './kernelstate.ts';
import type { EndpointRecord } from '../core/types.ts';
import ipaddr from 'ipaddr.js';
import { exchangeOf, markedBy, markingChains, tunnelEventHops, tunnelMatches, type RemoteLeg, type RemoteTraceResult, type TraceExchange } from './remote.ts';
import type { EndpointClaim } from '../core/cluster.ts';
import { vniOf, VXLAN_PORT } from '../drivers/overlay.ts';
import type { ProbeRequest, ProbeResult } from './probe-worker.ts';

export interface TraceRequest {
  Source: string;
  Destination: string;
  /** tcp, udp or icmp (default) */
  Protocol?: string;
  Port?: number;
  /** how long to wait for an answer (default 1000 ms) */
  TimeoutMs?: number;
  /** trace between the containers' IPv6 addresses (implied by an IPv6 address in Source or Destination) */
  IPv6?: boolean;
}

export interface TraceHop {
  /** route, interface, neighbour, fdb, bridge, rule, policy, nat, conntrack, remote, probe */
  kind: string;
  /** the namespace it happened in (a container's name, host, outside) */
  where: string;
  text: string;
  /** rules: table, chain, handle, verdict and the packet as the hook saw it */
  table?: string;
  chain?: string;
  handle?: number;
  verdict?: string;
  direction?: 'request' | 'reply';
  iif?: string;
  oif?: string;
  packet?: TracePacket;
  /** what it means in Docker's terms */
  meaning?: string;
}

export type Verdict = 'delivered' | 'dropped' | 'refused' | 'no answer' | 'no route';

export interface TraceResult {
  Source: { kind: string; name: string; ip?: string };
  /** host: the remote host's tunnel address, for a container across an overlay network */
  Destination: { kind: string; name: string; ip?: string; host?: string };
  Protocol: string;
  Port?: number;
  Hops: TraceHop[];
  Verdict: Verdict;
  Reason: string;
  /** the rule that decided, for a drop */
  Rule?: string;
  DurationMs: number;
}

const KEY_PROTOS = ['tcp', 'udp', 'icmp'];

/** One worker thread for every probe, started on first use; probes go to it one at a time. */
class Prober {
  private worker: Worker | null = null;
  private seq = 0;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly waiting = new Map<number, (r: ProbeResult) => void>();
  /** shared with the worker: [0] = the probe to stop waiting for */
  private readonly stopFlag = new Int32Array(new SharedArrayBuffer(4));
  private running = 0;

  /** The probe in flight need not wait for an answer any more (a rule dropped it). */
  stopCurrent(): void {
    if (this.running) Atomics.store(this.stopFlag, 0, this.running);
  }

  send(req: ProbeRequest): Promise<ProbeResult> {
    const run = this.chain.then(() => this.sendNow(req));
    this.chain = run.catch(() => {});
    return run;
  }

  private sendNow(req: ProbeRequest): Promise<ProbeResult> {
    if (!this.worker) {
      const file = path.join(path.dirname(fileURLToPath(import.meta.url)), 'probe-worker.ts');
      const w = new Worker(file, { workerData: { stop: this.stopFlag } });
      w.unref();
      w.on('message', (m: { seq: number; res: ProbeResult }) => { this.waiting.get(m.seq)?.(m.res); this.waiting.delete(m.seq); });
      const fail = (e: Error) => {
        for (const r of this.waiting.values()) r({ outcome: 'error', detail: `probe worker: ${e.message}` });
        this.waiting.clear();
        this.worker = null;
      };
      w.on('error', fail);
      w.on('exit', () => fail(new Error('exited')));
      this.worker = w;
    }
    const seq = ++this.seq;
    this.running = seq;
    return new Promise((resolve) => {
      this.waiting.set(seq, (r) => { this.running = 0; resolve(r); });
      this.worker!.postMessage({ seq, req });
    });
  }

  close(): void {
    void this.worker?.terminate();
    this.worker = null;
  }
}

export { parseHandles } from './nftrace.ts';

let traceSeq = 0;

export class Tracer {
  private readonly prober = new Prober();
  private lister: Nft | null = null;

  private readonly d: Daemon;

  constructor(d: Daemon) {
    this.d = d;
  }

  close(): void {
    this.prober.close();
    this.lister?.close();
  }

  private listRules(tables: Set<string>): Map<string, string> {
    // a context of its own, with handles in its listings (the firewall's context prints none)
    this.lister ??= new Nft({ handles: true });
    const out = new Map<string, string>();
    for (const t of tables) {
      const [family, table] = t.split(' ');
      try {
        for (const [k, v] of parseHandles(this.lister.run(`list table ${family} ${table}\n`), family!)) out.set(k, v);
      } catch { /* gone meanwhile */ }
    }
    return out;
  }

  /** "eth0 (addr, mac) ↔ vethX on bridge B (network N)", a macvlan/ipvlan port, or an overlay's. */
  private interfaceText(ep: EndpointRecord, family: 4 | 6, toward: boolean, label: string): string | undefined {
    const net = this.d.networks.find(ep.networkId);
    const addr = `${family === 6 ? ep.ipv6 : ep.ipv4}, ${ep.mac}`;
    if (net?.driver === 'macvlan' || net?.driver === 'ipvlan') {
      const mode = net.options[`${net.driver}_mode`] || (net.driver === 'macvlan' ? 'bridge' : 'l2');
      const port = `${net.driver} port of ${net.options.parent ?? 'a dummy parent'} (mode ${mode}, network ${net.name}): frames go out on the parent's segment, the host's bridges and nftables are not on the way`;
      return toward ? `${port} → ${ep.ifname} of ${label} (${addr})` : `${ep.ifname} (${addr}): ${port}`;
    }
    if (!ep.hostVeth) return undefined;
    const bridge = net?.driver === 'overlay' ? `br0 of overlay network ${net.name} (namespace ${path.basename(this.overlayNs(net.id))})` : `bridge ${net?.bridge ?? '?'} (network ${ep.networkName})`;
    return toward ? `${ep.hostVeth} on ${bridge} ↔ ${ep.ifname} of ${label} (${addr})` : `${ep.ifname} (${addr}) ↔ ${ep.hostVeth} on ${bridge}`;
  }

  private exchange(): TraceExchange | undefined {
    return exchangeOf(this.d);
  }

  /** A container on another host of the cluster, by name or id, when no local container has that name. */
  private remoteContainer(ref: string): EndpointClaim | undefined {
    if (!this.d.cluster || !exchangeOf(this.d) || this.d.containers.find(ref)) return undefined;
    for (const net of this.d.networks.list()) {
      if (net.driver !== 'overlay') continue;
      const c = this.d.cluster.remoteEndpoints(net.id).find((x) => x.name === ref || x.container === ref || (ref.length >= 4 && x.container?.startsWith(ref)));
      if (c) return c;
    }
    return undefined;
  }

  /** The probe stays off the host's own namespace: a macvlan/ipvlan port or an overlay network. */
  private offHost(src: Party, dst: Party): boolean {
    const drv = (ep?: EndpointRecord) => (ep ? this.d.networks.find(ep.networkId)?.driver : undefined);
    const off = (x?: string) => x === 'macvlan' || x === 'ipvlan' || x === 'overlay';
    return off(drv(src.endpoint)) && (!dst.endpoint || off(drv(dst.endpoint)));
  }

  /**
   * What the kernel keeps of the probe once it went by: the neighbour entry of the next hop in the
   * source's namespace (ARP / NDP), the forwarding entry of that MAC on the way (the host's bridge, or
   * an overlay's br0 and vxlan0, which names the remote tunnel endpoint), and the probe's connection in
   * the host's conntrack table. Read after the probe (entries outlive it); a failed read is a hop too.
   */
  private async kernelHops(src: Party, route: RouteHop, family: 4 | 6, tuple: TracePacket | undefined, sport: number, port: number | undefined): Promise<TraceHop[]> {
    const hops: TraceHop[] = [];
    // the conntrack read goes on meanwhile (the FDB read needs the neighbour's MAC first)
    const conntrack = this.conntrackHop(src, tuple, sport, port);
    const where = src.kind === 'host' ? 'host' : src.label;
    const norm = (x: string) => ipaddr.parse(x).toString();
    let neighbour: Neighbour | undefined;
    if (route.found && route.dev && route.dev !== 'lo') {
      const nh = norm(route.gateway ?? tuple?.daddr ?? '');
      try {
        const [links, neigh] = await Promise.all([linkNames(src.netns), listNeighbours(src.netns, family)]);
        neighbour = neigh.find((x) => x.ip && norm(x.ip) === nh && links.get(x.ifindex) === route.dev);
        const v = family === 6 ? 'NDP' : 'ARP';
        hops.push({ kind: 'neighbour', where, text: neighbour?.mac && !/failed|incomplete/.test(neighbour.state)
          ? `neighbour ${nh} is ${neighbour.mac} on ${route.dev} (${neighbour.state})`
          : `neighbour ${nh} on ${route.dev}: ${neighbour ? neighbour.state : 'no entry'} (nothing answered ${v})` });
      } catch (e) {
        hops.push({ kind: 'neighbour', where, text: `neighbour table unreadable: ${(e as Error).message}` });
      }
    }
    const ep = src.endpoint;
    const net = ep ? this.d.networks.find(ep.networkId) : undefined;
    const mac = neighbour?.mac;
    if (net && mac && (net.bridge || net.driver === 'overlay')) {
      const ns = net.driver === 'overlay' ? this.overlayNs(net.id) : undefined;
      const brName = net.driver === 'overlay' ? 'br0' : net.bridge!;
      try {
        const [links, fdb] = await Promise.all([linkNames(ns), listNeighbours(ns, 'bridge')]);
        const name = (i: number) => links.get(i) ?? String(i);
        const entries = fdb.filter((x) => x.mac === mac);
        const onBridge = entries.find((x) => x.master !== undefined && name(x.master) === brName);
        const tunnel = entries.find((x) => x.self && x.ip);
        if (onBridge && name(onBridge.ifindex) === brName) hops.push({ kind: 'fdb', where: 'host', text: `bridge ${brName}: ${mac} is the bridge's own address: up to the ${ns ? 'overlay namespace' : 'host'}'s IP stack` });
        else if (onBridge) hops.push({ kind: 'fdb', where: ns ? path.basename(ns) : 'host', text: `bridge ${brName}: ${mac} → port ${name(onBridge.ifindex)} (${onBridge.state === 'permanent' ? 'static' : `learned, ${onBridge.state}`})` });
        else hops.push({ kind: 'fdb', where: ns ? path.basename(ns) : 'host', text: `bridge ${brName}: no forwarding entry for ${mac}: the frame is flooded to every port` });
        if (tunnel) hops.push({ kind: 'fdb', where: path.basename(ns ?? 'host'), text: `${name(tunnel.ifindex)}: ${mac} → remote tunnel endpoint ${tunnel.ip} (VXLAN, ${tunnel.state}, from the cluster store)` });
      } catch (e) {
        hops.push({ kind: 'fdb', where: 'host', text: `forwarding database unreadable: ${(e as Error).message}` });
      }
    }
    const ct = await conntrack;
    if (ct) hops.push(ct);
    return hops;
  }

  /**
   * Source and destination on one icc=true bridge network whose frames skip the IP hooks (the
   * namespace's bridge-nf-call switch off; an icc=false bridge asks for them itself): its bridge and name.
   */
  private bridgedPast(src: Party, dst: Party, family: 4 | 6): { bridge: string; network: string } | undefined {
    if (!src.endpoint?.hostVeth || !dst.endpoint?.hostVeth || src.endpoint.networkId !== dst.endpoint.networkId) return undefined;
    const net = this.d.networks.find(src.endpoint.networkId);
    const view = net && net.driver === 'bridge' ? this.d.networks.driver.firewallView(net) : undefined;
    if (!net?.bridge || !view?.icc) return undefined;
    try {
      if (fs.readFileSync(`/proc/sys/net/bridge/bridge-nf-call-${family === 6 ? 'ip6' : 'ip'}tables`, 'utf8').trim() !== '0') return undefined;
    } catch {
      // no br_netfilter at all: bridged frames never meet the IP hooks
    }
    return { bridge: net.bridge, network: net.name };
  }

  /** The probe's connection in the host's conntrack table, when the probe went through the host. */
  private async conntrackHop(src: Party, tuple: TracePacket | undefined, sport: number, port: number | undefined): Promise<TraceHop | undefined> {
    if (!tuple || this.offHost(src, { kind: 'address', label: '' })) return undefined;
    const t = { proto: tuple.proto, saddr: tuple.saddr, daddr: tuple.daddr, ...(tuple.proto.startsWith('icmp') ? { icmpId: sport } : { sport, dport: port }) };
    try {
      const ct = await conntrackGet(undefined, t);
      return { kind: 'conntrack', where: 'host', text: ct ? describeConntrack(ct) : `conntrack: no entry for ${t.proto} ${t.saddr} → ${t.daddr} in the host's table (never confirmed: dropped before, or not through the host)` };
    } catch (e) {
      return { kind: 'conntrack', where: 'host', text: `conntrack unreadable: ${(e as Error).message}` };
    }
  }

  /** An overlay network's namespace on this host (its br0 and vxlan0; see drivers/overlay.ts). */
  private overlayNs(netId: string): string {
    return path.join(this.d.opts.execRoot, 'netns', `1-${netId.slice(0, 10)}`);
  }

  async trace(req: TraceRequest): Promise<TraceResult> {
    const t0 = performance.now();
    const proto = (req.Protocol ?? (req.Port ? 'tcp' : 'icmp')).toLowerCase();
    if (!KEY_PROTOS.includes(proto)) throw invalidParameter(`invalid protocol ${JSON.stringify(req.Protocol)}: use tcp, udp or icmp`);
    const timeoutMs = req.TimeoutMs ?? 1000;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 10 || timeoutMs > 30_000) throw invalidParameter(`invalid timeout ${JSON.stringify(req.TimeoutMs)}: 10 to 30000 ms`);
    if (req.IPv6 !== undefined && typeof req.IPv6 !== 'boolean') throw invalidParameter(`invalid IPv6 ${JSON.stringify(req.IPv6)}: true or false`);
    // a container of another host on an overlay network: reached at its overlay address, traced on both hosts
    const remote = this.remoteContainer(req.Destination);
    const { src, dst, family } = await resolveParties({ containers: this.d.containers, netnsDir: this.d.opts.netnsDir, netnsPrefix: this.d.opts.netnsPrefix }, req.Source, remote ? remote.ipv4 : req.Destination, req.IPv6 === true);
    if (remote) {
      const ep = src.container ? Object.values(src.container.endpoints).find((e) => e.networkId === remote.network) : undefined;
      const netName = this.d.networks.find(remote.network)?.name ?? remote.network.slice(0, 12);
      if (!ep) throw invalidParameter(`${req.Source} is not on overlay network ${netName}, where ${req.Destination} (on host ${remote.vtep}) is`);
      Object.assign(dst, { kind: 'container', label: req.Destination });
      src.endpoint = ep;
      src.ip = ep.ipv4;
    }
    let port = req.Port !== undefined ? checkPort(req.Port) : dst.port;
    const p = dst.port && proto === 'icmp' ? 'tcp' : proto;
    if (p !== 'icmp' && port === undefined) throw invalidParameter(`a ${p} trace needs a port (--port N/${p})`);
    if (p === 'icmp') port = undefined;
    const ip = dst.ip!;
    const nf = family === 6 ? 'ip6' : 'ip';
    const icmp = family === 6 ? 'icmpv6' : 'icmp';
    // the probe's own source port / echo id: what the trace rule and the event filter match on
    const sport = 33000 + Math.floor(Math.random() * 27000);

    const hops: TraceHop[] = [];
    const whereSrc = src.kind === 'container' ? src.label : src.kind === 'outside' ? src.label : 'host';
    const route = await lookupRoute(src.netns, ip).catch((e: Error) => ({ found: false, text: `route lookup failed: ${e.message}` } as RouteHop));
    hops.push({ kind: 'route', where: whereSrc, text: route.text });
    if (src.endpoint) {
      const text = this.interfaceText(src.endpoint, family, false, src.label);
      if (text) hops.push({ kind: 'interface', where: whereSrc, text });
    }

    const n = ++traceSeq;
    const pre = `trace${n}_pre`, out = `trace${n}_out`;
    const match = p === 'icmp' ? [`${icmp} id ${sport}`] : [`meta l4proto ${p} th sport ${sport}`, `meta l4proto ${p} th dport ${sport}`];
    const rules = (chain: string) => match.map((m) => `add rule ${nf} loom ${chain} ${m} meta nftrace set 1 comment "network trace ${n}"\n`).join('');
    const add = `add chain ${nf} loom ${pre} { type filter hook prerouting priority -350; policy accept; }\n`
      + `add chain ${nf} loom ${out} { type filter hook output priority -350; policy accept; }\n${rules(pre)}${rules(out)}`;
    const remove = `flush chain ${nf} loom ${pre}\ndelete chain ${nf} loom ${pre}\nflush chain ${nf} loom ${out}\ndelete chain ${nf} loom ${out}\n`;
    const ours = (e: TraceEvent) => !!e.packet && (p === 'icmp'
      ? e.packet.proto === icmp && e.packet.icmpId === sport
      : e.packet.proto === p && (e.packet.sport === sport || e.packet.dport === sport));
    // a drop ends the wait: nothing will answer a probe that a rule threw away
    const tunnelMarks = remote ? tunnelMatches(p as 'tcp' | 'udp' | 'icmp', sport) : [];
    const addTunnel = tunnelMarks.length ? markingChains(`trace${n}`, tunnelMarks, `network trace ${n}`).add.split('\n').filter((l) => l.startsWith('add rule')).join('\n') + '\n' : '';
    const keepEvent = remote ? markedBy(`trace${n}`, ours) : ours;
    const listener = new TraceListener((e) => {
      const keep = keepEvent(e);
      if (keep && e.verdict === 'drop') this.prober.stopCurrent();
      return keep;
    });
    let probe: ProbeResult;
    let leg: RemoteLeg | { error: string } | undefined;
    let remoteResult: RemoteTraceResult | { error: string } | undefined;
    listener.start();
    const key = `trace-${n}`;
    try {
      this.d.firewall.addExtra(key, add + addTunnel, remove);
      // the remote host arms its own marking rules before the probe goes
      if (remote) leg = await this.exchange()!.ask(remote.host, { fromVtep: this.exchange()!.advertise, network: remote.network, proto: p as 'tcp' | 'udp' | 'icmp', sport, port, srcIp: src.ip!, dstIp: ip, srcMac: src.endpoint?.mac, timeoutMs });
      if (!route.found) probe = { outcome: 'unreachable', detail: route.text };
      else probe = await this.prober.send({ netns: src.netns, proto: p as ProbeRequest['proto'], src: src.kind === 'outside' ? src.ip : undefined, dst: ip, port, sport, timeoutMs });
      // a probe that stayed off the host's hooks (macvlan, overlay) has nothing queued: a short wait
      if (route.found) await listener.settle(25, this.offHost(src, dst) ? 25 : 250);
      if (leg) remoteResult = 'finish' in leg ? await leg.finish() : leg;
    } finally {
      this.d.firewall.removeExtra(key);
      listener.close();
    }

    // the hops the kernel reported
    const tables = new Set(listener.events.map((e) => `${e.family} ${e.table}`));
    const ruleText = this.listRules(tables);
    const ifname = await linkNames().catch(() => new Map<number, string>());
    const nets = this.d.networks.list();
    const ctx: MeaningContext = {
      ifname,
      bridgeNet: new Map(nets.flatMap((x) => (x.bridge ? [[x.bridge, x.name] as [string, string]] : []))),
      idNet: new Map(nets.map((x) => [x.id.slice(0, 12), x.name])),
      published: new Map(this.d.containers.list().flatMap((c) => (c.published ?? []).map((m) => [`${m.proto} ${m.hostPort}`, `${c.name}:${m.containerPort}`] as [string, string]))),
    };
    ctx.original = { daddr: ip, dport: port, proto: p };
    let drop: TraceHop | undefined;
    let replied = false;
    for (const e of listener.events) {
      if (e.table === 'loom' && /^trace\d+_/.test(e.chain)) continue; // our own marking rule
      if (!ours(e)) continue; // the tunnel's outer packet: below
      const rule = e.handle !== undefined ? ruleText.get(`${e.family} ${e.table} ${e.chain} ${e.handle}`) ?? `handle ${e.handle}` : `policy ${e.verdict}`;
      const direction = e.packet && (p === 'icmp' ? e.packet.icmpType === 0 || e.packet.icmpType === 129 : e.packet.dport === sport) ? 'reply' : 'request';
      // after the answer, the client's own ACK or RST: the handshake's end, not the probe
      if (direction === 'reply') replied = true;
      else if (replied) continue;
      const meaning = meaningOf(e, rule, ctx, direction === 'reply');
      if (e.type === 'rule' && e.verdict === 'continue' && !meaning) continue;
      if (e.type === 'return') continue;
      const hop: TraceHop = {
        kind: e.type === 'policy' ? 'policy' : 'rule', where: 'host', table: `${e.family} ${e.table}`, chain: e.chain, handle: e.handle,
        verdict: e.verdict + (e.target ? ` ${e.target}` : ''), direction, packet: e.packet,
        iif: e.iif ? ifname.get(e.iif) ?? String(e.iif) : undefined, oif: e.oif ? ifname.get(e.oif) ?? String(e.oif) : undefined,
        text: `${e.family} ${e.table} ${e.chain}: ${rule}`, meaning: meaning || undefined,
      };
      hops.push(hop);
      if (e.verdict === 'drop' && !drop) drop = hop;
    }
    // the DNAT of a published port: its map lookup reports no event of its own, but the packet's next
    // hop shows the new destination; say so after the jump to `published`
    const translated = listener.events.find((e) => e.packet && e.packet.sport === sport && (e.packet.daddr !== ip || (port !== undefined && e.packet.dport !== port)));
    if (translated?.packet && !hops.some((h) => h.meaning?.startsWith('published port '))) {
      const at = hops.findIndex((h) => h.verdict === 'jump published');
      const target = port !== undefined ? ctx.published.get(`${p} ${port}`) : undefined;
      const to = `${translated.packet.daddr}${translated.packet.dport ? `:${translated.packet.dport}` : ''}`;
      hops.splice(at >= 0 ? at + 1 : hops.length, 0, { kind: 'nat', where: 'host', text: `DNAT ${ip}:${port} → ${to}`, meaning: `published port ${port}/${p}${target ? ` → ${target}` : ''}: translated (DNAT) to ${to}` });
    }
    // what the kernel remembers of the probe: the next hop's neighbour entry, the bridge's forwarding
    // entry for that MAC, the connection in the host's conntrack table
    const seen = listener.events.find((e) => e.packet && e.table === 'loom' && /^trace\d+_/.test(e.chain) && e.packet.daddr === ip);
    hops.splice(src.endpoint ? 2 : 1, 0, ...await this.kernelHops(src, route, family, seen?.packet ?? (src.ip ? { proto: p === 'icmp' ? icmp : p, saddr: src.ip, daddr: ip } : undefined), sport, port));
    // Between two containers of one icc=true bridge the frame is bridged, and with the namespace's
    // br_netfilter switch off (src/drivers/brnetfilter.ts) no IP hook sees it: say so, instead of an
    // empty list of rules and a missing conntrack entry.
    const bridged = this.bridgedPast(src, dst, family);
    if (bridged) {
      const ct = hops.findIndex((h) => h.kind === 'conntrack');
      const hop: TraceHop = { kind: 'bridge', where: 'host', text: `bridged on ${bridged.bridge} from ${src.endpoint!.hostVeth} to ${dst.endpoint!.hostVeth}: no nftables hook on the way (net.bridge.bridge-nf-call-${family === 6 ? 'ip6' : 'ip'}tables=0, the bridge does not ask for it)`, meaning: `inter-container communication on network ${bridged.network} (icc=true): bridged directly, no rule applies` };
      if (ct >= 0) hops.splice(ct, 1, hop, { kind: 'conntrack', where: 'host', text: `conntrack: not tracked (bridged frames of ${bridged.bridge} meet no IP hook)` });
      else hops.push(hop);
    }
    if (dst.endpoint && !drop && probe.outcome !== 'unreachable') {
      const text = this.interfaceText(dst.endpoint, family, true, dst.label);
      if (text) hops.push({ kind: 'interface', where: dst.label, text });
    }
    if (remote) {
      // this host's side of the tunnel, the remote host's report, then the answer's way back here
      const myVtep = this.exchange()!.advertise;
      const net = this.d.networks.find(remote.network);
      const toVtep = await lookupRoute(undefined, remote.vtep).catch((e: Error) => ({ text: `route lookup failed: ${e.message}` }));
      const outer = tunnelEventHops(listener.events.filter((e) => !ours(e)), `trace${n}`, 'host', ruleText, ctx, myVtep);
      const back = outer.filter((h) => h.direction === 'reply');
      const far: TraceHop[] = !remoteResult ? [] : 'error' in remoteResult
        ? [{ kind: 'remote', where: `host ${remote.vtep}`, text: `host ${remote.vtep}: ${remoteResult.error}` }]
        : remoteResult.hops;
      const at = hops.findIndex((h) => h.direction === 'reply');
      hops.splice(at >= 0 ? at : hops.length, 0,
        { kind: 'tunnel', where: 'host', text: `VXLAN VNI ${net ? vniOf(net) : '?'}: the frame for ${remote.mac} goes in UDP ${myVtep} → ${remote.vtep}:${VXLAN_PORT}; ${toVtep.text}` },
        ...outer.filter((h) => h.direction !== 'reply'), ...far, ...back);
    }
    hops.push({ kind: 'probe', where: whereSrc, text: probe.detail });

    const dnatted = listener.events.some((e) => e.packet && e.packet.daddr !== ip && e.packet.sport === sport);
    let verdict: Verdict, reason: string;
    if (drop) {
      verdict = 'dropped';
      reason = drop.meaning ?? `dropped by ${drop.text}`;
    } else if (probe.outcome === 'answered') {
      verdict = 'delivered';
      reason = `${probe.detail}${dnatted ? ' (through a published port)' : ''}`;
    } else if (probe.outcome === 'refused') {
      verdict = 'refused';
      const toHost = dst.kind === 'address' || dst.kind === 'host';
      reason = toHost && !dnatted && port !== undefined
        ? `no published port ${port}/${p} on ${ip}: the packet reached the host itself, where nothing listens (reset)`
        : `${probe.detail}`;
    } else if (probe.outcome === 'unreachable' && route.found && probe.code !== 'ENETUNREACH') {
      // the route was there, the neighbour was not: nothing answered ARP for the address
      verdict = 'no answer';
      reason = `${probe.detail}: nothing answers for ${ip} on ${route.dev ?? 'the link'} (no ARP reply)`;
    } else if (probe.outcome === 'unreachable') {
      verdict = 'no route';
      const internal = src.endpoint ? this.d.networks.find(src.endpoint.networkId)?.internal : false;
      reason = internal && !route.found ? `internal network ${src.endpoint!.networkName}: no way out (no default route)` : probe.detail;
    } else if (probe.outcome === 'timeout') {
      verdict = 'no answer';
      const last = [...hops].reverse().find((h) => h.kind === 'rule' || h.kind === 'policy');
      reason = `${probe.detail}${last ? `; last seen at ${last.table} ${last.chain} (${last.verdict})` : '; no nftables hook of the host saw it'}`;
      if (p !== 'icmp' && (dst.kind === 'address') && !dnatted) reason = `no published port ${port}/${p} on ${ip}; ${reason}`;
    } else {
      throw new LoomError(500, `trace: the probe failed: ${probe.detail}`);
    }
    if (verdict === 'no answer' && this.offHost(src, dst) && !listener.events.length) reason += `; it left through ${route.dev ?? 'the source\'s interface'} (no host hook is on that path)`;
    return {
      Source: { kind: src.kind, name: src.label, ...(src.ip ? { ip: src.ip } : {}) },
      Destination: { kind: dst.kind, name: dst.label, ip, ...(remote ? { host: remote.vtep } : {}) },
      Protocol: p, ...(port !== undefined ? { Port: port } : {}),
      Hops: hops, Verdict: verdict, Reason: reason, ...(drop ? { Rule: drop.text } : {}),
      DurationMs: Math.round(performance.now() - t0),
    };
  }
}

export { renderTrace } from './render.ts';
