// 2. lifecycle: `run -d` and `rm -f` end to end, through the CLIs, against loom and dockerd, with
// `--network none` and on the default bridge, so that the networking share of a run is visible.
import { goal, peer, row, single, type Row, type SuiteResult } from '../lib/report.ts';
import { rssMiB, run as runCmd, timed } from '../lib/proc.ts';
import { LOOM, World, type Ctx, type Daemon } from '../lib/world.ts';
import { available } from '../lib/peers.ts';
import fs from 'node:fs';

export const name = 'lifecycle';
export const title = '`run -d` / `rm -f` end to end through the CLI (runc included), --network none and the default bridge';

interface Client { system: string; loom?: boolean; argv: string[]; d: Daemon }

async function timedCli(c: Client, args: string[]): Promise<{ ms: number; out: string }> {
  const r = await runCmd([...c.argv, ...args], { env: c.d.env });
  if (r.code !== 0) throw new Error(`${c.system}: ${args.join(' ')} → exit ${r.code}: ${r.stderr.trim().slice(0, 500)}`);
  return { ms: r.ms, out: r.stdout.trim() };
}

/** Children of a process (by /proc/<pid>/stat ppid) whose command name is `comm`. */
export function childNamed(pid: number, comm: string): number | undefined {
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const st = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const m = /^\d+ \((.*)\) \S (\d+)/.exec(st);
      if (m && m[1] === comm && Number(m[2]) === pid) return Number(e);
    } catch { /* gone */ }
  }
  return undefined;
}

const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.ceil(xs.length / 2) - 1]!;

export async function run(ctx: Ctx, res: SuiteResult): Promise<void> {
  const K = ctx.quick ? 5 : 20;
  const rows: Row[] = [];
  const clients: Client[] = [];
  const cliShare = new Map<Client, Record<string, number[]>>();
  const lw = await World.create(ctx, 'lifeloom');
  const loom = await lw.startLoom();
  await lw.importBox(loom);
  ctx.cache.set('loom-daemon-rss-idle', rssMiB(loom.pid));
  clients.push({ system: 'loom (bin/loom)', loom: true, argv: [LOOM], d: loom });
  clients.push({ system: 'loom (docker CLI)', argv: ['docker'], d: loom });
  if (available().dockerd) {
    await peer(res, 'docker', async () => {
      const dw = await World.create(ctx, 'lifedocker');
      const docker = await dw.startDocker();
      await dw.importBox(docker);
      const containerd = childNamed(docker.pid, 'containerd');
      ctx.cache.set('dockerd-rss-idle', { dockerd: rssMiB(docker.pid), containerd: containerd ? rssMiB(containerd) : 0 });
      clients.push({ system: 'docker (dockerd 20.10)', argv: ['docker'], d: docker });
    });
  } else res.notes.push('dockerd not installed: docker not measured');

  // The CLIs interleaved (loom's, docker's against loom, docker's against dockerd, one after the other in
  // each round), so that a machine whose speed drifts during the run weighs on all of them alike.
  ctx.log(`  ${clients.map((c) => c.system).join(', ')}: ${K} × run -d / rm -f each, interleaved, --network none and bridge`);
  const failed = new Set<Client>();
  for (const [label, netArgs] of [['--network none', ['--network', 'none']], ['default bridge', []]] as const) {
    const runs = new Map<Client, number[]>(), rms = new Map<Client, number[]>();
    for (let i = -1; i < K; i++) { // i = -1: warm-up (first container start pays one-off costs)
      for (const c of clients) {
        if (failed.has(c)) continue;
        await peer(res, c.system, async () => {
          try {
            const r = await timedCli(c, ['run', '-d', ...netArgs, 'box', 'sleep', '600']);
            const rm = await timedCli(c, ['rm', '-f', r.out.split('\n').pop()!]);
            if (i < 0) return;
            (runs.get(c) ?? runs.set(c, []).get(c)!).push(r.ms);
            (rms.get(c) ?? rms.set(c, []).get(c)!).push(rm.ms);
          } catch (e) {
            failed.add(c);
            throw e;
          }
        });
      }
    }
    for (const c of clients) {
      if (failed.has(c)) continue;
      rows.push(row(`run -d (${label})`, c.system, 'ms', runs.get(c)!, { loom: c.loom }));
      rows.push(row(`rm -f (${label})`, c.system, 'ms', rms.get(c)!, { loom: c.loom }));
      cliShare.set(c, { ...cliShare.get(c), [label]: runs.get(c)! });
    }
  }
  for (const c of clients) {
    const share = cliShare.get(c);
    if (share?.['default bridge'] && share['--network none']) rows.push(single('networking share of run -d (bridge − none)', c.system, 'ms', med(share['default bridge']) - med(share['--network none']), { loom: c.loom }));
  }
  const loomCli = clients[0]!, dockerOnLoom = clients[1]!;
  for (const op of ['run -d (--network none)', 'rm -f (--network none)']) {
    const a = rows.find((r) => r.case === op && r.system === loomCli.system), b = rows.find((r) => r.case === op && r.system === dockerOnLoom.system);
    res.goals.push(goal(`bin/loom ${op.split(' (')[0]} / docker CLI ${op.split(' (')[0]}, same loom daemon (issue 14)`, '<= 1.3', a && b ? a.median / b.median : undefined, 'count', (v) => v <= 1.3));
  }
  await startup(ctx, res, loom, K);

  // the same through the Engine API (no CLI process): the daemons' own work, so the networking share is
  // not buried under the clients' start-up
  const daemons: [string, boolean, Daemon][] = [];
  for (const c of clients) if (!daemons.some(([, , d]) => d === c.d)) daemons.push([c.d.kind === 'loom' ? 'loom' : c.system, !!c.loom, c.d]);
  for (const [system, isLoom, d] of daemons) await peer(res, system, async () => {
    ctx.log(`  ${system}: ${K} × create+start / rm -f through the API, --network none and bridge`);
    const share: Record<string, number[]> = {};
    for (const [label, mode] of [['--network none', 'none'], ['default bridge', 'bridge']] as const) {
      const runs: number[] = [], rms: number[] = [];
      for (let i = -1; i < K; i++) {
        let id = '';
        const r = await timed(async () => { id = await d.api.run({ Image: 'box', Cmd: ['sleep', '600'], HostConfig: { NetworkMode: mode } }); });
        const rm = await timed(() => d.api.rmf(id));
        if (i < 0) continue;
        runs.push(r);
        rms.push(rm);
      }
      rows.push(row(`API run (${label})`, system, 'ms', runs, { loom: isLoom }));
      rows.push(row(`API rm -f (${label})`, system, 'ms', rms, { loom: isLoom }));
      share[label] = runs;
    }
    rows.push(single('networking share of API run (bridge − none)', system, 'ms', med(share['default bridge']!) - med(share['--network none']!), { loom: isLoom }));
  });
  const order = (r: Row) => ['run -d (--network none)', 'run -d (default bridge)', 'rm -f (--network none)', 'rm -f (default bridge)', 'networking share of run -d (bridge − none)',
    'API run (--network none)', 'API run (default bridge)', 'API rm -f (--network none)', 'API rm -f (default bridge)', 'networking share of API run (bridge − none)'].indexOf(r.case);
  res.tables.push({
    title: `run -d / rm -f, ${K} containers each (busybox \`sleep 600\`): wall time of the CLI command, and of the same through the API`,
    rows: rows.sort((a, b) => order(a) - order(b)),
    notes: [
      'Each figure is the whole CLI invocation: process start of the client, API calls, the daemon\'s work, runc. bin/loom is a Node program (its start-up is part of its figure); the docker CLI is a Go binary.',
      'API rows: create + start (what `run -d` asks of the daemon) and DELETE ?force=1 over the daemon\'s socket, the same client for both daemons.',
      'The networking share is the difference of the medians of the two run rows above it (it is small against the noise of the CLI rows).',
    ],
  });
}

/**
 * A CLI call's own start-up: `bin/loom version` and `ps` against the loom daemon, beside a bare `node -e 0`
 * (the floor of any Node program) and the docker CLI's same commands against the same daemon, interleaved
 * round by round. bin/loom runs from its bundle (scripts/build-cli), built before the first round.
 */
async function startup(ctx: Ctx, res: SuiteResult, loom: Daemon, K: number): Promise<void> {
  const node = process.execPath;
  const cases: [string, string, string[], boolean][] = [
    ['node -e 0', 'node (bare start)', [node, '-e', '0'], false],
    ['version', 'loom (bin/loom)', [LOOM, 'version'], true],
    ['version', 'loom (docker CLI)', ['docker', 'version'], false],
    ['ps', 'loom (bin/loom)', [LOOM, 'ps'], true],
    ['ps', 'loom (docker CLI)', ['docker', 'ps'], false],
    ['version (LOOM_NO_BUNDLE=1)', 'loom (bin/loom)', [LOOM, 'version'], true],
  ];
  const times = cases.map(() => [] as number[]);
  ctx.log(`  CLI start-up: ${cases.length} commands × ${K * 2}, interleaved`);
  for (let i = -1; i < K * 2; i++) {
    for (const [j, [c, , argv]] of cases.entries()) {
      const env = c.includes('LOOM_NO_BUNDLE') ? { ...loom.env, LOOM_NO_BUNDLE: '1' } : loom.env;
      const r = await runCmd(argv, { env });
      if (r.code !== 0) throw new Error(`${argv.join(' ')} → exit ${r.code}: ${r.stderr.trim().slice(0, 300)}`);
      if (i >= 0) times[j]!.push(r.ms);
    }
  }
  const rows = cases.map(([c, system, , isLoom], j) => row(c, system, 'ms', times[j]!, { loom: isLoom }));
  const nodeMed = rows[0]!.median;
  for (const r of rows) r.extra = { '/ node -e 0': r.median / nodeMed };
  res.tables.push({
    title: `CLI start-up against the loom daemon: ${K * 2} calls each, interleaved, beside a bare Node start`,
    rows,
    columns: ['/ node -e 0'],
    plain: ['/ node -e 0'],
    notes: [
      'Wall time of the whole process, spawned by the benchmark. "/ node -e 0": median over the median of a bare `node -e 0` in the same rounds.',
      'bin/loom: a bash wrapper (freshness check of the bundle with bash\'s own -nt, no fork) and Node on the CommonJS bundle, which evaluates only the module of the command that runs. LOOM_NO_BUNDLE=1: the TypeScript sources, stripped file by file (with Node\'s compile cache).',
    ],
  });
  for (const c of ['version', 'ps']) {
    const r = rows.find((x) => x.case === c && x.system === 'loom (bin/loom)');
    res.goals.push(goal(`bin/loom ${c} / node -e 0 (issue 14)`, '<= 1.3', r ? r.median / nodeMed : undefined, 'count', (v) => v <= 1.3));
  }
}
