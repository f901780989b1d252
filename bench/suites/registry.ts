// 8. registry: pull and push of a generated image (5 layers of incompressible data, ~200 MB) from Debian's
// docker-registry run in the world's outside namespace: loom (bin/loom), dockerd 20.10 (docker CLI) and
// `skopeo copy` to a directory, in the same run; and the daemon's memory during the pull (it streams every
// layer from the socket into the store: nothing is buffered whole). Each push goes to a fresh registry, so
// every layer is uploaded (no "already exists", no cross-repository mount).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { goal, peer, row, single, type Row, type SuiteResult } from '../lib/report.ts';
import { must, rssMiB, run as runCmd, sleep } from '../lib/proc.ts';
import { LOOM, World, type Ctx, type Daemon } from '../lib/world.ts';
import { available } from '../lib/peers.ts';
import { writeDirImage } from '../../test/helpers/registry.ts';

export const name = 'registry';
export const title = 'pull and push of a generated 5-layer image (~200 MB) with a registry in the sandbox: loom, dockerd 20.10, skopeo';

const REG = '198.51.100.2';

/** docker-registry on REG:port in the world's outside namespace, with storage of its own. */
async function startRegistry(w: World, port: number): Promise<void> {
  const dir = path.join(w.dir, `registry-${port}`);
  fs.mkdirSync(path.join(dir, 'storage'), { recursive: true });
  const cfg = path.join(dir, 'config.yml');
  fs.writeFileSync(cfg, `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/storage\nhttp:\n  addr: ${REG}:${port}\n`);
  w.spawnBg(w.inExt(['/usr/bin/docker-registry', 'serve', cfg]), `registry-${port}.log`);
  for (let i = 0; i < 200; i++) {
    const r = await runCmd(w.inExt(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${REG}:${port}/v2/`]));
    if (r.stdout === '200') return;
    await sleep(50);
  }
  throw new Error(`docker-registry on ${port} did not come up: ${w.tail(`registry-${port}.log`)}`);
}

/** The image, in skopeo's dir: layout, made once per run. */
function generate(ctx: Ctx, layerMiB: number): string {
  const dir = path.join(ctx.runDir, `registry-image-${layerMiB}`);
  if (fs.existsSync(path.join(dir, 'manifest.json'))) return dir;
  const tars: Buffer[] = [];
  for (let i = 0; i < 5; i++) {
    const d = path.join(ctx.runDir, `layer-${i}`);
    fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(d, `data${i}.bin`), randomBytes(layerMiB << 20));
    tars.push(execFileSync('tar', ['-C', d, '--numeric-owner', '-cf', '-', '.'], { maxBuffer: (layerMiB + 8) << 20 }));
    fs.rmSync(d, { recursive: true, force: true });
  }
  writeDirImage(dir, tars, { cmd: ['/data0.bin'] });
  return dir;
}

/** Peak VmRSS of `pid` while `fn` runs (sampled every 20 ms). */
async function peakRss(pid: number, fn: () => Promise<unknown>): Promise<number> {
  let peak = rssMiB(pid);
  let on = true;
  const sampler = (async () => { while (on) { peak = Math.max(peak, rssMiB(pid)); await sleep(20); } })();
  try {
    await fn();
  } finally {
    on = false;
    await sampler;
  }
  return Math.max(peak, rssMiB(pid));
}

const timedOk = async (argv: string[], env?: NodeJS.ProcessEnv): Promise<number> => {
  const r = await runCmd(argv, { env, timeoutMs: 600_000 });
  if (r.code !== 0) throw new Error(`${argv.join(' ')} → exit ${r.code}: ${(r.stderr || r.stdout).trim().slice(-1000)}`);
  return r.ms;
};

export async function run(ctx: Ctx, res: SuiteResult): Promise<void> {
  const K = ctx.quick ? 1 : 3;
  const layerMiB = ctx.quick ? 8 : 40;
  ctx.log(`  generating 5 layers of ${layerMiB} MiB`);
  const image = generate(ctx, layerMiB);
  const size = fs.readdirSync(image).filter((f) => /^[0-9a-f]{64}$/.test(f)).reduce((n, f) => n + fs.statSync(path.join(image, f)).size, 0);
  const caseName = `${(size / 1e6).toFixed(0)} MB, 5 layers`;
  const pulls: Row[] = [], pushes: Row[] = [], mem: Row[] = [];
  let nextPort = 5100;
  const ref = `${REG}:5000/bench/big:1`;
  const seed = async (w: World) => {
    await startRegistry(w, 5000);
    await must(w.inHost(['skopeo', '--insecure-policy', 'copy', '--dest-tls-verify=false', `dir:${image}`, `docker://${ref}`]), { timeoutMs: 600_000 });
  };

  const daemonRun = async (system: string, w: World, d: Daemon, cli: string[], isLoom: boolean) => {
    const pullMs: number[] = [], apiMs: number[] = [], pushMs: number[] = [], peaks: number[] = [];
    const idle = rssMiB(d.pid);
    for (let i = -1; i < K; i++) { // i = -1: warm-up (first connections, first layer directories)
      let ms = 0;
      const peak = await peakRss(d.pid, async () => { ms = await timedOk([...cli, 'pull', '-q', ref], d.env); });
      // the daemon's own work: the same pull through the Engine API (curl), no CLI start-up
      await must([...cli, 'rmi', ref], { env: d.env });
      const api = await timedOk(['curl', '-sf', '--unix-socket', d.socket, '-X', 'POST', `http://x/v1.41/images/create?fromImage=${encodeURIComponent(ref.replace(/:1$/, ''))}&tag=1`, '-o', '/dev/null']);
      const port = nextPort++;
      await startRegistry(w, port);
      const target = `${REG}:${port}/bench/pushed:1`;
      await must([...cli, 'tag', ref, target], { env: d.env });
      const pms = await timedOk([...cli, 'push', target], d.env);
      await must([...cli, 'rmi', ref, target], { env: d.env });
      if (i < 0) continue;
      pullMs.push(ms);
      apiMs.push(api);
      pushMs.push(pms);
      peaks.push(peak - idle);
    }
    pulls.push(row(`pull (${caseName})`, system, 'ms', pullMs, { loom: isLoom }));
    pulls.push(row(`pull through the API (${caseName})`, system.replace(/ \(.*\)$/, ''), 'ms', apiMs, { loom: isLoom }));
    pushes.push(row(`push (${caseName}, every layer uploaded)`, system, 'ms', pushMs, { loom: isLoom }));
    mem.push(single('daemon RSS during a pull, above idle (peak)', system, 'MiB', Math.max(...peaks), { loom: isLoom, extra: { idle } }));
  };

  await peer(res, 'loom', async () => {
    const w = await World.create(ctx, 'regloom');
    await seed(w);
    const d = await w.startLoom(['--insecure-registry', '198.51.100.0/24']);
    ctx.log(`  loom: ${K} × pull / push`);
    await daemonRun('loom (bin/loom)', w, d, [LOOM], true);
    await w.cleanup();
  });
  if (available().dockerd) {
    await peer(res, 'docker', async () => {
      const w = await World.create(ctx, 'regdocker');
      await seed(w);
      const d = await w.startDocker(['--insecure-registry', '198.51.100.0/24'], { noProxy: '198.51.100.2' });
      ctx.log(`  dockerd: ${K} × pull / push`);
      await daemonRun('docker (dockerd 20.10)', w, d, ['docker'], false);
      await w.cleanup();
    });
  } else res.notes.push('dockerd not installed: docker not measured');
  await peer(res, 'skopeo', async () => {
    const w = await World.create(ctx, 'regskopeo');
    await seed(w);
    ctx.log(`  skopeo: ${K} × copy to a directory and back to a fresh registry`);
    const pullMs: number[] = [], pushMs: number[] = [];
    for (let i = -1; i < K; i++) {
      const out = path.join(w.dir, `copy-${i}`);
      const ms = await timedOk(w.inHost(['skopeo', '--insecure-policy', 'copy', '--src-tls-verify=false', `docker://${ref}`, `dir:${out}`]));
      const port = nextPort++;
      await startRegistry(w, port);
      const pms = await timedOk(w.inHost(['skopeo', '--insecure-policy', 'copy', '--dest-tls-verify=false', `dir:${out}`, `docker://${REG}:${port}/bench/pushed:1`]));
      fs.rmSync(out, { recursive: true, force: true });
      if (i < 0) continue;
      pullMs.push(ms);
      pushMs.push(pms);
    }
    pulls.push(row(`pull (${caseName})`, 'skopeo copy → dir:', 'ms', pullMs));
    pushes.push(row(`push (${caseName}, every layer uploaded)`, 'skopeo copy dir: →', 'ms', pushMs));
    await w.cleanup();
  });
  res.tables.push({ title: 'pull', rows: pulls, notes: ['Through each CLI (its start-up included): loom and dockerd download, verify and unpack every layer; skopeo only downloads and verifies (no unpacking).'] });
  res.tables.push({ title: 'push', rows: pushes, notes: ['To a fresh registry each time. loom pushes the compressed blobs it kept from the pull; dockerd 20.10 keeps none and compresses each layer again.'] });
  res.tables.push({ title: 'memory', rows: mem, columns: ['idle'], notes: ['dockerd\'s figure leaves out its containerd.'] });
  // the goal compares the daemons' work (through the API): bin/loom's Node start-up (~0.3 s here) is not the pull's
  const loomPull = pulls.find((r) => r.loom && r.case.startsWith('pull through the API'))?.median;
  const dockerPull = pulls.find((r) => r.system.startsWith('docker') && r.case.startsWith('pull through the API'))?.median;
  const loomPush = pushes.find((r) => r.loom)?.median;
  const dockerPush = pushes.find((r) => r.system.startsWith('docker'))?.median;
  const loomMem = mem.find((r) => r.loom)?.median;
  res.goals.push(goal('pull through the API: loom / dockerd', '≤ 0.8', loomPull !== undefined && dockerPull ? loomPull / dockerPull : undefined, 'count', (v) => v <= 0.8));
  res.goals.push(goal('push: loom / dockerd', '≤ 0.8', loomPush !== undefined && dockerPush ? loomPush / dockerPush : undefined, 'count', (v) => v <= 0.8));
  res.goals.push(goal('daemon memory during a 200 MB pull, above idle', '≤ 50 MiB', loomMem, 'MiB', (v) => v <= 50));
}
