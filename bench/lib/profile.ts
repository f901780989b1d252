// Reading V8 CPU profiles (.cpuprofile, as node --cpu-prof writes them): where the time went, by
// function (self and inclusive) and by source file, so a hot spot is found before it is guessed.
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from './world.ts';

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface ProfNode { id: number; callFrame: CallFrame; children?: number[] }
interface CpuProfile { nodes: ProfNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

export interface ProfileSummary {
  file: string;
  /** operations the profiled phase did (attach/detach workers say), for per-operation figures */
  ops?: number;
  totalMs: number;
  /** wall time with the thread idle (waiting on I/O, timers, child processes) */
  idleMs: number;
  gcMs: number;
  topSelf: { fn: string; ms: number; pct: number }[];
  topInclusive: { fn: string; ms: number; pct: number }[];
  byFile: { file: string; ms: number; pct: number }[];
}

function shortUrl(url: string): string {
  if (!url) return '';
  const u = url.replace(/^file:\/\//, '');
  if (u.startsWith(ROOT)) return u.slice(ROOT.length);
  const nm = u.indexOf('node_modules/');
  if (nm >= 0) return u.slice(nm);
  return u;
}

const key = (f: CallFrame) => `${f.functionName || '(anonymous)'} ${shortUrl(f.url)}${f.url ? `:${f.lineNumber + 1}` : ''}`.trim();

export function summarize(file: string, top = 15): ProfileSummary {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>(), incl = new Map<string, number>(), files = new Map<string, number>();
  let total = 0, idle = 0, gc = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = (p.timeDeltas[i] ?? 0) / 1000;
    total += dt;
    const n = byId.get(p.samples[i]!);
    if (!n) continue;
    const name = n.callFrame.functionName;
    if (name === '(idle)') { idle += dt; continue; }
    if (name === '(garbage collector)') gc += dt;
    const k = key(n.callFrame);
    self.set(k, (self.get(k) ?? 0) + dt);
    const f = shortUrl(n.callFrame.url) || name;
    files.set(f, (files.get(f) ?? 0) + dt);
    const seen = new Set<string>();
    for (let id: number | undefined = n.id; id !== undefined; id = parent.get(id)) {
      const cf = byId.get(id)!.callFrame;
      if (cf.functionName === '(root)') break;
      // inclusive figures for loom's own code and its dependencies only (node's internals nest everything)
      const su = shortUrl(cf.url);
      if (!su.startsWith('src/') && !su.startsWith('node_modules/')) continue;
      const kk = key(cf);
      if (seen.has(kk)) continue;
      seen.add(kk);
      incl.set(kk, (incl.get(kk) ?? 0) + dt);
    }
  }
  const busy = total - idle;
  let ops: number | undefined;
  try { ops = Number(fs.readFileSync(`${file}.ops`, 'utf8')) || undefined; } catch { /* whole-process profile */ }
  const list = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([fn, ms]) => ({ fn, ms, pct: busy > 0 ? (100 * ms) / busy : 0 }));
  return {
    file, ...(ops ? { ops } : {}), totalMs: total, idleMs: idle, gcMs: gc, topSelf: list(self), topInclusive: list(incl),
    byFile: [...files].sort((a, b) => b[1] - a[1]).slice(0, 10).map(([f, ms]) => ({ file: f, ms, pct: busy > 0 ? (100 * ms) / busy : 0 })),
  };
}

export function renderProfile(s: ProfileSummary): string {
  const busy = s.totalMs - s.idleMs;
  const per = (ms: number) => (s.ops ? `  ${((ms * 1000) / s.ops).toFixed(0).padStart(6)} µs/op` : '');
  const out = [`#### profile ${path.relative(ROOT, s.file)}${s.ops ? ` (${s.ops} operations)` : ''}`, '', '```',
    `wall ${(s.totalMs / 1000).toFixed(2)} s, on CPU ${(busy / 1000).toFixed(2)} s (${((100 * busy) / Math.max(1, s.totalMs)).toFixed(0)}%), GC ${(s.gcMs / 1000).toFixed(2)} s; shares below are of the on-CPU time`];
  if (s.ops) out.push(`per operation: wall ${((s.totalMs * 1000) / s.ops).toFixed(0)} µs, on CPU ${((busy * 1000) / s.ops).toFixed(0)} µs (the rest: waiting for the kernel, child processes, timers)`);
  out.push('self time:', ...s.topSelf.map((t) => `  ${t.pct.toFixed(1).padStart(5)}%  ${t.ms.toFixed(0).padStart(7)} ms${per(t.ms)}  ${t.fn}`));
  out.push('inclusive time, loom\'s code and dependencies (the function and everything it called):', ...s.topInclusive.map((t) => `  ${t.pct.toFixed(1).padStart(5)}%  ${t.ms.toFixed(0).padStart(7)} ms${per(t.ms)}  ${t.fn}`));
  out.push('by file (self):', ...s.byFile.map((t) => `  ${t.pct.toFixed(1).padStart(5)}%  ${t.ms.toFixed(0).padStart(7)} ms${per(t.ms)}  ${t.file}`), '```');
  return out.join('\n');
}

/** Every profile below dir (recursively). */
export function profilesIn(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...profilesIn(p));
    else if (e.name.endsWith('.cpuprofile')) out.push(p);
  }
  return out.sort();
}
