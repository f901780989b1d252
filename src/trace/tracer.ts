// `network trace SRC DST`: a real probe (TCP SYN, UDP datagram or ICMP echo) sent from SRC's namespace,
// and what the kernel did with it: the route lookups, the interfaces and bridges on the way, and every
// nftables rule it met (trace events for exactly this probe: a temporary `meta nftrace set 1` rule in
// loom's own table matching the probe's source port / echo id), each explained in Docker's terms, then a
// verdict. The temporary chains go in through the daemon's own Firewall (so the self-heal watcher knows
// them as loom's, and a heal replays them), and always come out again, also on error.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Daemon } from '../daemon.ts';
import { Nft } from '../firewall/nft.ts';
import { invalidParameter, LoomError } from '../util/errors.ts';
import { TraceListener, type TraceEvent, type TracePacket } from './nftrace.ts';
import { meaningOf, type MeaningContext } from './meaning.ts';
import { resolveParties, checkPort, type Party } from './parties.ts';
import { linkNames, lookupRoute } from './routes.ts';
import type { ProbeRequest, ProbeResult } from './probe-worker.ts';

export interface TraceRequest {
  Source: string;
  Destination: string;
  /** tcp, udp or icmp (default) */
  Protocol?: string;
  Port?: number;
  /** how long to wait for an answer (default 1000 ms) */
  TimeoutMs?: number;
}

export interface TraceHop {
  /** route, interface, rule, policy, probe */
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
  Destination: { kind: string; name: string; ip?: string };
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

  async trace(req: TraceRequest): Promise<TraceResult> {
    const t0 = performance.now();
    const proto = (req.Protocol ?? (req.Port ? 'tcp' : 'icmp')).toLowerCase();
    if (!KEY_PROTOS.includes(proto)) throw invalidParameter(`invalid protocol ${JSON.stringify(req.Protocol)}: use tcp, udp or icmp`);
    const timeoutMs = req.TimeoutMs ?? 1000;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 10 || timeoutMs > 30_000) throw invalidParameter(`invalid timeout ${JSON.stringify(req.TimeoutMs)}: 10 to 30000 ms`);
    const { src, dst } = await resolveParties({ containers: this.d.containers, netnsDir: this.d.opts.netnsDir, netnsPrefix: this.d.opts.netnsPrefix }, req.Source, req.Destination);
    let port = req.Port !== undefined ? checkPort(req.Port) : dst.port;
    const p = dst.port && proto === 'icmp' ? 'tcp' : proto;
    if (p !== 'icmp' && port === undefined) throw invalidParameter(`a ${p} trace needs a port (--port N/${p})`);
    if (p === 'icmp') port = undefined;
    const ip = dst.ip!;
    // the probe's own source port / echo id: what the trace rule and the event filter match on
    const sport = 33000 + Math.floor(Math.random() * 27000);

    const hops: TraceHop[] = [];
    const whereSrc = src.kind === 'container' ? src.label : src.kind === 'outside' ? src.label : 'host';
    const route = await lookupRoute(src.netns, ip).catch((e: Error) => ({ found: false, text: `route lookup failed: ${e.message}` } as { found: boolean; text: string; dev?: string }));
    hops.push({ kind: 'route', where: whereSrc, text: route.text });
    if (src.endpoint?.hostVeth) {
      const net = this.d.networks.find(src.endpoint.networkId);
      hops.push({ kind: 'interface', where: whereSrc, text: `${src.endpoint.ifname} (${src.endpoint.ipv4}, ${src.endpoint.mac}) ↔ ${src.endpoint.hostVeth} on bridge ${net?.bridge ?? '?'} (network ${src.endpoint.networkName})` });
    }

    const n = ++traceSeq;
    const pre = `trace${n}_pre`, out = `trace${n}_out`;
    const match = p === 'icmp' ? [`icmp id ${sport}`] : [`meta l4proto ${p} th sport ${sport}`, `meta l4proto ${p} th dport ${sport}`];
    const rules = (chain: string) => match.map((m) => `add rule ip loom ${chain} ${m} meta nftrace set 1 comment "network trace ${n}"\n`).join('');
    const add = `add chain ip loom ${pre} { type filter hook prerouting priority -350; policy accept; }\n`
      + `add chain ip loom ${out} { type filter hook output priority -350; policy accept; }\n${rules(pre)}${rules(out)}`;
    const remove = `flush chain ip loom ${pre}\ndelete chain ip loom ${pre}\nflush chain ip loom ${out}\ndelete chain ip loom ${out}\n`;
    const ours = (e: TraceEvent) => !!e.packet && (p === 'icmp'
      ? e.packet.proto === 'icmp' && e.packet.icmpId === sport
      : e.packet.proto === p && (e.packet.sport === sport || e.packet.dport === sport));
    // a drop ends the wait: nothing will answer a probe that a rule threw away
    const listener = new TraceListener((e) => {
      const keep = ours(e);
      if (keep && e.verdict === 'drop') this.prober.stopCurrent();
      return keep;
    });
    let probe: ProbeResult;
    listener.start();
    const key = `trace-${n}`;
    try {
      this.d.firewall.addExtra(key, add, remove);
      if (!route.found) probe = { outcome: 'unreachable', detail: route.text };
      else probe = await this.prober.send({ netns: src.netns, proto: p as ProbeRequest['proto'], src: src.kind === 'outside' ? src.ip : undefined, dst: ip, port, sport, timeoutMs });
      if (route.found) await listener.settle(25);
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
      const rule = e.handle !== undefined ? ruleText.get(`${e.family} ${e.table} ${e.chain} ${e.handle}`) ?? `handle ${e.handle}` : `policy ${e.verdict}`;
      const direction = e.packet && (p === 'icmp' ? e.packet.icmpType === 0 : e.packet.dport === sport) ? 'reply' : 'request';
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
    if (dst.endpoint?.hostVeth && !drop && probe.outcome !== 'unreachable') {
      const net = this.d.networks.find(dst.endpoint.networkId);
      hops.push({ kind: 'interface', where: dst.label, text: `${dst.endpoint.hostVeth} on bridge ${net?.bridge ?? '?'} ↔ ${dst.endpoint.ifname} of ${dst.label} (${dst.endpoint.ipv4}, ${dst.endpoint.mac})` });
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
    return {
      Source: { kind: src.kind, name: src.label, ...(src.ip ? { ip: src.ip } : {}) },
      Destination: { kind: dst.kind, name: dst.label, ip },
      Protocol: p, ...(port !== undefined ? { Port: port } : {}),
      Hops: hops, Verdict: verdict, Reason: reason, ...(drop ? { Rule: drop.text } : {}),
      DurationMs: Math.round(performance.now() - t0),
    };
  }
}

export { renderTrace } from './render.ts';
