// Figures and their tables. Every benchmark hands back rows of (case, system) with a median and a p95 over
// its samples; the table adds, per case, the ratio of loom's median to each system's median, measured in
// the same run. Goals from the issues are checked against loom's rows and listed at the end.

export type Unit = 'ms' | 's' | 'qps' | 'Gbit/s' | 'MiB' | 'count';

export interface Stats { n: number; median: number; p95: number; min: number; max: number; mean: number }

/** Nearest-rank percentiles (no interpolation: every figure printed is one that was measured). */
export function stats(xs: number[]): Stats {
  if (xs.length === 0) return { n: 0, median: NaN, p95: NaN, min: NaN, max: NaN, mean: NaN };
  const s = [...xs].sort((a, b) => a - b);
  const rank = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
  return { n: s.length, median: rank(0.5), p95: rank(0.95), min: s[0]!, max: s[s.length - 1]!, mean: s.reduce((a, b) => a + b, 0) / s.length };
}

export const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

export interface Row {
  case: string;
  system: string;
  /** loom's row of this case: the others are compared with it */
  loom?: boolean;
  unit: Unit;
  better: 'lower' | 'higher';
  n: number;
  median: number;
  p95?: number;
  /** further columns of this table, by name (numbers are printed in the row's unit unless named in `plain`) */
  extra?: Record<string, number | string>;
  note?: string;
}

export interface Table {
  title: string;
  rows: Row[];
  /** names of extra columns, in order */
  columns?: string[];
  /** extra columns printed as plain numbers (ratios), not in the row's unit */
  plain?: string[];
  notes?: string[];
}

export interface Goal { what: string; goal: string; value: string; met: boolean | null }

export interface SuiteResult {
  name: string;
  title: string;
  seconds: number;
  tables: Table[];
  goals: Goal[];
  notes: string[];
  error?: string;
}

export function row(c: string, system: string, unit: Unit, xs: number[], o: Partial<Row> = {}): Row {
  const s = stats(xs);
  return { case: c, system, unit, better: unit === 'qps' || unit === 'Gbit/s' ? 'higher' : 'lower', n: s.n, median: s.median, p95: s.p95, ...o };
}

/** A row for one measured figure (no distribution). */
export function single(c: string, system: string, unit: Unit, x: number, o: Partial<Row> = {}): Row {
  return { case: c, system, unit, better: unit === 'qps' || unit === 'Gbit/s' ? 'higher' : 'lower', n: 1, median: x, ...o };
}

export function fmt(x: number | undefined, unit: Unit): string {
  if (x === undefined || Number.isNaN(x)) return '—';
  if (!Number.isFinite(x)) return '∞';
  switch (unit) {
    case 'ms':
      if (x >= 10_000) return `${(x / 1000).toFixed(1)} s`;
      if (x >= 1000) return `${(x / 1000).toFixed(2)} s`;
      if (x >= 100) return `${x.toFixed(0)} ms`;
      if (x >= 10) return `${x.toFixed(1)} ms`;
      return `${x.toFixed(2)} ms`;
    case 's': return `${x.toFixed(2)} s`;
    case 'qps': return `${Math.round(x).toLocaleString('en-US')} qps`;
    case 'Gbit/s': return `${x.toFixed(2)} Gbit/s`;
    case 'MiB': return `${x.toFixed(1)} MiB`;
    case 'count': return String(Math.round(x));
  }
}

export const ratioText = (r: number) => (Number.isFinite(r) ? r.toFixed(2) : '—');

/** loom's median over this row's median, for the rows of one case (undefined where there is no loom row). */
export function ratioToLoom(t: Table, r: Row): number | undefined {
  const l = t.rows.find((x) => x.case === r.case && x.loom);
  if (!l || !(r.median > 0) || !(l.median > 0)) return undefined;
  return l.median / r.median;
}

export function renderTable(t: Table): string {
  const cols = t.columns ?? [];
  const plain = new Set(t.plain ?? []);
  const header = ['case', 'system', 'n', 'median', 'p95', ...cols, 'loom/this'];
  const lines: string[][] = [header];
  for (const r of t.rows) {
    const ratio = ratioToLoom(t, r);
    lines.push([
      r.case, r.system, String(r.n), fmt(r.median, r.unit), r.p95 === undefined ? '—' : fmt(r.p95, r.unit),
      ...cols.map((c) => {
        const v = r.extra?.[c];
        if (v === undefined) return '—';
        if (typeof v === 'string') return v;
        return plain.has(c) ? ratioText(v) : fmt(v, r.unit);
      }),
      r.loom ? '1.00 (loom)' : ratio === undefined ? '—' : ratioText(ratio),
    ]);
  }
  const w = header.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
  const out = [`### ${t.title}`, ''];
  const fmtLine = (l: string[]) => '| ' + l.map((c, i) => (i < 2 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join(' | ') + ' |';
  out.push(fmtLine(lines[0]!));
  out.push('|' + w.map((x, i) => (i < 2 ? '-'.repeat(x + 2) : '-'.repeat(x + 1) + ':')).join('|') + '|');
  for (const l of lines.slice(1)) out.push(fmtLine(l));
  const units = new Set(t.rows.map((r) => r.unit));
  const legend: string[] = [];
  if (units.has('ms') || units.has('s')) legend.push('times: lower is better, loom/this < 1 means loom is faster');
  if (units.has('qps') || units.has('Gbit/s')) legend.push('rates: higher is better, loom/this > 1 means loom is faster');
  if (units.has('MiB')) legend.push('memory: lower is better, loom/this < 1 means loom uses less');
  out.push('', `(${legend.join('; ')})`);
  for (const r of t.rows) if (r.note) out.push(`- ${r.system} / ${r.case}: ${r.note}`);
  for (const n of t.notes ?? []) out.push(`- ${n}`);
  return out.join('\n');
}

export function renderGoals(goals: Goal[], heading = '### goals (from the issues)'): string {
  if (!goals.length) return '';
  const lines = [heading, '', '| figure | goal | measured | |', '|---|---|---:|---|'];
  for (const g of goals) lines.push(`| ${g.what} | ${g.goal} | ${g.value} | ${g.met === null ? 'n/a' : g.met ? 'met' : '**missed**'} |`);
  return lines.join('\n');
}

export function goal(what: string, goalText: string, value: number | undefined, unit: Unit, ok: (v: number) => boolean): Goal {
  if (value === undefined || Number.isNaN(value)) return { what, goal: goalText, value: '—', met: null };
  return { what, goal: goalText, value: unit === 'count' ? ratioText(value) : fmt(value, unit), met: ok(value) };
}

/**
 * Runs one peer's part of a benchmark; a failure becomes a note of the suite (the other systems' figures
 * stay), not the failure of the whole benchmark.
 */
export async function peer<T>(res: SuiteResult, system: string, fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (e) {
    res.notes.push(`${system}: failed: ${(e as Error).message.slice(0, 800)}`);
    return undefined;
  }
}
