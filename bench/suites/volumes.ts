// 8. volumes: what mounts add to a start. `run` (create + start through the API) with three named
// volumes and a bind mount, against the same without mounts, on loom and dockerd (issue 11's goal: within
// 10%). The volumes exist before the measured runs (their first use copies the image's content once).
import fs from 'node:fs';
import path from 'node:path';
import { peer, row, single, type Row, type SuiteResult } from '../lib/report.ts';
import { timed } from '../lib/proc.ts';
import { World, type Ctx, type Daemon } from '../lib/world.ts';
import { available } from '../lib/peers.ts';

export const name = 'volumes';
export const title = '`run` with 3 named volumes and a bind mount against `run` without (API create + start, --network none)';

const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.ceil(xs.length / 2) - 1]!;

export async function run(ctx: Ctx, res: SuiteResult): Promise<void> {
  const K = ctx.quick ? 5 : 20;
  const rows: Row[] = [];
  const systems: [string, boolean, Daemon, World][] = [];
  const lw = await World.create(ctx, 'volloom');
  const loom = await lw.startLoom();
  await lw.importBox(loom);
  systems.push(['loom', true, loom, lw]);
  if (available().dockerd) {
    await peer(res, 'docker', async () => {
      const dw = await World.create(ctx, 'voldocker');
      const docker = await dw.startDocker();
      await dw.importBox(docker);
      systems.push(['docker (dockerd 20.10)', false, docker, dw]);
    });
  } else res.notes.push('dockerd not installed: docker not measured');

  for (const [system, isLoom, d, w] of systems) await peer(res, system, async () => {
    ctx.log(`  ${system}: ${K} × run / rm -f without and with mounts`);
    const share: Record<string, number[]> = {};
    const bind = path.join(w.dir, 'bind');
    fs.mkdirSync(bind, { recursive: true });
    const withMounts = { NetworkMode: 'none', Binds: ['bv1:/v1', 'bv2:/v2', 'bv3:/v3', `${bind}:/b`] };
    for (const [label, hc] of [['no mounts', { NetworkMode: 'none' }], ['3 volumes + a bind', withMounts]] as const) {
      const runs: number[] = [];
      for (let i = -1; i < K; i++) { // i = -1: warm-up (creates the volumes, first copy-up)
        let id = '';
        const t = await timed(async () => { id = await d.api.run({ Image: 'box', Cmd: ['sleep', '600'], HostConfig: hc }); });
        await d.api.rmf(id);
        if (i >= 0) runs.push(t);
      }
      rows.push(row(`API run (${label})`, system, 'ms', runs, { loom: isLoom }));
      share[label] = runs;
    }
    rows.push(single('mounts share of a run (with − without)', system, 'ms', med(share['3 volumes + a bind']!) - med(share['no mounts']!), { loom: isLoom }));
    for (const v of ['bv1', 'bv2', 'bv3']) await d.api.ok('DELETE', `/volumes/${v}`).catch(() => {});
  });
  res.tables.push({
    title: `run with and without mounts, ${K} containers each (busybox \`sleep 600\`, --network none): create + start through the API`,
    rows,
    notes: ['The goal (issue 11): a run with 3 volumes and a bind mount within 10% of a run without.'],
  });
}
