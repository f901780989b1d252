// bench/stress: randomized operations against one daemon in sandbox namespaces for N minutes, while the
// daemon is SIGKILLed at random moments (in the middle of whatever it is doing), restarted, and checked
// after each restart: every container runs with complete networking or is stopped with none, no address
// is used twice (test/helpers/invariants.ts). At the end everything is removed and the kernel must be as
// it was at the start (links, namespaces, nftables lines, mounts, runc containers, IPAM reservations).
// Not a test (not in CI): an instrument for crash safety; figures go to BENCHMARKS.md.
//
//   .node/bin/node bench/stress.ts [--minutes N] [--seed S] [--kill-every SECONDS]
import { createSandbox, type Sandbox } from '../test/helpers/sandbox.ts';
import { assertConsistent, kernelCounts, settlesTo } from '../test/helpers/invariants.ts';

const arg = (k: string, d: number) => {
  const i = process.argv.indexOf(k);
  return i > 0 ? Number(process.argv[i + 1]) : d;
};
const minutes = arg('--minutes', 5);
let seed = arg('--seed', Date.now() % 1e9);
const killEvery = arg('--kill-every', 20);
const seed0 = seed;
/** mulberry32: a seeded PRNG, so a failing run can be replayed */
function rnd(): number {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)]!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const NETS = ['s0', 's1', 's2'];
const NAMES = Array.from({ length: 12 }, (_, i) => `w${i}`);

function operation(): string[] {
  const n = pick(NAMES);
  switch (pick(['run', 'run', 'run', 'stop', 'start', 'rm', 'connect', 'disconnect', 'restart', 'netcreate', 'netrm'])) {
    case 'run': return ['run', '-d', '--name', n, '--network', pick(NETS), ...(rnd() < 0.3 ? ['-p', `${20000 + Math.floor(rnd() * 50)}:80`] : []), 'box', 'sleep', '1d'];
    case 'stop': return ['stop', '-t', '0', n];
    case 'start': return ['start', n];
    case 'rm': return ['rm', '-f', n];
    case 'connect': return ['network', 'connect', pick(NETS), n];
    case 'disconnect': return ['network', 'disconnect', pick(NETS), n];
    case 'restart': return ['restart', '-t', '0', n];
    case 'netcreate': return ['network', 'create', '--subnet', '10.88.0.0/24', 'sx'];
    default: return ['network', 'rm', 'sx'];
  }
}

async function main(): Promise<void> {
  const sb: Sandbox = await createSandbox({ tag: 'stress' });
  const figures = { seed: seed0, minutes, operations: 0, succeeded: 0, kills: 0, checks: 0, violations: 0 };
  const violations: string[] = [];
  try {
    await sb.startDaemon();
    await sb.image('box');
    const base = await kernelCounts(sb);
    for (const [i, n] of NETS.entries()) await sb.loom('network', 'create', '--subnet', `10.87.${i}.0/24`, n);
    const end = Date.now() + minutes * 60_000;
    let nextKill = Date.now() + rnd() * killEvery * 1000;
    while (Date.now() < end) {
      // a few operations at once, as clients do
      const batch = Array.from({ length: 1 + Math.floor(rnd() * 4) }, operation);
      const running = batch.map((op) => sb.loom(...op));
      figures.operations += batch.length;
      if (Date.now() >= nextKill) {
        await sleep(rnd() * 150); // somewhere in the middle of the batch
        await sb.stopDaemon('SIGKILL');
        figures.kills++;
        await Promise.all(running);
        await sb.startDaemon();
        try {
          figures.checks++;
          await assertConsistent(sb);
        } catch (e) {
          figures.violations++;
          violations.push(`after kill ${figures.kills}: ${(e as Error).message.split('\n')[0]}`);
        }
        nextKill = Date.now() + rnd() * killEvery * 1000 * 2;
      } else {
        for (const r of await Promise.all(running)) if (r.code === 0) figures.succeeded++;
      }
    }
    // everything away: the kernel must be as it was
    const all = (await sb.loom('ps', '-aq')).stdout.split('\n').filter(Boolean);
    if (all.length) await sb.loom('rm', '-f', ...all);
    await sb.loom('network', 'rm', ...NETS, 'sx');
    const now = await settlesTo(sb, base);
    figures.checks++;
    if (JSON.stringify(now) !== JSON.stringify(base)) {
      figures.violations++;
      violations.push(`leaked at the end: ${JSON.stringify(now)} vs ${JSON.stringify(base)}`);
    }
  } finally {
    await sb.cleanup();
  }
  console.log(JSON.stringify(figures));
  for (const v of violations) console.log(`violation: ${v}`);
  process.exitCode = figures.violations ? 1 : 0;
}

await main();
