// 3. network create / rm, connect / disconnect (issue 4's goal: <= 5 ms median each), through the Engine
// API (the daemon's work: the same client for both daemons) and through the docker CLI.
import { goal, peer, row, type Row, type SuiteResult } from '../lib/report.ts';
import { must, run as runCmd, timed } from '../lib/proc.ts';
import { World, type Ctx, type Daemon } from '../lib/world.ts';
import { available } from '../lib/peers.ts';

export const name = 'network';
export const title = 'network create / rm, connect / disconnect (Engine API and docker CLI)';

async function cli(d: Daemon, args: string[]): Promise<number> {
  const r = await runCmd(['docker', ...args], { env: d.env });
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')} → ${r.code}: ${r.stderr.trim().slice(0, 400)}`);
  return r.ms;
}

async function measure(d: Daemon, system: string, loom: boolean, K: number, KC: number): Promise<Row[]> {
  const api = d.api;
  const create: number[] = [], rm: number[] = [], conn: number[] = [], disc: number[] = [];
  for (let i = -1; i < K; i++) {
    const name = `bn${i + 1}`;
    const c = await timed(() => api.ok('POST', '/networks/create', { Name: name, Driver: 'bridge', CheckDuplicate: true }));
    const r = await timed(() => api.ok('DELETE', `/networks/${name}`));
    if (i >= 0) { create.push(c); rm.push(r); }
  }
  const id = await api.run({ Image: 'box', Cmd: ['sleep', '600'], HostConfig: { NetworkMode: 'bridge' } }, 'conn-target');
  await api.ok('POST', '/networks/create', { Name: 'cn', Driver: 'bridge' });
  for (let i = -1; i < K; i++) {
    const c = await timed(() => api.ok('POST', '/networks/cn/connect', { Container: id }));
    const r = await timed(() => api.ok('POST', '/networks/cn/disconnect', { Container: id }));
    if (i >= 0) { conn.push(c); disc.push(r); }
  }
  // the same through the docker CLI (what a user waits for)
  const cc: number[] = [], cr: number[] = [], ccn: number[] = [], cd: number[] = [];
  for (let i = 0; i < KC; i++) {
    cc.push(await cli(d, ['network', 'create', `cl${i}`]));
    cr.push(await cli(d, ['network', 'rm', `cl${i}`]));
    ccn.push(await cli(d, ['network', 'connect', 'cn', id]));
    cd.push(await cli(d, ['network', 'disconnect', 'cn', id]));
  }
  await api.rmf(id);
  await api.ok('DELETE', '/networks/cn');
  const o = { loom };
  return [
    row('create', system, 'ms', create, o), row('rm', system, 'ms', rm, o),
    row('connect (running container)', system, 'ms', conn, o), row('disconnect', system, 'ms', disc, o),
    row('create, docker CLI', system, 'ms', cc, o), row('rm, docker CLI', system, 'ms', cr, o),
    row('connect, docker CLI', system, 'ms', ccn, o), row('disconnect, docker CLI', system, 'ms', cd, o),
  ];
}

/**
 * The kernel's floor for the same work, one `ip -batch` per side: a bridge with its gateway address, up /
 * deleted; a veth whose peer is born in a running container's namespace, with address and up / deleted.
 */
async function floor(ctx: Ctx, K: number): Promise<Row[]> {
  const w = await World.create(ctx, 'netfloor');
  try {
    const ns = `${w.ctrPrefix}c`;
    await must(['ip', 'netns', 'add', ns]);
    const ip = (input: string, n?: string) => w.host(['ip', ...(n ? ['-n', n] : []), '-batch', '-'], { input });
    const create: number[] = [], rm: number[] = [], conn: number[] = [], disc: number[] = [];
    for (let i = -1; i < K; i++) {
      const c = await timed(() => ip(`link add brf${i + 1} type bridge\naddr add 10.99.${i + 1}.1/24 dev brf${i + 1}\nlink set brf${i + 1} up\n`));
      const r = await timed(() => ip(`link del brf${i + 1}\n`));
      if (i >= 0) { create.push(c); rm.push(r); }
    }
    await ip('link add brf type bridge\naddr add 10.98.0.1/24 dev brf\nlink set brf up\n');
    for (let i = -1; i < K; i++) {
      const c = await timed(async () => {
        await ip(`link add vethf type veth peer name eth1 netns ${ns}\nlink set vethf master brf up\n`);
        await ip('addr add 10.98.0.2/24 dev eth1\nlink set eth1 up\n', ns);
      });
      const r = await timed(() => ip('link del vethf\n'));
      if (i >= 0) { conn.push(c); disc.push(r); }
    }
    const sys = 'kernel floor (ip -batch, netlink only)';
    return [row('create', sys, 'ms', create, { note: 'bridge + address + up; no firewall, no state' }), row('rm', sys, 'ms', rm),
      row('connect (running container)', sys, 'ms', conn, { note: 'veth born in the namespace, master, address, up (two ip processes)' }), row('disconnect', sys, 'ms', disc)];
  } finally {
    await w.cleanup();
  }
}

export async function run(ctx: Ctx, res: SuiteResult): Promise<void> {
  const K = ctx.quick ? 10 : 50, KC = ctx.quick ? 3 : 15;
  const rows: Row[] = [];
  ctx.log(`  kernel floor: ${K} × each`);
  rows.push(...await floor(ctx, K));
  const lw = await World.create(ctx, 'netloom');
  const loom = await lw.startLoom();
  await lw.importBox(loom);
  ctx.log(`  loom: ${K} × create/rm, connect/disconnect (API), ${KC} × each through the docker CLI`);
  rows.push(...await measure(loom, 'loom', true, K, KC));
  await lw.cleanup();
  if (available().dockerd) {
    await peer(res, 'docker', async () => {
      const dw = await World.create(ctx, 'netdocker');
      const docker = await dw.startDocker();
      await dw.importBox(docker);
      ctx.log(`  docker: the same`);
      rows.push(...await measure(docker, 'docker (dockerd 20.10)', false, K, KC));
      await dw.cleanup();
    });
  } else res.notes.push('dockerd not installed: docker not measured');
  const cases = ['create', 'rm', 'connect (running container)', 'disconnect', 'create, docker CLI', 'rm, docker CLI', 'connect, docker CLI', 'disconnect, docker CLI'];
  res.tables.push({
    title: `network create / rm (${K}, pool chosen by the daemon), connect / disconnect of a running container (${K}); ${KC} of each through the docker CLI`,
    rows: rows.sort((a, b) => cases.indexOf(a.case) - cases.indexOf(b.case)),
    notes: [
      'create / rm / connect / disconnect: one Engine API request; the rows "…, docker CLI" are the whole `docker network …` command. netavark and the CNI plugins have no network objects of their own to create (the bridge appears with the first container), so they have no row here.',
      'API: one HTTP request over the daemon\'s unix socket (keep-alive), the same client for both daemons. docker CLI: the whole `docker network ...` process.',
      'kernel floor: the netlink part of the same work through `ip -batch` (its figure includes starting ip): deleting a link waits for the kernel to unregister the device, which bounds rm and disconnect from below.',
    ],
  });
  const med = (c: string) => rows.find((r) => r.loom && r.case === c)?.median;
  res.goals.push(goal('network create median, API (issue 4)', '<= 5 ms', med('create'), 'ms', (v) => v <= 5));
  res.goals.push(goal('network rm median, API (issue 4)', '<= 5 ms', med('rm'), 'ms', (v) => v <= 5));
  res.goals.push(goal('network connect median, API (issue 4)', '<= 5 ms', med('connect (running container)'), 'ms', (v) => v <= 5));
  res.goals.push(goal('network disconnect median, API (issue 4)', '<= 5 ms', med('disconnect'), 'ms', (v) => v <= 5));
}
