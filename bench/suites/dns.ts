// 5. DNS (issue 4's goal: >= 1.2x aardvark-dns at 100 in flight): dnsperf from a container's namespace
// against loom's embedded resolver (127.0.0.11 in that namespace, served by the daemon), aardvark-dns as
// netavark starts and configures it (on the network's gateway address), and Docker's 127.0.0.11.
// Local names only (10 containers on the network), nothing forwarded upstream. Memory of each resolver.
import fs from 'node:fs';
import path from 'node:path';
import { goal, row, single, type Row, type SuiteResult } from '../lib/report.ts';
import { rssMiB, run as runCmd } from '../lib/proc.ts';
import { World, type Ctx, type Daemon } from '../lib/world.ts';
import { available } from '../lib/peers.ts';
import { netavarkUp } from './ports.ts';
import { childNamed } from './lifecycle.ts';

export const name = 'dns';
export const title = 'embedded DNS: dnsperf queries/s and latency from a container, 10 and 100 in flight';

const NAMES = 10;

interface Perf { qps: number; avgMs: number; lost: number; sent: number; latencies: number[] }

/** One dnsperf run; with `verbose`, dnsperf prints every answer with its latency (slower, for latency only). */
async function dnsperf(w: World, fromNs: string, server: string, queries: string, inflight: number, secs: number, verbose = false): Promise<Perf> {
  const r = await runCmd(w.inNs(fromNs, ['dnsperf', '-s', server, '-d', queries, '-l', String(secs), '-q', String(inflight), '-t', '2', '-m', 'udp', ...(verbose ? ['-v'] : [])]), { timeoutMs: (secs + 30) * 1000 });
  if (r.code !== 0) throw new Error(`dnsperf against ${server}: exit ${r.code}: ${(r.stderr || r.stdout).trim().slice(0, 400)}`);
  const num = (re: RegExp) => Number(re.exec(r.stdout)?.[1] ?? NaN);
  const perf = {
    qps: num(/Queries per second:\s+([\d.]+)/), avgMs: num(/Average Latency \(s\):\s+([\d.]+)/) * 1000,
    lost: num(/Queries lost:\s+(\d+)/), sent: num(/Queries sent:\s+(\d+)/),
    latencies: verbose ? [...r.stdout.matchAll(/^> \S+ \S+ \S+ ([\d.]+)$/gm)].map((m) => Number(m[1]) * 1000) : [],
  };
  const noerror = /Response codes:\s+NOERROR (\d+)/.exec(r.stdout);
  if (!noerror || Number(noerror[1]) === 0) throw new Error(`dnsperf against ${server}: no NOERROR answers: ${r.stdout.slice(-600)}`);
  return perf;
}

interface Target { system: string; loom?: boolean; w: World; from: string; server: string; pids: () => number[]; rssLabel: string }

export async function run(ctx: Ctx, res: SuiteResult): Promise<void> {
  const have = available();
  if (!have.dnsperf) {
    res.notes.push('dnsperf not installed: nothing measured');
    return;
  }
  const secs = ctx.quick ? 1 : 2, reps = ctx.quick ? 2 : 5;
  const qfile = path.join(ctx.runDir, 'dns-queries');
  fs.writeFileSync(qfile, Array.from({ length: NAMES }, (_, i) => `c${i} A\n`).join(''));
  const targets: Target[] = [];
  const rows: Row[] = [];

  // loom: the daemon with containers on a user-defined network; the client is one of them
  const lw = await World.create(ctx, 'dnsloom');
  const loom = await lw.startLoom();
  await lw.importBox(loom);
  const mk = async (d: Daemon) => {
    await d.api.ok('POST', '/networks/create', { Name: 'benchnet', Driver: 'bridge' });
    for (let i = 0; i < NAMES; i++) await d.api.run({ Image: 'box', Cmd: ['sleep', '600'], HostConfig: { NetworkMode: 'benchnet' } }, `c${i}`);
    return d.api.run({ Image: 'box', Cmd: ['sleep', '600'], HostConfig: { NetworkMode: 'benchnet' } }, 'client');
  };
  const lclient = await mk(loom);
  targets.push({ system: 'loom (embedded, in the daemon)', loom: true, w: lw, from: await lw.containerNetns(loom, lclient), server: '127.0.0.11', pids: () => [loom.pid], rssLabel: 'loom daemon (resolver included)' });

  if (have.netavark && have.aardvark) {
    const aw = await World.create(ctx, 'dnsaardvark');
    for (let i = 0; i < NAMES; i++) await netavarkUp(aw, i, { dns: true, port: false });
    const from = await netavarkUp(aw, NAMES, { dns: true, port: false });
    const pidFile = path.join(aw.dir, 'netavark', 'aardvark-dns', 'aardvark.pid');
    const apid = () => Number(fs.readFileSync(pidFile, 'utf8').trim());
    targets.push({ system: 'aardvark-dns (started by netavark)', w: aw, from, server: '10.88.0.1', pids: () => [apid()], rssLabel: 'aardvark-dns' });
  } else res.notes.push('netavark/aardvark-dns not installed: not measured');

  if (have.dockerd) {
    const dw = await World.create(ctx, 'dnsdocker');
    const docker = await dw.startDocker();
    await dw.importBox(docker);
    const dclient = await mk(docker);
    targets.push({
      system: 'docker (dockerd 20.10, 127.0.0.11)', w: dw, from: await dw.containerNetns(docker, dclient), server: '127.0.0.11',
      pids: () => [docker.pid], rssLabel: 'dockerd (resolver included)',
    });
    const c = childNamed(docker.pid, 'containerd');
    if (c) res.notes.push(`containerd beside dockerd: ${rssMiB(c).toFixed(1)} MiB (not counted)`);
  } else res.notes.push('dockerd not installed: docker not measured');

  for (const t of targets) {
    ctx.log(`  ${t.system}: ${reps} × ${secs} s at 10 and 100 in flight`);
    const rssBefore = t.pids().reduce((a, p) => a + rssMiB(p), 0);
    await dnsperf(t.w, t.from, t.server, qfile, 100, 1); // warm-up (JIT, caches)
    const l10: number[] = [], q100: number[] = [], l100: number[] = [];
    let lost = 0, sent = 0;
    for (let i = 0; i < reps; i++) {
      const b = await dnsperf(t.w, t.from, t.server, qfile, 100, secs);
      q100.push(b.qps); l100.push(b.avgMs);
      lost += b.lost; sent += b.sent;
    }
    // latency at 10 in flight: every answer's latency, as dnsperf -v prints it
    const a = await dnsperf(t.w, t.from, t.server, qfile, 10, secs, true);
    l10.push(...a.latencies);
    lost += a.lost; sent += a.sent;
    const rssAfter = t.pids().reduce((a, p) => a + rssMiB(p), 0);
    const o = { loom: t.loom };
    rows.push(row('queries/s, 100 in flight', t.system, 'qps', q100, o));
    rows.push(row('latency per query, 10 in flight', t.system, 'ms', l10, o));
    rows.push(row('latency, 100 in flight (dnsperf average per run)', t.system, 'ms', l100, o));
    rows.push(single(`resolver RSS after the runs (${t.rssLabel})`, t.system, 'MiB', rssAfter, { ...o, extra: { before: rssBefore } }));
    if (lost) res.notes.push(`${t.system}: ${lost} of ${sent} queries lost`);
  }
  const cases = ['queries/s, 100 in flight', 'latency per query, 10 in flight', 'latency, 100 in flight (dnsperf average per run)'];
  res.tables.push({
    title: `dnsperf (UDP, A queries for ${NAMES} container names, round robin) from a container's namespace: queries/s over ${reps} runs × ${secs} s at 100 in flight; latency of every answer of one ${secs} s run at 10 in flight`,
    rows: rows.filter((r) => !r.case.startsWith('resolver RSS')).sort((a, b) => cases.indexOf(a.case) - cases.indexOf(b.case)),
    notes: [
      'queries/s: median and p95 over the runs. Latency at 10 in flight: median and p95 over every answer (dnsperf -v); at 100 in flight: over the runs\' averages.',
      'No queries/s figure at 10 in flight: there dnsperf\'s sender waits for its receiver thread (at 1 in flight it sends ~250 queries/s to a server answering in 0.1 ms), so the figure measures dnsperf.',
      'dnsperf and the resolver share the machine\'s 2 cores.',
    ],
  });
  res.tables.push({ title: 'resolver memory (RSS)', rows: rows.filter((r) => r.case.startsWith('resolver RSS')).map((r) => ({ ...r, case: 'resolver RSS after the runs' })), columns: ['before'] });
  const lq = rows.find((r) => r.loom && r.case === 'queries/s, 100 in flight');
  const aq = rows.find((r) => r.system.startsWith('aardvark') && r.case === 'queries/s, 100 in flight');
  res.goals.push(goal('DNS queries/s at 100 in flight vs aardvark-dns (issue 4)', '>= 1.2x', lq && aq ? lq.median / aq.median : undefined, 'count', (v) => v >= 1.2));
}
