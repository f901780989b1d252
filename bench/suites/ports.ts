// 4. ports (issue 3's goals): the cost of one published port on top of attach, a 10,000-port range, and
// TCP throughput through a published port with 10,000 ports published versus 1.
import fs from 'node:fs';
import path from 'node:path';
import { goal, row, single, type Row, type SuiteResult } from '../lib/report.ts';
import { must, timed } from '../lib/proc.ts';
import { World, type Ctx, type Daemon } from '../lib/world.ts';
import { available } from '../lib/peers.ts';
import { attachRun, type AttachRun } from './attach.ts';
import { netavarkArgv, netavarkEnv, netavarkOptions } from '../workers/attach.ts';
import { iperfRun, iperfServer } from '../lib/iperf.ts';

export const name = 'ports';
export const title = 'published ports: one port, a 10,000-port range, throughput with 10,000 published vs 1';

const RANGE = 10_000;
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.ceil(xs.length / 2) - 1] ?? NaN;

/** Bindings as the docker CLI sends them for -p FROM-TO:FROM-TO: one key per port. */
export function rangeBindings(from: number, n: number): Record<string, { HostIp: string; HostPort: string }[]> {
  const b: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (let p = from; p < from + n; p++) b[`${p}/tcp`] = [{ HostIp: '', HostPort: String(p) }];
  return b;
}

/** netavark setup of one namespace in world w (as podman: namespace first, then netavark). */
export async function netavarkUp(w: World, i: number, o: { dns: boolean; port: boolean; range?: number; portBase?: number; containerPort?: number }): Promise<string> {
  const ns = `${w.ctrPrefix}${i}`;
  fs.mkdirSync(path.join(w.dir, 'netavark'), { recursive: true });
  await must(['ip', 'netns', 'add', ns]);
  await w.host(netavarkArgv(w.dir, 'setup', `/run/netns/${ns}`), { input: JSON.stringify(netavarkOptions(i, o)), env: netavarkEnv() });
  return `/run/netns/${ns}`;
}

async function apiRuns(d: Daemon, K: number, port: boolean): Promise<number[]> {
  const xs: number[] = [];
  for (let i = -1; i < K; i++) {
    let id = '';
    const hc = port ? { PortBindings: { '80/tcp': [{ HostIp: '', HostPort: String(8000 + i + 1) }] } } : {};
    const ms = await timed(async () => { id = await d.api.run({ Image: 'box', Cmd: ['sleep', '600'], ExposedPorts: port ? { '80/tcp': {} } : undefined, HostConfig: hc }); });
    await d.api.rmf(id);
    if (i >= 0) xs.push(ms);
  }
  return xs;
}

export async function run(ctx: Ctx, res: SuiteResult): Promise<void> {
  const have = available();
  const Np = ctx.quick ? 20 : 100;
  const rows: Row[] = [];
  const costRows: Row[] = [];
  // --- (a) one port: attach with and without it, in the same conditions
  const pairs: [string, AttachRun, AttachRun][] = [
    ['loom (daemon code, in process)', { system: 'loom', loom: true, mode: 'loom', dns: false, port: false, n: Np, prof: 'ports-loom-noport' }, { system: 'loom', loom: true, mode: 'loom', dns: false, port: true, n: Np, prof: 'ports-loom-port' }],
  ];
  if (have.netavark) pairs.push(['netavark', { system: 'netavark', mode: 'netavark', dns: false, port: false, n: Np }, { system: 'netavark', mode: 'netavark', dns: false, port: true, n: Np }]);
  if (have.cni) pairs.push(['CNI bridge (+ portmap)', { system: 'cni', mode: 'cni', dns: false, port: false, n: Np }, { system: 'cni', mode: 'cni', dns: false, port: true, n: Np }]);
  for (const [system, without, withPort] of pairs) {
    ctx.log(`  ${system}: attach without / with one published port`);
    const a = await attachRun(ctx, without, res), b = await attachRun(ctx, withPort, res);
    if (!a || !b) continue;
    const loom = !!without.loom;
    rows.push(row('attach, no port', system, 'ms', a.attach, { loom }), row('attach, one port', system, 'ms', b.attach, { loom }));
    rows.push(row('detach, no port', system, 'ms', a.detach, { loom }), row('detach, one port', system, 'ms', b.detach, { loom }));
    costRows.push(single('cost of one port (attach, median difference)', system, 'ms', med(b.attach) - med(a.attach), { loom }));
  }
  // docker: no way to attach without runc; `run` through the API with and without -p
  const K = ctx.quick ? 5 : 15;
  const lw = await World.create(ctx, 'portsloom');
  const loomD = await lw.startLoom();
  await lw.importBox(loomD);
  ctx.log(`  loom / docker: ${K} × run through the API without / with one published port`);
  const la = await apiRuns(loomD, K, false), lb = await apiRuns(loomD, K, true);
  rows.push(row('run (API, runc), no port', 'loom', 'ms', la, { loom: true }), row('run (API, runc), one port', 'loom', 'ms', lb, { loom: true }));
  costRows.push(single('cost of one port (run through the API, median difference)', 'loom', 'ms', med(lb) - med(la), { loom: true }));
  let dw: World | undefined, docker: Daemon | undefined;
  if (have.dockerd) {
    dw = await World.create(ctx, 'portsdocker');
    docker = await dw.startDocker();
    await dw.importBox(docker);
    const da = await apiRuns(docker, K, false), db = await apiRuns(docker, K, true);
    rows.push(row('run (API, runc), no port', 'docker (dockerd 20.10)', 'ms', da), row('run (API, runc), one port', 'docker (dockerd 20.10)', 'ms', db));
    costRows.push(single('cost of one port (run through the API, median difference)', 'docker (dockerd 20.10)', 'ms', med(db) - med(da)));
  }
  res.tables.push({
    title: `one published port: attach without and with it (N=${Np} each), and run through the API (${K} each)`,
    rows: [...rows.sort((a, b) => a.case.localeCompare(b.case)), ...costRows],
    notes: ['The cost of a port is the difference of the medians; for docker it includes docker-proxy, the userland proxy it starts per port by default.'],
  });
  const lc = costRows.find((r) => r.loom && r.case.startsWith('cost of one port (attach'));
  res.goals.push(goal('cost of one published port on top of attach (issue 3)', '<= 1 ms', lc?.median, 'ms', (v) => v <= 1));

  // --- (b) a 10,000-port range
  const rr: Row[] = [];
  const reps = ctx.quick ? 1 : 3;
  ctx.log(`  10,000-port range: loom, netavark${have.cni ? ', CNI portmap (smaller lists)' : ''}`);
  const lr = await attachRun(ctx, { system: 'loom', loom: true, mode: 'loom', dns: false, port: false, range: RANGE, n: reps, prof: 'ports-loom-range' }, res);
  if (lr) rr.push(row('attach with -p 20000-29999:20000-29999', 'loom (daemon code, in process)', 'ms', lr.attach, { loom: true }), row('detach', 'loom (daemon code, in process)', 'ms', lr.detach, { loom: true }));
  if (have.netavark) {
    const nr = await attachRun(ctx, { system: 'netavark', mode: 'netavark', dns: false, port: false, range: RANGE, n: reps }, res);
    if (nr) rr.push(row('attach with -p 20000-29999:20000-29999', 'netavark (range: one iptables rule)', 'ms', nr.attach), row('detach', 'netavark (range: one iptables rule)', 'ms', nr.detach));
  }
  const notes = ['The attach figure is the whole attach of a container publishing the range (loom: the daemon holds 10,000 host sockets and writes one nftables element; netavark: one iptables rule with a port range).'];
  if (have.cni) {
    // portmap has no ranges: a list of single ports, one iptables rule each, and its cost grows faster than
    // the list (200 ports took 2.6 s here, 1,000 took 29 s): two sizes show the growth, 10,000 would take hours
    for (const n of ctx.quick ? [100] : [100, 500]) {
      const cr = await attachRun(ctx, { system: 'CNI portmap', mode: 'cni', dns: false, port: false, range: n, n: 1 }, res);
      if (cr) rr.push(row(`attach with ${n} ports (portmap has no ranges)`, 'CNI bridge + portmap', 'ms', cr.attach), row(`detach (${n} ports)`, 'CNI bridge + portmap', 'ms', cr.detach));
    }
    notes.push('CNI portmap takes a list of single ports (one iptables rule per port, the chain rewritten per container): its cost grows faster than the number of ports, so 10,000 is not attempted.');
  }
  notes.push('docker: not measured; with its default userland proxy, a 10,000-port range starts 10,000 docker-proxy processes.');
  res.tables.push({ title: `a 10,000-port range (${reps} container(s) one after another)`, rows: rr, notes });
  res.goals.push(goal('publishing a 10,000-port range (issue 3)', '< 0.5 s', lr ? med(lr.attach) : undefined, 'ms', (v) => v < 500));

  // --- (c) throughput through a published port from the host's 127.0.0.1: 1 port published vs 10,000 more
  const secs = ctx.quick ? 1 : 2, treps = ctx.quick ? 2 : 3;
  const tr: Row[] = [];
  ctx.log(`  throughput through a published port, 1 vs 10,000 published (${treps} × ${secs} s iperf3 each)`);
  if (have.iperf3) {
    const srv = await loomD.api.run({ Image: 'box', Cmd: ['sleep', '600'], HostConfig: { PortBindings: { '5201/tcp': [{ HostIp: '', HostPort: '5201' }] } } }, 'srv');
    iperfServer(lw, await lw.containerNetns(loomD, srv), 5201);
    // alternating, so that both figures see the same machine: 1 published, 10,001 published, 1 again...
    const one: number[] = [], many: number[] = [];
    for (let r = 0; r < treps; r++) {
      one.push(await iperfRun(lw, lw.hostPath, '127.0.0.1', 5201, secs));
      const wide = await loomD.api.run({ Image: 'box', Cmd: ['sleep', '600'], HostConfig: { PortBindings: rangeBindings(20000, RANGE) } });
      many.push(await iperfRun(lw, lw.hostPath, '127.0.0.1', 5201, secs));
      await loomD.api.rmf(wide);
    }
    tr.push(row('127.0.0.1 → published port, 1 port published', 'loom', 'Gbit/s', one, { loom: true }));
    tr.push(row('127.0.0.1 → published port, 10,001 published', 'loom', 'Gbit/s', many, { loom: true, extra: { '10,001 vs 1': med(many) / med(one) } }));
    res.goals.push(goal('throughput with 10,000 ports published vs 1 (issue 3)', '>= 0.95', med(many) / med(one), 'count', (v) => v >= 0.95));
    if (have.netavark) {
      const nw = await World.create(ctx, 'portsnetavark');
      try {
        const s0 = await netavarkUp(nw, 0, { dns: false, port: true, portBase: 5201, containerPort: 5201 });
        iperfServer(nw, s0, 5201);
        const n1: number[] = [], n2: number[] = [];
        const wideOpts = { dns: false, port: false, range: RANGE };
        for (let r = 0; r < treps; r++) {
          n1.push(await iperfRun(nw, nw.hostPath, '127.0.0.1', 5201, secs));
          const ns = await netavarkUp(nw, 1, wideOpts);
          n2.push(await iperfRun(nw, nw.hostPath, '127.0.0.1', 5201, secs));
          await nw.host(netavarkArgv(nw.dir, 'teardown', ns), { input: JSON.stringify(netavarkOptions(1, wideOpts)), env: netavarkEnv() });
          await must(['ip', 'netns', 'del', ns.replace('/run/netns/', '')]);
        }
        tr.push(row('127.0.0.1 → published port, 1 port published', 'netavark', 'Gbit/s', n1));
        tr.push(row('127.0.0.1 → published port, 10,001 published', 'netavark', 'Gbit/s', n2, { extra: { '10,001 vs 1': med(n2) / med(n1) } }));
      } finally {
        await nw.cleanup();
      }
    }
    res.tables.push({ title: `TCP throughput (iperf3, ${treps} × ${secs} s, alternating) from the host's 127.0.0.1 through a published port`, rows: tr, columns: ['10,001 vs 1'], plain: ['10,001 vs 1'] });
  } else res.notes.push('iperf3 not installed: throughput not measured');
  await lw.cleanup();
  if (dw) await dw.cleanup();
}
