// 7. daemon footprint: RSS of the loom daemon idle and with 1,000 containers' endpoints. The idle figure is
// the real daemon's (bin/loom daemon, just started with one image); the 1,000-endpoint figure is the
// daemon's code in process with runc stubbed (bench/workers/attach.ts), which is the only way to hold
// 1,000 endpoints without 1,000 runc containers (its figures are reused when `attach` ran earlier in the
// same run). The idle figures are this benchmark's own: fresh daemons, loom and dockerd alternately.
import fs from 'node:fs';
import { goal, peer, row, single, type Row, type SuiteResult } from '../lib/report.ts';
import { sleep } from '../lib/proc.ts';
import { World, type Ctx } from '../lib/world.ts';
import { available } from '../lib/peers.ts';
import { attachRun } from './attach.ts';
import { childNamed } from './lifecycle.ts';

export const name = 'footprint';
export const title = 'daemon footprint: RSS idle and with 1,000 containers\' endpoints';

interface LoomRss { n: number; idle: number; peak: number; after: number; heapPeak: number }

/** VmRSS and its anonymous / file-backed parts (MiB). */
function rssParts(pid: number): { rss: number; anon: number; file: number } {
  const st = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(st)?.[1] ?? NaN) / 1024;
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') };
}

export async function run(ctx: Ctx, res: SuiteResult): Promise<void> {
  const N = ctx.quick ? 100 : 1000;
  const rows: Row[] = [];
  // Idle: a fresh daemon with one image, 5 s after the import (both daemons settle: loom trims 2 s after
  // its last event), loom and dockerd started alternately, twice each.
  const idle: Record<string, ReturnType<typeof rssParts>[]> = {};
  const systems: [string, 'loom' | 'docker'][] = [['loom daemon', 'loom']];
  if (available().dockerd) systems.push(['dockerd 20.10', 'docker']);
  for (let round = 0; round < 2; round++) {
    for (const [system, kind] of systems) {
      await peer(res, system, async () => {
        const w = await World.create(ctx, `fp${kind}`);
        try {
          const d = kind === 'loom' ? await w.startLoom() : await w.startDocker();
          await w.importBox(d);
          await sleep(5000);
          (idle[system] ??= []).push(rssParts(d.pid));
          if (kind === 'docker') {
            const c = childNamed(d.pid, 'containerd');
            if (c) (idle['dockerd + its containerd'] ??= []).push((({ rss, anon, file }, x) => ({ rss: rss + x.rss, anon: anon + x.anon, file: file + x.file }))(rssParts(d.pid), rssParts(c)));
          }
        } finally {
          await w.cleanup();
        }
      });
    }
  }
  for (const [system, xs] of Object.entries(idle)) {
    const r = row('RSS, idle (one image, no container, 5 s after the import)', system, 'MiB', xs.map((x) => x.rss), { loom: system === 'loom daemon' });
    const mid = xs.find((x) => x.rss === r.median)!;
    r.extra = { anon: mid.anon, 'file-backed': mid.file };
    rows.push(r);
  }
  const li = rows.find((r) => r.system === 'loom daemon'), di = rows.find((r) => r.system === 'dockerd 20.10');
  res.goals.push(goal('loom daemon idle RSS / dockerd idle RSS (issue 14)', '<= 1', li && di ? li.median / di.median : undefined, 'count', (v) => v <= 1));
  let at = ctx.cache.get('loom-rss') as LoomRss | undefined;
  if (!at || at.n < N) {
    const out = await attachRun(ctx, { system: 'loom', loom: true, mode: 'loom', dns: true, port: true, n: N, prof: 'footprint-loom' }, res);
    if (out?.rss) at = { n: out.attach.length, ...out.rss };
  }
  if (at) {
    rows.push(single(`RSS, daemon code in process: after start`, 'loom (in process)', 'MiB', at.idle, { loom: true }));
    rows.push(single(`RSS, daemon code in process: ${at.n} endpoints attached`, 'loom (in process)', 'MiB', at.peak, { loom: true, extra: { 'per endpoint': `${(((at.peak - at.idle) / at.n) * 1024).toFixed(0)} KiB`, 'JS heap': at.heapPeak } }));
    rows.push(single(`RSS, daemon code in process: all detached again (3 s later)`, 'loom (in process)', 'MiB', at.after, { loom: true }));
    res.goals.push(goal(`RSS per endpoint at ${at.n} endpoints (issue 14)`, '<= 20 KiB', ((at.peak - at.idle) / at.n) * 1024, 'count', (v) => v <= 20));
    res.goals.push(goal('RSS after removing them / RSS after start (issue 14)', '<= 1.1', at.after / at.idle, 'count', (v) => v <= 1.1));
  }
  res.tables.push({
    title: 'daemon memory (VmRSS)',
    rows,
    columns: ['anon', 'file-backed', 'per endpoint', 'JS heap'],
    notes: [
      '"anon" / "file-backed": RssAnon / RssFile of /proc/PID/status. File-backed pages are mostly the program\'s own binary as far as it was touched (node: ~35 MiB at a bare start; shared with every other node process through the page cache).',
      '"per endpoint": (RSS with the endpoints − RSS after start) / endpoints. Endpoints carry a user-defined network\'s DNS names and one published port each.',
      'docker with 1,000 containers is not measured (1,000 runc containers and shims: several minutes and GBs of memory on this machine).',
    ],
  });
}
