// 1. attach/detach: one container's networking, N in a row on one network (issue 2's speed goal).
// Every system runs in a world of its own, one after another; see bench/workers/attach.ts for what each
// one does per container.
import { goal, mean, row, type Row, type SuiteResult } from '../lib/report.ts';
import { World, type Ctx } from '../lib/world.ts';
import type { AttachConfig, AttachResult } from '../workers/attach.ts';
import { available } from '../lib/peers.ts';

export const name = 'attach';
export const title = 'attach/detach of one container\'s networking (netns, veth, address, route, NAT, DNS, one published port)';

type Mode = AttachConfig['mode'];

export interface AttachRun { system: string; loom?: boolean; mode: Mode; dns: boolean; port: boolean; range?: number; reap?: boolean; n: number; budgetMs?: number; detachBudgetMs?: number; prof?: string }

/** Runs one system's attach worker in a fresh world. */
export async function attachRun(ctx: Ctx, r: AttachRun, res: SuiteResult): Promise<AttachResult | undefined> {
  const w = await World.create(ctx, `${r.mode}`);
  try {
    const cfg: AttachConfig = {
      mode: r.mode, n: r.n, port: r.port, dns: r.dns, ...(r.range ? { range: r.range } : {}), ...(r.reap ? { reap: true } : {}), dir: w.dir, prefix: w.ctrPrefix, out: `${w.dir}/attach.out`,
      tar: ctx.tar, resolvConf: w.resolvConf, hostsFile: w.hostsFile, cgroupParent: w.cgroupParent, ...(r.budgetMs ? { budgetMs: r.budgetMs } : {}), ...(r.detachBudgetMs ? { detachBudgetMs: r.detachBudgetMs } : {}),
    };
    ctx.log(`  ${r.system}: N=${r.n}${r.range ? `, ${r.range}-port range` : ''}`);
    const out = await w.worker<AttachResult>('attach', { ...cfg }, Math.max(600_000, ((r.budgetMs ?? 0) + (r.detachBudgetMs ?? 0)) * 2), r.prof);
    for (const n of out.notes) if (!res.notes.includes(n)) res.notes.push(n);
    return out;
  } catch (e) {
    res.notes.push(`${r.system}: failed: ${(e as Error).message.slice(0, 600)}`);
    return undefined;
  } finally {
    const did = await w.cleanup();
    const unusual = did.filter((x) => !x.startsWith('deleted'));
    if (unusual.length) ctx.log(`  (cleanup of ${w.id}: ${did.join(', ')})`);
  }
}

export function attachRows(system: string, out: AttachResult, loom = false, note?: string): Row[] {
  const rows: Row[] = [];
  for (const c of ['attach', 'detach'] as const) {
    const xs = out[c];
    if (!xs.length) continue;
    const k = Math.min(10, xs.length);
    const first = mean(xs.slice(0, k)), last = mean(xs.slice(-k));
    const extra: Record<string, number | string> = { 'first 10': first, 'last 10': last, 'last10/first10': last / first };
    if (xs.length >= 100) extra['91-100'] = mean(xs.slice(90, 100));
    rows.push(row(c, system, 'ms', xs, { loom, extra, ...(note && c === 'attach' ? { note } : {}) }));
  }
  return rows;
}

export async function run(ctx: Ctx, res: SuiteResult): Promise<void> {
  const N = ctx.quick ? 100 : 1000;
  // the peers' per-container cost grows with N (iptables): their runs are capped in time, and say so
  const budgetMs = ctx.quick ? 12_000 : 50_000, detachBudgetMs = ctx.quick ? 12_000 : 30_000;
  const have = available();
  const runs: AttachRun[] = [
    { system: 'loom (daemon code, in process)', loom: true, mode: 'loom', dns: true, port: true, n: N, prof: 'attach-loom' },
    { system: 'loom kernel layer only', mode: 'kernel', dns: false, port: false, n: N, prof: 'attach-kernel' },
    { system: 'loom kernel layer, detach = netns delete', mode: 'kernel', dns: false, port: false, reap: true, n: Math.min(N, 300) },
    { system: 'ip -batch (kernel floor)', mode: 'ipbatch', dns: false, port: false, n: N },
  ];
  if (have.netavark) runs.push({ system: 'netavark + aardvark-dns', mode: 'netavark', dns: true, port: true, n: N, budgetMs, detachBudgetMs });
  else res.notes.push('netavark not installed: not measured');
  if (have.cni) runs.push({ system: 'CNI bridge + portmap', mode: 'cni', dns: false, port: true, n: N, budgetMs, detachBudgetMs });
  else res.notes.push('CNI plugins not installed: not measured');
  const rows: Row[] = [];
  for (const r of runs) {
    const out = await attachRun(ctx, r, res);
    if (!out) continue;
    if (r.mode === 'loom' && out.rss) ctx.cache.set('loom-rss', { n: out.attach.length, ...out.rss });
    const scope = r.reap ? 'detach deletes the namespace only: the kernel destroys the veth pair with it, in the background'
      : r.mode === 'kernel' || r.mode === 'ipbatch' ? 'no NAT, DNS or port: netlink work only'
      : r.mode === 'cni' ? 'no DNS (the CNI plugins have none)' : undefined;
    const early = out.stoppedEarly ? `time budget: ${out.attach.length} of ${r.n} attached, ${out.detach.length} detached` : '';
    rows.push(...attachRows(r.system, out, r.loom, [scope, early].filter(Boolean).join('; ') || undefined));
  }
  res.tables.push({
    title: `attach / detach, N=${N} containers one after another on one network (figures per container)`,
    rows: rows.sort((a, b) => a.case.localeCompare(b.case)),
    columns: ['first 10', '91-100', 'last 10', 'last10/first10'],
    plain: ['last10/first10'],
    notes: [
      'attach = everything from "start the networking of this container" until it is usable; detach = until all of it is gone. runc is not part of either.',
      'loom: Containers.start()/stop() of the daemon with runc stubbed (SQLite state, IPAM, netns, veth, address, route, one nftables transaction for NAT + the published port, the held host port, etc files, DNS names + resolver socket).',
      'netavark/CNI: the namespace is created in process first, as podman does; podman\'s own IPAM (static_ips) is not timed. CNI DEL passes the ADD result as prevResult, as libcni does.',
    ],
  });
  const a = rows.find((x) => x.loom && x.case === 'attach'), d = rows.find((x) => x.loom && x.case === 'detach');
  res.goals.push(goal('attach median (issue 2)', '<= 3 ms', a?.median, 'ms', (v) => v <= 3));
  res.goals.push(goal('detach median (issue 2)', '<= 3 ms', d?.median, 'ms', (v) => v <= 3));
  res.goals.push(goal(`attach last10/first10 at N=${N} (issue 2)`, '<= 1.2', a?.extra?.['last10/first10'] as number | undefined, 'count', (v) => v <= 1.2));
  res.goals.push(goal(`detach last10/first10 at N=${N} (issue 2)`, '<= 1.2', d?.extra?.['last10/first10'] as number | undefined, 'count', (v) => v <= 1.2));
}
