// 7. daemon footprint: RSS of the loom daemon idle and with 1,000 containers' endpoints. The idle figure is
// the real daemon's (bin/loom daemon, just started with one image); the 1,000-endpoint figure is the
// daemon's code in process with runc stubbed (bench/workers/attach.ts), which is the only way to hold
// 1,000 endpoints without 1,000 runc containers. Figures measured by `attach` and `lifecycle` earlier in
// the same run are reused.
import { single, type Row, type SuiteResult } from '../lib/report.ts';
import { rssMiB } from '../lib/proc.ts';
import { World, type Ctx } from '../lib/world.ts';
import { available } from '../lib/peers.ts';
import { attachRun } from './attach.ts';
import { childNamed } from './lifecycle.ts';

export const name = 'footprint';
export const title = 'daemon footprint: RSS idle and with 1,000 containers\' endpoints';

interface LoomRss { n: number; idle: number; peak: number; after: number; heapPeak: number }

export async function run(ctx: Ctx, res: SuiteResult): Promise<void> {
  const N = ctx.quick ? 100 : 1000;
  const rows: Row[] = [];
  let idle = ctx.cache.get('loom-daemon-rss-idle') as number | undefined;
  let dockerIdle = ctx.cache.get('dockerd-rss-idle') as { dockerd: number; containerd: number } | undefined;
  if (idle === undefined) {
    const w = await World.create(ctx, 'fploom');
    const d = await w.startLoom();
    await w.importBox(d);
    idle = rssMiB(d.pid);
    await w.cleanup();
  }
  rows.push(single('RSS, idle (one image, no container)', 'loom daemon', 'MiB', idle, { loom: true }));
  if (!dockerIdle && available().dockerd) {
    const w = await World.create(ctx, 'fpdocker');
    const d = await w.startDocker();
    await w.importBox(d);
    const c = childNamed(d.pid, 'containerd');
    dockerIdle = { dockerd: rssMiB(d.pid), containerd: c ? rssMiB(c) : 0 };
    await w.cleanup();
  }
  if (dockerIdle) {
    rows.push(single('RSS, idle (one image, no container)', 'dockerd 20.10', 'MiB', dockerIdle.dockerd));
    rows.push(single('RSS, idle (one image, no container)', 'dockerd + its containerd', 'MiB', dockerIdle.dockerd + dockerIdle.containerd));
  }
  let at = ctx.cache.get('loom-rss') as LoomRss | undefined;
  if (!at || at.n < N) {
    const out = await attachRun(ctx, { system: 'loom', loom: true, mode: 'loom', dns: true, port: true, n: N, prof: 'footprint-loom' }, res);
    if (out?.rss) at = { n: out.attach.length, ...out.rss };
  }
  if (at) {
    rows.push(single(`RSS, daemon code in process: after start`, 'loom (in process)', 'MiB', at.idle, { loom: true }));
    rows.push(single(`RSS, daemon code in process: ${at.n} endpoints attached`, 'loom (in process)', 'MiB', at.peak, { loom: true, extra: { 'per endpoint': `${(((at.peak - at.idle) / at.n) * 1024).toFixed(0)} KiB`, 'JS heap': at.heapPeak } }));
    rows.push(single(`RSS, daemon code in process: all detached again`, 'loom (in process)', 'MiB', at.after, { loom: true }));
  }
  res.tables.push({
    title: 'daemon memory (VmRSS)',
    rows,
    columns: ['per endpoint', 'JS heap'],
    notes: [
      '"per endpoint": (RSS with the endpoints − RSS after start) / endpoints. Endpoints carry a user-defined network\'s DNS names and one published port each.',
      'docker with 1,000 containers is not measured (1,000 runc containers and shims: several minutes and GBs of memory on this machine).',
    ],
  });
}
