// 12. the overlay (issue 14): loom daemons in host namespaces on one underlay bridge, with etcd in a
// namespace of its own as the cluster store (the world of test/e2e/overlay.test.ts), and the same with
// dockerd 20.10's classic overlay (--cluster-store etcd) as the peer:
//
//   host i (World ov<i>, netns …-h)   ul0 203.0.113.(10+i)/24 ─┐
//   etcd (netns …ovetcd)              ul0 203.0.113.250/24  ───┤ bridge br0 (netns …ovul)
//
// - throughput: iperf3 TCP container on host 0 → container on host 1 over the overlay, against the same
//   between the two host namespaces over the underlay, interleaved round by round;
// - convergence: from `run` (create + start through the API) returning on host 0 to the new container
//   answering ping from a container on host 1 (a 5 ms ping loop started before the run, against the
//   address the container is given with --ip);
// - scale: H hosts × C containers on one overlay network (real runc): attach (create + start) per
//   container, convergence sampled during the fill, etcd requests and bytes per container (etcd's own
//   /metrics), FDB and neighbour entries per host, each daemon's RSS.
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { goal, peer, row, single, type Row, type SuiteResult } from '../lib/report.ts';
import { must, rssMiB, run as runCmd, sleep } from '../lib/proc.ts';
import { World, type Ctx, type Daemon } from '../lib/world.ts';
import { available } from '../lib/peers.ts';
import { iperfRun, iperfServer } from '../lib/iperf.ts';

export const name = 'overlay';
export const title = 'overlay: cross-host throughput against the underlay, convergence, and 10 hosts × 50 containers';

const ETCD = '203.0.113.250';
const STORE = `etcd://${ETCD}:2379`;
const hostAddr = (i: number) => `203.0.113.${10 + i}`;

interface Host { w: World; d: Daemon; addr: string }

/** The underlay bridge and etcd; their namespaces carry the run's prefix, so bench/run's sweep removes them. */
class Underlay {
  readonly ul: string;
  readonly etcdNs: string;
  private n = 0;
  readonly tag: string;
  constructor(ctx: Ctx, tag: string) {
    this.tag = tag;
    this.ul = `${ctx.nsPrefix}${tag}ul`;
    this.etcdNs = `${ctx.nsPrefix}${tag}etcd`;
  }

  async setup(owner: World): Promise<void> {
    await must(['ip', 'netns', 'add', this.ul]);
    await must(['ip', 'netns', 'add', this.etcdNs]);
    await must(['ip', '-n', this.ul, 'link', 'add', 'br0', 'type', 'bridge']);
    await must(['ip', '-n', this.ul, 'link', 'set', 'br0', 'up']);
    await this.plug(this.etcdNs, ETCD);
    await must(['ip', '-n', this.etcdNs, 'link', 'set', 'lo', 'up']);
    const dir = path.join(owner.dir, 'etcd');
    fs.mkdirSync(dir, { recursive: true });
    owner.spawnBg(owner.inNs(`/run/netns/${this.etcdNs}`, ['etcd', '--name', 'ov', '--data-dir', path.join(dir, 'data'),
      '--listen-client-urls', `http://${ETCD}:2379`, '--advertise-client-urls', `http://${ETCD}:2379`,
      '--listen-peer-urls', `http://${ETCD}:2380`, '--initial-advertise-peer-urls', `http://${ETCD}:2380`,
      '--initial-cluster', `ov=http://${ETCD}:2380`, '--logger', 'zap', '--log-level', 'warn',
      // dockerd 20.10's libkv speaks etcd's v2 API (loom's client the v3 one)
      '--enable-v2=true']), 'etcd.log');
    for (let i = 0; ; i++) {
      const r = await runCmd(['nsenter', `--net=/run/netns/${this.etcdNs}`, 'curl', '-sf', `http://${ETCD}:2379/health`]);
      if (r.code === 0) break;
      if (i > 100) throw new Error('etcd did not come up');
      await sleep(200);
    }
  }

  /** ul0 in `ns` with `addr`, its peer a port of br0 */
  async plug(ns: string, addr: string): Promise<void> {
    const port = `ul${this.n++}`;
    await must(['ip', '-n', ns, 'link', 'add', 'ul0', 'type', 'veth', 'peer', 'name', port, 'netns', this.ul]);
    await must(['ip', '-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'ul0']);
    await must(['ip', '-n', ns, 'link', 'set', 'ul0', 'up']);
    await must(['ip', '-n', this.ul, 'link', 'set', 'dev', port, 'master', 'br0', 'up']);
  }

  /** etcd's counters (Prometheus text), summed by metric name */
  async metrics(): Promise<Map<string, number>> {
    const txt = await must(['nsenter', `--net=/run/netns/${this.etcdNs}`, 'curl', '-sf', `http://${ETCD}:2379/metrics`]);
    const m = new Map<string, number>();
    for (const l of txt.split('\n')) {
      const r = /^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$/.exec(l);
      if (r) m.set(r[1]!, (m.get(r[1]!) ?? 0) + Number(r[3]));
    }
    return m;
  }

  async teardown(): Promise<void> {
    for (const ns of [this.ul, this.etcdNs]) await runCmd(['ip', 'netns', 'del', ns]);
  }
}

async function startHosts(ctx: Ctx, u: Underlay, kind: 'loom' | 'docker', n: number): Promise<Host[]> {
  const hosts: Host[] = [];
  for (let i = 0; i < n; i++) {
    const w = await World.create(ctx, `${u.tag}${i}`);
    if (i === 0) await u.setup(w);
    await u.plug(w.hostNs, hostAddr(i));
    const d = kind === 'loom'
      ? await w.startLoom(['--cluster-store', STORE, '--cluster-advertise', hostAddr(i)])
      : await w.startDocker(['--cluster-store', STORE, '--cluster-advertise', `${hostAddr(i)}:2376`], { noProxy: ETCD, hostname: `ovhost${i}` });
    await w.importBox(d);
    hosts.push({ w, d, addr: hostAddr(i) });
  }
  return hosts;
}

async function createOverlay(hosts: Host[], netName: string, subnet: string): Promise<void> {
  await hosts[0]!.d.api.ok('POST', '/networks/create', { Name: netName, Driver: 'overlay', Attachable: true, CheckDuplicate: true, IPAM: { Config: [{ Subnet: subnet }] } });
  for (const h of hosts) {
    for (let i = 0; ; i++) {
      const r = await h.d.api.request('GET', `/networks/${netName}`);
      if (r.status === 200) break;
      if (i > 200) throw new Error(`${netName} not seen on ${h.addr}`);
      await sleep(50);
    }
  }
}

const runOn = (h: Host, netName: string, ip?: string, nameOf?: string) => h.d.api.run({
  Image: 'box', Cmd: ['sleep', '3600'], HostConfig: { NetworkMode: netName },
  NetworkingConfig: { EndpointsConfig: { [netName]: ip ? { IPAMConfig: { IPv4Address: ip } } : {} } },
}, nameOf);

async function ipOf(h: Host, id: string, netName: string): Promise<string> {
  const j = await h.d.api.ok<{ NetworkSettings: { Networks: Record<string, { IPAddress: string }> } }>('GET', `/containers/${id}/json`);
  return j.NetworkSettings.Networks[netName]!.IPAddress;
}

/** The overlay sandbox namespaces of a host: loom's under its exec root, dockerd's `1-*` under its own. */
function sandboxes(h: Host): string[] {
  const dir = h.d.kind === 'loom' ? path.join(h.w.dir, 'loom', 'run', 'netns') : path.join(h.w.dir, 'docker', 'run', 'netns');
  return (fs.existsSync(dir) ? fs.readdirSync(dir) : []).filter((f) => h.d.kind === 'loom' || f.startsWith('1-')).map((f) => path.join(dir, f));
}

interface Probe { h: Host; ns: string }

/**
 * Two convergence times of a container started on `on` with address `ip`, from `run` (create + start
 * through the API) returning: "programmed", until the probe host's overlay sandbox has the neighbour entry
 * for `ip` (`ip -ts monitor neigh` there, started before the run: the control plane), and "ping", until
 * the address answers ping from a container on the probe host (ping every 5 ms, -D timestamps: the data
 * plane as a client sees it, the probe container's ARP retries included).
 */
async function converge(on: Host, netName: string, ip: string, probe: Probe, limitMs = 10_000): Promise<{ ping: number; programmed?: number; attach: number; id: string }> {
  let buf = '', mon = '';
  // no -w: with a deadline, iputils' ping gives up at the first "unreachable" (the probe's ARP entry
  // failing before the peer is programmed); this one runs until it is killed
  const p = spawn('nsenter', [`--net=${probe.ns}`, '--', 'ping', '-D', '-n', '-i', '0.005', ip], { stdio: ['ignore', 'pipe', 'pipe'] });
  p.stderr.on('data', (d: Buffer) => (buf += d.toString()));
  const sb = sandboxes(probe.h)[0];
  const m = sb ? spawn('nsenter', [`--net=${sb}`, '--', 'ip', '-ts', 'monitor', 'neigh'], { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, TZ: 'UTC' } }) : undefined;
  m?.stdout.on('data', (d: Buffer) => (mon += d.toString()));
  let firstReply: number | undefined;
  const replied = new Promise<void>((resolve) => {
    p.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      const r = /\[(\d+\.\d+)\] \d+ bytes from/.exec(buf);
      if (r && firstReply === undefined) {
        firstReply = Number(r[1]) * 1000;
        resolve();
      }
    });
    p.on('exit', () => resolve());
  });
  try {
    await sleep(30); // the ping loop and the monitor running
    const t0 = performance.now();
    const id = await runOn(on, netName, ip);
    const attach = performance.now() - t0;
    const returned = Date.now();
    await Promise.race([replied, sleep(limitMs)]);
    if (firstReply === undefined) throw new Error(`${ip} did not answer within ${limitMs} ms (ping: ${buf.trim().split('\n').slice(-3).join(' | ')})`);
    await sleep(20);
    const esc = ip.replace(/\./g, '\\.');
    const e = new RegExp(`^\\[([0-9T:.-]+)\\] ${esc} dev`, 'm').exec(mon);
    const programmed = e ? Date.parse(`${e[1]!.slice(0, 23)}Z`) - returned : undefined;
    return { ping: Math.max(0, firstReply - returned), programmed, attach, id };
  } finally {
    p.kill('SIGKILL');
    m?.kill('SIGKILL');
  }
}

/** Lines of `cmd` in the overlay sandbox namespace(s) of a host (FDB / neighbour entries). */
async function sandboxCount(h: Host, cmd: string[]): Promise<number> {
  let n = 0;
  for (const sb of sandboxes(h)) n += (await runCmd(['nsenter', `--net=${sb}`, '--', ...cmd])).stdout.split('\n').filter((l) => l.trim()).length;
  return n;
}

/** Until `ip` answers one ping from `ns` (the classic overlay learns its peers through gossip first). */
async function reachable(ns: string, ip: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while ((await runCmd(['nsenter', `--net=${ns}`, '--', 'ping', '-c', '1', '-W', '1', ip])).code !== 0) {
    if (Date.now() > end) throw new Error(`${ip} not reachable from ${ns} within ${ms} ms`);
  }
}

const pct = (xs: number[], p: number) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!; };

/** Throughput and convergence on two hosts of one kind. */
async function twoHosts(ctx: Ctx, kind: 'loom' | 'docker', rounds: number, secs: number, nConv: number, rows: Row[], conv: Row[]): Promise<void> {
  const u = new Underlay(ctx, kind === 'loom' ? 'ovl' : 'ovd');
  const system = kind === 'loom' ? 'loom' : 'docker (dockerd 20.10, classic overlay)';
  let hosts: Host[] = [];
  try {
    hosts = await startHosts(ctx, u, kind, 2);
    const net = 'ovbench';
    await createOverlay(hosts, net, '10.77.0.0/16');
    const [a, b] = hosts as [Host, Host];
    const srv = await runOn(b, net, undefined, 'srv');
    const cli = await runOn(a, net, undefined, 'cli');
    const srvNs = await b.w.containerNetns(b.d, srv), cliNs = await a.w.containerNetns(a.d, cli);
    const srvIp = await ipOf(b, srv, net);
    await reachable(cliNs, srvIp, 30_000);
    iperfServer(b.w, srvNs, 5201, 'iperf-overlay.log');
    iperfServer(b.w, b.w.hostPath, 5202, 'iperf-underlay.log');
    const ov: number[] = [], ul: number[] = [];
    ctx.log(`  ${system}: ${rounds} × ${secs} s iperf3, overlay and underlay interleaved`);
    for (let i = 0; i < rounds; i++) {
      ov.push(await iperfRun(a.w, cliNs, srvIp, 5201, secs));
      ul.push(await iperfRun(a.w, a.w.hostPath, b.addr, 5202, secs));
    }
    const ovRow = row('TCP throughput host 0 → host 1', `${system}: overlay (container → container)`, 'Gbit/s', ov, { loom: kind === 'loom' });
    const ulRow = row('TCP throughput host 0 → host 1', `${system}: underlay (host ns → host ns)`, 'Gbit/s', ul);
    ovRow.extra = { 'overlay/underlay': ovRow.median / ulRow.median };
    rows.push(ovRow, ulRow);
    // convergence: containers on host 0 pinged from the server container on host 1
    ctx.log(`  ${system}: convergence over ${nConv} containers`);
    const cs: number[] = [], pr: number[] = [], at: number[] = [];
    for (let i = 0; i < nConv; i++) {
      const ip = `10.77.${1 + Math.floor(i / 200)}.${10 + (i % 200)}`;
      const r = await converge(a, net, ip, { h: b, ns: srvNs });
      cs.push(r.ping);
      if (r.programmed !== undefined) pr.push(r.programmed);
      at.push(r.attach);
      await a.d.api.rmf(r.id);
    }
    if (pr.length) conv.push(row('run returned on host 0 → neighbour entry in host 1\'s overlay sandbox', system, 'ms', pr, { loom: kind === 'loom', extra: { p99: pct(pr, 0.99), 'run (create+start)': pct(at, 0.5) } }));
    conv.push(row('run returned on host 0 → answers ping from a container on host 1', system, 'ms', cs, { loom: kind === 'loom', extra: { p99: pct(cs, 0.99), 'run (create+start)': pct(at, 0.5) } }));
  } catch (e) {
    // what the daemons said, for the note (their directories go with the cleanup)
    const logs = hosts.map((h) => { try { return fs.readFileSync(path.join(h.w.dir, kind === 'loom' ? 'loom-daemon.log' : 'dockerd.log'), 'utf8').trim().split('\n').slice(-3).join(' | '); } catch { return ''; } });
    throw new Error(`${(e as Error).message}; daemon logs: ${logs.join(' || ').slice(0, 1500)}`);
  } finally {
    for (const h of hosts) await h.w.cleanup();
    await u.teardown();
  }
}

async function scale(ctx: Ctx, H: number, C: number, res: SuiteResult): Promise<void> {
  const u = new Underlay(ctx, 'ovs');
  let hosts: Host[] = [];
  try {
    ctx.log(`  loom: ${H} hosts × ${C} containers on one overlay network`);
    hosts = await startHosts(ctx, u, 'loom', H);
    const net = 'ovscale';
    await createOverlay(hosts, net, '10.80.0.0/16');
    const idle = hosts.map((h) => rssMiB(h.d.pid));
    // a probe container on every host, to ping new containers of the host before it
    const probes: Probe[] = [];
    for (const h of hosts) probes.push({ h, ns: await h.w.containerNetns(h.d, await runOn(h, net, `10.80.255.${10 + probes.length}`)) });
    const m0 = await u.metrics();
    const attach: number[] = [], conv: number[] = [], prog: number[] = [];
    const t0 = Date.now();
    for (let c = 0; c < C; c++) {
      for (const [i, h] of hosts.entries()) {
        const ip = `10.80.${i}.${10 + c}`;
        if (c % 10 === 0) {
          const r = await converge(h, net, ip, probes[(i + 1) % H]!);
          conv.push(r.ping);
          if (r.programmed !== undefined) prog.push(r.programmed);
          attach.push(r.attach);
        } else {
          const s = performance.now();
          await runOn(h, net, ip);
          attach.push(performance.now() - s);
        }
      }
    }
    const fillS = (Date.now() - t0) / 1000;
    await sleep(2000);
    const m1 = await u.metrics();
    const n = H * C;
    const d = (k: string) => (m1.get(k) ?? 0) - (m0.get(k) ?? 0);
    const full = hosts.map((h) => rssMiB(h.d.pid));
    const fdb: number[] = [], neigh: number[] = [];
    for (const h of hosts) {
      fdb.push(await sandboxCount(h, ['bridge', 'fdb', 'show', 'dev', 'vxlan0']));
      neigh.push(await sandboxCount(h, ['ip', 'neigh', 'show', 'dev', 'vxlan0']));
    }
    const rows: Row[] = [
      row('attach (create + start, runc) per container', 'loom', 'ms', attach, { loom: true, extra: { p99: pct(attach, 0.99) } }),
      row('convergence, neighbour entry on the next host (every 10th container)', 'loom', 'ms', prog, { loom: true, extra: { p99: pct(prog, 0.99) } }),
      row('convergence, ping answered from the next host (every 10th container)', 'loom', 'ms', conv, { loom: true, extra: { p99: pct(conv, 0.99) } }),
      single('etcd gRPC requests per container', 'loom', 'count', d('grpc_server_handled_total') / n, { loom: true }),
      single('etcd puts + deletes + txns per container', 'loom', 'count', (d('etcd_mvcc_put_total') + d('etcd_mvcc_delete_total') + d('etcd_mvcc_txn_total')) / n, { loom: true }),
      single('etcd bytes received per container (client gRPC)', 'loom', 'count', d('etcd_network_client_grpc_received_bytes_total') / n, { loom: true }),
      single('etcd bytes sent per container (client gRPC, watch fan-out included)', 'loom', 'count', d('etcd_network_client_grpc_sent_bytes_total') / n, { loom: true }),
      single('etcd database in use after the fill (bytes)', 'loom', 'count', m1.get('etcd_mvcc_db_total_size_in_use_in_bytes') ?? NaN, { loom: true }),
      single('FDB entries per host (vxlan0), median', 'loom', 'count', pct(fdb, 0.5), { loom: true }),
      single('neighbour entries per host (vxlan0), median', 'loom', 'count', pct(neigh, 0.5), { loom: true }),
      single('daemon RSS per host: before the fill, median', 'loom', 'MiB', pct(idle, 0.5), { loom: true }),
      single(`daemon RSS per host: with ${C} local + ${n - C} remote containers, median`, 'loom', 'MiB', pct(full, 0.5), { loom: true, extra: { max: Math.max(...full) } }),
    ];
    res.tables.push({
      title: `scale: ${H} hosts × ${C} containers on one overlay network (real runc; ${fillS.toFixed(0)} s to fill, round robin over the hosts)`,
      rows,
      columns: ['p99', 'max'],
      notes: [
        'etcd figures: deltas of etcd\'s own /metrics counters over the fill, divided by the containers started (probe containers excluded from the count but not from the deltas: +1 per host).',
        'FDB / neighbour entries: `bridge fdb show` / `ip neigh show` on vxlan0 in the network\'s sandbox namespace of each host.',
      ],
    });
  } finally {
    for (const h of hosts) await h.w.cleanup();
    await u.teardown();
  }
}

export async function run(ctx: Ctx, res: SuiteResult): Promise<void> {
  // The full run's budget (15 minutes for every benchmark) holds the two-host parts (~3 minutes: each
  // convergence sample waits ~1 s for the probe's ARP retry); the 10 × 50 scale part (~6 minutes) and
  // 100 containers of convergence run when asked for: LOOM_BENCH_OVERLAY=loom,docker,scale and
  // LOOM_BENCH_OVERLAY_N=100.
  const rounds = ctx.quick ? 3 : 5, secs = ctx.quick ? 2 : 3, nConv = Number(process.env.LOOM_BENCH_OVERLAY_N) || (ctx.quick ? 20 : 50);
  const [H, C] = ctx.quick ? [3, 10] : [10, 50];
  const tput: Row[] = [], conv: Row[] = [];
  // LOOM_BENCH_OVERLAY=loom,docker,scale: these parts (default: loom,docker; with --quick all three)
  const parts = (process.env.LOOM_BENCH_OVERLAY || (ctx.quick ? 'loom,docker,scale' : 'loom,docker')).split(',');
  if (parts.includes('loom')) await peer(res, 'loom', () => twoHosts(ctx, 'loom', rounds, secs, nConv, tput, conv));
  if (!parts.includes('docker')) { /* not asked for */ } else if (available().dockerd) await peer(res, 'docker', () => twoHosts(ctx, 'docker', rounds, secs, nConv, tput, conv));
  else res.notes.push('dockerd not installed: the classic overlay not measured');
  if (tput.length) res.tables.push({
    title: `cross-host TCP throughput: iperf3, ${rounds} × ${secs} s per figure, overlay and underlay interleaved`,
    rows: tput, columns: ['overlay/underlay'], plain: ['overlay/underlay'],
    notes: ['underlay: iperf3 between the two host namespaces over the underlay bridge (the overlay\'s own VXLAN path runs over it); overlay: from a container on host 0 to a container on host 1.'],
  });
  if (conv.length) res.tables.push({
    title: `convergence: ${nConv} containers, one at a time, on host 0`,
    rows: conv, columns: ['p99', 'run (create+start)'],
    notes: [
      'From the API\'s answer to `start` on host 0: to the neighbour entry for the new address appearing in host 1\'s overlay sandbox (`ip -ts monitor neigh`, the control plane; negative when it was there before `start` answered), and to the first ping reply in a container on host 1 (ping every 5 ms, -D timestamps, started before the run: the data plane as a client sees it, its own ARP retries included). The container is given its address (--ip) so both can start first. "run": median of create + start on host 0.',
    ],
  });
  const l = tput.find((r) => r.loom);
  res.goals.push(goal('overlay / underlay TCP throughput (issue 14)', '>= 0.9', l?.extra?.['overlay/underlay'] as number | undefined, 'count', (v) => v >= 0.9));
  const c = conv.find((r) => r.loom && r.case.includes('ping'));
  res.goals.push(goal('overlay convergence median (issue 14)', '<= 100 ms', c?.median, 'ms', (v) => v <= 100));
  res.goals.push(goal('overlay convergence p99 (issue 14)', '<= 300 ms', c?.extra?.p99 as number | undefined, 'ms', (v) => v <= 300));
  if (parts.includes('scale')) await peer(res, 'loom (scale)', () => scale(ctx, H, C, res));
}
