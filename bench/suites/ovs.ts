// Open vSwitch networks (issue 16): one loom daemon with --ovs=managed (its own ovsdb-server and
// ovs-vswitchd, userspace datapath here), a Linux bridge network and an openvswitch network side by side:
// the time of `run` (create + start, which attaches the endpoint) on each, and iperf3 TCP between two
// containers of each, interleaved. The userspace datapath's cost is the point of the figures.
import fs from 'node:fs';
import path from 'node:path';
import { peer, row, type Row, type SuiteResult } from '../lib/report.ts';
import { World, type Ctx } from '../lib/world.ts';
import { available } from '../lib/peers.ts';
import { iperfRun, iperfServer } from '../lib/iperf.ts';

export const name = 'ovs';
export const title = 'Open vSwitch networks: run (attach) time and iperf3 TCP container↔container, openvswitch beside bridge';

const PORT = 5201;
const NETS = [['bridge', '10.91.0.0/24'], ['openvswitch', '10.92.0.0/24']] as const;

export async function run(ctx: Ctx, res: SuiteResult): Promise<void> {
  if (!fs.existsSync('/usr/sbin/ovs-vswitchd')) {
    res.notes.push('Open vSwitch not installed (openvswitch-switch): nothing measured');
    return;
  }
  const w = await World.create(ctx, 'ovs');
  const ovsRun = path.join(w.dir, 'loom', 'run', 'ovs');
  const rows: Row[] = [];
  try {
    const d = await w.startLoom(['--ovs=managed']);
    await w.importBox(d);
    const n = ctx.quick ? 5 : 20;
    const times = new Map<string, number[]>();
    const pairs: { net: string; server: string; ip: string; client: string }[] = [];
    for (const [drv, subnet] of NETS) {
      await d.api.ok('POST', '/networks/create', { Name: `net-${drv}`, Driver: drv, IPAM: { Config: [{ Subnet: subnet }] } });
      const srv = await d.api.run({ Image: 'box', Cmd: ['sleep', '600'], HostConfig: { NetworkMode: `net-${drv}` } }, `srv-${drv}`);
      const cli = await d.api.run({ Image: 'box', Cmd: ['sleep', '600'], HostConfig: { NetworkMode: `net-${drv}` } }, `cli-${drv}`);
      const ip = (await d.api.ok<{ NetworkSettings: { Networks: Record<string, { IPAddress: string }> } }>('GET', `/containers/${srv}/json`)).NetworkSettings.Networks[`net-${drv}`]!.IPAddress;
      pairs.push({ net: drv, server: await w.containerNetns(d, srv), ip, client: await w.containerNetns(d, cli) });
    }
    // run times, the two networks alternating
    for (let i = 0; i < n; i++) {
      for (const [drv] of NETS) {
        const t0 = performance.now();
        await d.api.run({ Image: 'box', Cmd: ['sleep', '600'], HostConfig: { NetworkMode: `net-${drv}` } }, `r${i}-${drv}`);
        times.set(drv, [...(times.get(drv) ?? []), performance.now() - t0]);
      }
    }
    for (const [drv] of NETS) rows.push(row('run -d (create, attach, start)', `loom, ${drv} network`, 'ms', times.get(drv)!, { loom: drv === 'openvswitch' }));
    // the attach alone: network connect / disconnect of a running container (of a third network)
    await d.api.ok('POST', '/networks/create', { Name: 'net-base', IPAM: { Config: [{ Subnet: '10.93.0.0/24' }] } });
    const lone = await d.api.run({ Image: 'box', Cmd: ['sleep', '600'], HostConfig: { NetworkMode: 'net-base' } }, 'lone');
    const conn = new Map<string, number[]>(), disc = new Map<string, number[]>();
    for (let i = 0; i < n; i++) {
      for (const [drv] of NETS) {
        let t0 = performance.now();
        await d.api.ok('POST', `/networks/net-${drv}/connect`, { Container: lone });
        conn.set(drv, [...(conn.get(drv) ?? []), performance.now() - t0]);
        t0 = performance.now();
        await d.api.ok('POST', `/networks/net-${drv}/disconnect`, { Container: lone });
        disc.set(drv, [...(disc.get(drv) ?? []), performance.now() - t0]);
      }
    }
    for (const [drv] of NETS) rows.push(row('network connect (attach a running container)', `loom, ${drv} network`, 'ms', conn.get(drv)!, { loom: drv === 'openvswitch' }));
    for (const [drv] of NETS) rows.push(row('network disconnect', `loom, ${drv} network`, 'ms', disc.get(drv)!, { loom: drv === 'openvswitch' }));
    const have = available();
    if (!have.iperf3) res.notes.push('iperf3 not installed: no throughput measured');
    else {
      const secs = ctx.quick ? 1 : 2, reps = ctx.quick ? 2 : 3;
      for (const p of pairs) iperfServer(w, p.server, PORT, `iperf3-${p.net}.log`);
      const got = new Map<string, number[]>();
      for (let r = 0; r < reps; r++) {
        for (const p of pairs) {
          const x = await peer(res, `${p.net} c2c`, () => iperfRun(w, p.client, p.ip, PORT, secs));
          if (x !== undefined) got.set(p.net, [...(got.get(p.net) ?? []), x]);
        }
      }
      for (const p of pairs) if (got.get(p.net)) rows.push(row('TCP container → container (same network)', `loom, ${p.net} network`, 'Gbit/s', got.get(p.net)!, { loom: p.net === 'openvswitch' }));
    }
  } finally {
    await w.cleanup();
    // the managed OVS daemons run detached from loom (they outlive its restarts): ended here
    for (const f of ['ovs-vswitchd.pid', 'ovsdb-server.pid']) {
      try { process.kill(Number(fs.readFileSync(path.join(ovsRun, f), 'utf8')), 'SIGKILL'); } catch { /* not started */ }
    }
  }
  res.tables.push({
    title: 'one daemon, a bridge and an openvswitch network (userspace datapath, userspace TSO on), measured alternately',
    rows,
    notes: ['the openvswitch figures are the userspace datapath\'s (this kernel has no openvswitch module): every packet crosses ovs-vswitchd'],
  });
}
