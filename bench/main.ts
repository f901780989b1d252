// bench/run: loom side by side with netavark, the CNI plugins, Docker and the kernel's floor, in one run.
// Every benchmark runs in sandbox namespaces of its own (lib/world.ts), one after another; each prints one
// table with median, p95 and the ratio loom/peer for every peer measured in the same run. Nothing here
// asserts a time: it is an instrument, not a test.
//
//   bench/run [--quick] [--only NAME[,NAME]] [--json FILE] [--cpu-prof] [--list]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { busyboxTar } from '../test/helpers/sandbox.ts';
import { renderGoals, renderTable, type SuiteResult } from './lib/report.ts';
import { dropDockerRunDir, liveWorlds, ROOT, type Ctx } from './lib/world.ts';
import { staleRuns, sweep, type Owned } from './lib/sweep.ts';
import { dpkgVersion, ensurePackages, VERSIONED } from './lib/peers.ts';
import { profilesIn, renderProfile, summarize, type ProfileSummary } from './lib/profile.ts';
import * as attach from './suites/attach.ts';
import * as lifecycle from './suites/lifecycle.ts';
import * as network from './suites/network.ts';
import * as ports from './suites/ports.ts';
import * as dns from './suites/dns.ts';
import * as datapath from './suites/datapath.ts';
import * as footprint from './suites/footprint.ts';
import * as volumes from './suites/volumes.ts';
import * as registry from './suites/registry.ts';
import * as build from './suites/build.ts';
import * as ovs from './suites/ovs.ts';
import * as cni from './suites/cni.ts';
import * as nodes from './suites/nodes.ts';
import * as overlay from './suites/overlay.ts';

interface Suite { name: string; title: string; run(ctx: Ctx, res: SuiteResult): Promise<void> }
const SUITES: Suite[] = [attach, lifecycle, network, ports, dns, datapath, footprint, volumes, registry, build, ovs, cni, nodes, overlay];

const USAGE = `usage: bench/run [--quick] [--only NAME[,NAME]] [--json FILE] [--cpu-prof] [--list]
  --quick      small N and short runs (under 3 minutes): for development; figures are rough
  --only NAME  run only these benchmarks (${SUITES.map((s) => s.name).join(', ')})
  --json FILE  also write the figures, with date, kernel and package versions, to FILE
  --cpu-prof   run loom's processes under V8's sampling profiler (bench/profiles/) and print where
               the time went; best with --only
  --list       list the benchmarks`;

function parseArgs(argv: string[]) {
  const o = { quick: false, only: [] as string[], json: '', cpuProf: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = () => {
      const eq = a.indexOf('=');
      if (eq > 0) return a.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--quick') o.quick = true;
    else if (a === '--cpu-prof') o.cpuProf = true;
    else if (a === '--only' || a.startsWith('--only=')) o.only.push(...val().split(',').filter(Boolean));
    else if (a === '--json' || a.startsWith('--json=')) o.json = path.resolve(val());
    else if (a === '--list') {
      for (const s of SUITES) console.log(`${s.name.padEnd(10)} ${s.title}`);
      process.exit(0);
    } else if (a === '-h' || a === '--help') {
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  for (const n of o.only) if (!SUITES.some((s) => s.name === n)) throw new Error(`no benchmark named ${n} (have: ${SUITES.map((s) => s.name).join(', ')})`);
  return o;
}

/** The machine's own namespace, as far as a benchmark could touch it: links and nftables tables. */
function rootState(): { links: string[]; nft: string } {
  const links = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean)
    .map((l) => l.split(': ')[1]?.split('@')[0] ?? '').sort();
  const nft = spawnSync('nft', ['list', 'tables'], { encoding: 'utf8' }).stdout.trim();
  return { links, nft };
}

function sh(cmd: string, args: string[]): string {
  return spawnSync(cmd, args, { encoding: 'utf8' }).stdout?.trim() ?? '';
}

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  if (process.getuid?.() !== 0) {
    console.error('bench/run: needs root (network namespaces, nftables, runc, dockerd)');
    return 2;
  }
  const t0 = Date.now();
  const log = (m: string) => process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${m}\n`);
  // LOOM_BENCH_PREFIX: another prefix for this run's namespaces, cgroups and /tmp folder (several people
  // benchmarking on one machine keep out of each other's way)
  const prefix = process.env.LOOM_BENCH_PREFIX || 'loomb5-';
  for (const o of staleRuns('/tmp', prefix)) {
    const did = sweep(o);
    if (did.length) log(`removed leftovers of an earlier run (${o.nsPrefix}*): ${did.join(', ')}`);
  }
  const notes = ensurePackages(log);
  const runDir = `/tmp/${prefix}${process.pid}`;
  const owned: Owned = { nsPrefix: `${prefix}${process.pid}-`, dir: runDir, cgroupPrefix: `${prefix}${process.pid}-` };
  fs.mkdirSync(runDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  const profDir = opts.cpuProf ? path.join(ROOT, 'bench', 'profiles', stamp) : undefined;
  const ctx: Ctx = { quick: opts.quick, profDir, runDir, nsPrefix: owned.nsPrefix, tar: busyboxTar(runDir), log, cache: new Map() };

  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`\nbench/run: ${sig}: removing everything this run made...\n`);
    const did = sweep(owned);
    dropDockerRunDir();
    process.stderr.write(`bench/run: ${did.join(', ') || 'nothing left'}\n`);
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const before = rootState();
  const load0 = os.loadavg();
  const selected = SUITES.filter((s) => !opts.only.length || opts.only.includes(s.name));
  const results: SuiteResult[] = [];
  const profiles: Record<string, ProfileSummary[]> = {};
  console.log(`# loom benchmarks ${opts.quick ? '(--quick: small N, short runs, rough figures)' : ''}\n`);
  console.log(`${new Date().toISOString()} · kernel ${os.release()} · ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'} · load average at start ${load0.map((x) => x.toFixed(2)).join(' ')}\n`);
  for (const n of notes) console.log(`- ${n}`);
  for (const s of selected) {
    const res: SuiteResult = { name: s.name, title: s.title, seconds: 0, tables: [], goals: [], notes: [] };
    const ts = Date.now();
    log(`${s.name}: ${s.title}`);
    try {
      await s.run(ctx, res);
    } catch (e) {
      res.error = (e as Error).stack ?? String(e);
      log(`${s.name}: failed: ${(e as Error).message}`);
    } finally {
      for (const w of [...liveWorlds]) await w.cleanup().catch(() => {});
    }
    res.seconds = (Date.now() - ts) / 1000;
    results.push(res);
    console.log(`## ${s.name}: ${s.title} (${res.seconds.toFixed(0)} s)\n`);
    for (const t of res.tables) console.log(renderTable(t) + '\n');
    for (const n of res.notes) console.log(`- ${n}`);
    if (res.error) console.log(`- **failed**: ${res.error.split('\n').slice(0, 6).join(' ')}`);
    if (res.goals.length) console.log('\n' + renderGoals(res.goals));
    if (profDir) {
      const files = profilesIn(profDir).filter((f) => !Object.values(profiles).flat().some((p) => p.file === f));
      profiles[s.name] = files.map((f) => summarize(f));
      for (const p of profiles[s.name]!) console.log('\n' + renderProfile(p));
    }
    console.log('');
  }
  const goals = results.flatMap((r) => r.goals);
  if (goals.length && selected.length > 1) console.log(`${renderGoals(goals, '## all goals (from the issues)')}\n`);
  const leftover = sweep(owned);
  dropDockerRunDir();
  const after = rootState();
  const changed: string[] = [];
  if (before.links.join() !== after.links.join()) changed.push(`links of the machine's namespace changed: before [${before.links.join(' ')}] after [${after.links.join(' ')}]`);
  if (before.nft !== after.nft) changed.push(`nftables tables of the machine's namespace changed: before [${before.nft}] after [${after.nft}]`);
  const ours = fs.readdirSync('/run/netns').filter((n) => n.startsWith(owned.nsPrefix));
  if (ours.length) changed.push(`namespaces left: ${ours.join(' ')}`);
  const load1 = os.loadavg();
  console.log(`total ${((Date.now() - t0) / 1000).toFixed(0)} s · load average at end ${load1.map((x) => x.toFixed(2)).join(' ')}${leftover.length ? ` · final sweep: ${leftover.join(', ')}` : ''}`);
  if (changed.length) console.log(`WARNING: ${changed.join('; ')} (another process may have done this; the benchmarks work in their own namespaces only)`);
  else console.log('machine\'s own namespace unchanged (links, nftables tables); no namespace of this run left');
  if (opts.json) {
    const versions: Record<string, string | null> = {};
    for (const p of VERSIONED) versions[p] = dpkgVersion(p);
    const doc = {
      date: new Date(t0).toISOString(), seconds: (Date.now() - t0) / 1000, quick: opts.quick,
      kernel: os.release(), cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, loadAverage: { start: load0, end: load1 },
      node: process.version, loom: { commit: sh('git', ['-C', ROOT, 'rev-parse', 'HEAD']), dirtyFiles: sh('git', ['-C', ROOT, 'status', '--porcelain']).split('\n').filter(Boolean).length },
      dockerCli: sh('docker', ['--version']), packages: versions, notes, rootNamespaceChanged: changed,
      benchmarks: results, ...(profDir ? { profiles } : {}),
    };
    fs.mkdirSync(path.dirname(opts.json), { recursive: true });
    fs.writeFileSync(opts.json, JSON.stringify(doc, null, 2) + '\n');
    log(`figures written to ${opts.json}`);
  }
  return results.some((r) => r.error) ? 1 : 0;
}

process.exit(await main().catch((e) => {
  console.error(`bench/run: ${(e as Error).message}`);
  return 2;
}));
