// Output the way the docker CLI prints it: tab-aligned tables (3 spaces of padding) and --format templates.
import type { Cli } from './main.ts';
import { renderTemplate } from './gotemplate.ts';

export function printTable(cli: Cli, header: string[], rows: string[][]): void {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  for (const r of all) {
    cli.out(r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]! + 3))).join('').trimEnd() + '\n');
  }
}

/** `--format`: `table` (default columns), `table {{...}}` (with headers), `json`, or a plain template. */
export function formatOutput(cli: Cli, format: string, rows: Record<string, unknown>[], headers: Record<string, string>): void {
  if (format === 'json') {
    for (const r of rows) cli.out(JSON.stringify(r) + '\n');
    return;
  }
  if (format.startsWith('table')) {
    const tpl = format.slice(5).trim();
    const headerRow = renderTemplate(tpl, Object.fromEntries(Object.keys(headers).map((k) => [k, headers[k]])));
    const lines = [headerRow, ...rows.map((r) => renderTemplate(tpl, r))];
    const cells: string[][] = lines.map((l) => l.split('\t'));
    const widths: number[] = [];
    for (const c of cells) c.forEach((x, i) => (widths[i] = Math.max(widths[i] ?? 0, x.length)));
    for (const c of cells) cli.out(c.map((x, i) => (i === c.length - 1 ? x : x.padEnd(widths[i]! + 3))).join('').trimEnd() + '\n');
    return;
  }
  for (const r of rows) cli.out(renderTemplate(format, r) + '\n');
}

export function timeAgo(ms: number): string {
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < 1) return 'Less than a second ago';
  if (s < 60) return `${s} second${s === 1 ? '' : 's'} ago`;
  const m = Math.round(s / 60);
  if (m < 60) return m === 1 ? 'About a minute ago' : `${m} minutes ago`;
  const h = Math.round(s / 3600);
  if (h < 48) return h === 1 ? 'About an hour ago' : `${h} hours ago`;
  const d = Math.round(h / 24);
  if (d < 14) return `${d} days ago`;
  if (d < 60) return `${Math.round(d / 7)} weeks ago`;
  if (d < 730) return `${Math.round(d / 30)} months ago`;
  return `${Math.round(d / 365)} years ago`;
}

export function humanSize(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toPrecision(3).replace(/\.?0+$/, '')}${units[i]}`;
}
