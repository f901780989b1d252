// `node ls` of a cluster of 10 hosts (issue 15's goal: under 50 ms): a loom daemon joined to an etcd in
// the world's host namespace, nine more hosts seeded into the store (bench/workers/nodes.ts), then GET
// /nodes on the daemon's socket (what `docker node ls` asks) and `bin/loom node ls` as a whole process.
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { goal, row, type SuiteResult } from '../lib/report.ts';
import { LOOM, World, type Ctx } from '../lib/world.ts';
import { sleep } from '../lib/proc.ts';
import type { NodesResult } from '../workers/nodes.ts';

export const name = 'nodes';
export const title = '`node ls` with 10 hosts in the cluster store (etcd)';

const HOSTS = 10;

export async function run(ctx: Ctx, res: SuiteResult): Promise<void> {
  const etcd = spawnSync('sh', ['-c', 'command -v etcd'], { encoding: 'utf8' }).stdout.trim();
  if (!etcd) {
    res.notes.push('etcd is not installed (Debian package etcd-server): nothing measured');
    return;
  }
  const w = await World.create(ctx, 'nodes');
  try {
    await w.host(['ip', 'link', 'set', 'lo', 'up']);
    const url = 'http://127.0.0.1:23790';
    w.spawnBg(w.inHost([etcd, '--name', 'bench', '--data-dir', path.join(w.dir, 'etcd'), '--listen-client-urls', url, '--advertise-client-urls', url,
      '--listen-peer-urls', 'http://127.0.0.1:23800', '--initial-advertise-peer-urls', 'http://127.0.0.1:23800', '--initial-cluster', 'bench=http://127.0.0.1:23800',
      '--logger', 'zap', '--log-level', 'warn']), 'etcd.log');
    for (let i = 0; i < 100; i++) {
      const r = spawnSync('nsenter', [`--net=${w.hostPath}`, '--', 'busybox', 'wget', '-qO-', `${url}/health`], { encoding: 'utf8' });
      if (r.status === 0) break;
      await sleep(200);
    }
    const d = await w.startLoom(['--cluster-store', 'etcd://127.0.0.1:23790', '--cluster-advertise', '198.51.100.1']);
    const n = ctx.quick ? 30 : 200, cliN = ctx.quick ? 5 : 20;
    ctx.log(`  ${HOSTS} hosts: GET /nodes x${n}, node ls x${cliN}`);
    const out = await w.worker<NodesResult>('nodes', { store: 'etcd://127.0.0.1:23790', socket: d.socket, hosts: HOSTS, n, cliN, loom: LOOM });
    const api = row('GET /nodes', `loom daemon (${out.listed} hosts)`, 'ms', out.api, { loom: true });
    const cli = row('node ls (whole CLI process)', `bin/loom (${out.listed} hosts)`, 'ms', out.cli, { loom: true });
    res.tables.push({
      title: `node ls with ${HOSTS} hosts`,
      rows: [api, cli],
      notes: ['GET /nodes: two range reads from etcd (node records, live hosts), answered in swarm\'s Node shape. node ls: bin/loom start, the request, the table.'],
    });
    res.goals.push(goal(`GET /nodes with ${HOSTS} hosts (issue 15)`, '< 50 ms', api.median, 'ms', (v) => v < 50));
    res.goals.push(goal(`bin/loom node ls with ${HOSTS} hosts, whole process (issue 15)`, '< 50 ms', cli.median, 'ms', (v) => v < 50));
  } finally {
    await w.cleanup();
  }
}
