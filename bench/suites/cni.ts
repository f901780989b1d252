// CNI ADD/DEL (issue 15's goal: loom <= 0.2x the CNI bridge plugin's and netavark's time): a namespace
// attached and detached as a runtime does it, one plugin process per call, N in a row on one network. Each
// system in a world of its own; see bench/workers/cni.ts for what each does.
import fs from 'node:fs';
import path from 'node:path';
import { goal, row, type Row, type SuiteResult } from '../lib/report.ts';
import { ROOT, World, type Ctx } from '../lib/world.ts';
import { available } from '../lib/peers.ts';
import type { CniBenchConfig, CniBenchResult } from '../workers/cni.ts';

export const name = 'cni';
export const title = 'CNI ADD/DEL: loom\'s plugin vs the CNI bridge plugin and netavark';

const C_PLUGIN = path.join(ROOT, '.cache/bin/loom-cni');
const NODE_PLUGIN = path.join(ROOT, 'bin/loom-cni');

interface Run { system: string; loom?: boolean; mode: CniBenchConfig['mode']; plugin?: string; n: number }

async function one(ctx: Ctx, r: Run, res: SuiteResult): Promise<CniBenchResult | undefined> {
  const w = await World.create(ctx, `cni${r.mode}`);
  try {
    let socket: string | undefined;
    if (r.mode === 'loom') {
      const d = await w.startLoom();
      await d.api.ok('POST', '/networks/create', { Name: 'benchnet', Driver: 'bridge', IPAM: { Config: [{ Subnet: '10.88.0.0/16' }] } });
      socket = d.socket;
    }
    ctx.log(`  ${r.system}: N=${r.n}`);
    return await w.worker<CniBenchResult>('cni', { mode: r.mode, n: r.n, dir: w.dir, prefix: w.ctrPrefix, plugin: r.plugin, socket }, 600_000);
  } catch (e) {
    res.notes.push(`${r.system}: failed: ${(e as Error).message.slice(0, 600)}`);
    return undefined;
  } finally {
    await w.cleanup();
  }
}

export async function run(ctx: Ctx, res: SuiteResult): Promise<void> {
  const N = ctx.quick ? 30 : 200;
  const have = available();
  const runs: Run[] = [];
  if (fs.existsSync(C_PLUGIN)) runs.push({ system: 'loom (C client .cache/bin/loom-cni)', loom: true, mode: 'loom', plugin: C_PLUGIN, n: N });
  else res.notes.push('.cache/bin/loom-cni is not built (scripts/setup builds it with cc): loom measured with the Node client only');
  runs.push({ system: 'loom (Node client bin/loom-cni)', loom: !fs.existsSync(C_PLUGIN), mode: 'loom', plugin: NODE_PLUGIN, n: Math.min(N, 50) });
  if (have.cni) runs.push({ system: 'CNI bridge + host-local (ipMasq)', mode: 'cni', n: N });
  else res.notes.push('CNI plugins not installed: not measured');
  if (have.netavark) runs.push({ system: 'netavark (no DNS)', mode: 'netavark', n: N });
  else res.notes.push('netavark not installed: not measured');
  const rows: Row[] = [];
  for (const r of runs) {
    const out = await one(ctx, r, res);
    if (!out) continue;
    rows.push(row('ADD', r.system, 'ms', out.add, { loom: r.loom }), row('DEL', r.system, 'ms', out.del, { loom: r.loom }));
  }
  res.tables.push({
    title: `CNI ADD / DEL, N=${N} namespaces one after another on one network (figures per call, the plugin process included)`,
    rows: rows.sort((a, b) => a.case.localeCompare(b.case)),
    notes: [
      'ADD = from starting the plugin process to its exit with the result; DEL likewise. The namespace is made before ADD and deleted after DEL, untimed.',
      'loom: the plugin passes the call to the daemon (POST /loom/cni/exec), which attaches the namespace like a container\'s endpoint: IPAM in SQLite, veth, address, route, DNS names and the resolver socket in the namespace (NAT is the network\'s, not per container).',
      'CNI bridge: host-local IPAM files, veth, address, route and ipMasq\'s per-container iptables chain. netavark: podman\'s JSON, static address (podman\'s IPAM is not timed), its iptables rules.',
    ],
  });
  const loomAdd = rows.find((x) => x.loom && x.case === 'ADD'), loomDel = rows.find((x) => x.loom && x.case === 'DEL');
  for (const peer of ['CNI bridge', 'netavark']) {
    const a = rows.find((x) => x.case === 'ADD' && x.system.startsWith(peer)), d = rows.find((x) => x.case === 'DEL' && x.system.startsWith(peer));
    if (a && loomAdd) res.goals.push(goal(`CNI ADD, loom / ${peer} (issue 15)`, '<= 0.2', loomAdd.median / a.median, 'count', (v) => v <= 0.2));
    if (d && loomDel) res.goals.push(goal(`CNI DEL, loom / ${peer} (issue 15)`, '<= 0.2', loomDel.median / d.median, 'count', (v) => v <= 0.2));
  }
}
