// Output the way the docker CLI prints it: tables through Go's tabwriter with docker's settings (minimum
// cell width 10, padding 3, spaces), `--format` templates with docker's rules (`table` prefix, `json`,
// literal \t and \n), and go-units' human durations and sizes.
import type { Cli } from './main.ts';
import { renderHeader, renderTemplate, checkTemplate } from './gotemplate.ts';
import { UsageError } from './flags.ts';

/** Display width of a cell (code points; docker uses runewidth, which only differs for wide CJK). */
const width = (s: string) => {
  let n = 0;
  for (const _ of s) n++;
  return n;
};

/**
 * Go's text/tabwriter (elastic tabstops) as docker configures it: `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`.
 * Cells are tab-terminated; a column is the run of contiguous lines that have a cell there; the text after a
 * line's last tab is not part of any column and is never padded.
 */
export function tabwrite(text: string, minwidth = 10, padding = 3): string {
  const lines = text.split('\n').map((l) => l.split('\t'));
  const widths: number[] = [];
  const out: string[] = [];
  const writeLines = (l0: number, l1: number) => {
    for (let i = l0; i < l1; i++) {
      const line = lines[i]!;
      let s = '';
      line.forEach((cell, j) => {
        s += cell;
        if (j < line.length - 1 && j < widths.length) s += ' '.repeat(Math.max(widths[j]! - width(cell), 0));
      });
      out.push(s);
    }
  };
  const format = (l0: number, l1: number) => {
    const column = widths.length;
    for (let th = l0; th < l1; th++) {
      if (column >= lines[th]!.length - 1) continue;
      writeLines(l0, th);
      l0 = th;
      let w = minwidth;
      for (; th < l1; th++) {
        const line = lines[th]!;
        if (column >= line.length - 1) break;
        w = Math.max(w, width(line[column]!) + padding);
      }
      widths.push(w);
      format(l0, th);
      widths.pop();
      l0 = th;
    }
    writeLines(l0, l1);
  };
  format(0, lines.length);
  return out.join('\n');
}

export function printTable(cli: Cli, header: string[], rows: string[][]): void {
  cli.out(tabwrite([header, ...rows].map((r) => r.join('\t') + '\n').join('')));
}

/** docker's formatter.Context.preFormat: the template a --format value stands for. */
export function templateOf(format: string): { tpl: string; table: boolean } {
  const table = format.startsWith('table');
  let tpl = table ? format.slice(5) : format === 'json' ? '{{json .}}' : format;
  tpl = tpl.replace(/^ +| +$/g, '').replace(/\\t/g, '\t').replace(/\\n/g, '\n');
  return { tpl, table };
}

/** Throws docker's message for a template that does not parse. */
export function validateFormat(format: string): void {
  try {
    checkTemplate(templateOf(format).tpl);
  } catch (e) {
    throw new UsageError(`template parsing error: ${(e as Error).message}`);
  }
}

/**
 * `--format`: `table` (optionally with a template: a header row, then the rows, through the tabwriter),
 * `json` (one object a line) or a plain template. `headers` maps each field to its column name.
 */
export function formatOutput(cli: Cli, format: string, rows: Record<string, unknown>[], headers: Record<string, unknown>): void {
  cli.out(formatRows(format, rows, headers));
}

export function formatRows(format: string, rows: Record<string, unknown>[], headers: Record<string, unknown>): string {
  const { tpl, table } = templateOf(format);
  validateFormat(format);
  let body = '';
  for (const r of rows) body += renderTemplate(tpl, r) + '\n';
  if (!table) return body;
  return tabwrite(renderHeader(tpl, headers) + '\n' + body);
}

/** go-units HumanDuration: whole units, truncated (`59.9 s` is "59 seconds"). */
export function humanDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  if (seconds < 1) return 'Less than a second';
  if (seconds === 1) return '1 second';
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.trunc(ms / 60_000);
  if (minutes === 1) return 'About a minute';
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.trunc(ms / 3_600_000 + 0.5);
  if (hours === 1) return 'About an hour';
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.trunc(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.trunc(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24 / 30)} months`;
  return `${Math.trunc(ms / 3_600_000 / 24 / 365)} years`;
}

export function timeAgo(ms: number): string {
  return `${humanDuration(Date.now() - ms)} ago`;
}

/** Go's time.Time.String() in the local zone: `2006-01-02 15:04:05 -0700 MST` (whole seconds). */
export function goTimeString(d: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const off = -d.getTimezoneOffset();
  const sign = off < 0 ? '-' : '+';
  const zone = new Intl.DateTimeFormat('en-US', { timeZoneName: 'short' }).formatToParts(d).find((x) => x.type === 'timeZoneName')?.value ?? '';
  // Go names a zone by its abbreviation, else by the offset (`+0200`); Intl says "GMT+2" for those.
  const abbr = off === 0 && /^(GMT|UTC)$/.test(zone) ? 'UTC' : /^[A-Z]{2,5}$/.test(zone) ? zone : `${sign}${p(Math.trunc(Math.abs(off) / 60))}${Math.abs(off) % 60 ? p(Math.abs(off) % 60) : ''}`;
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())} ${sign}${p(Math.trunc(Math.abs(off) / 60))}${p(Math.abs(off) % 60)} ${abbr}`;
}

/** go-units HumanSizeWithPrecision: 3 significant digits as `docker images` and `ps -s` print sizes, 4 as `system df`. */
export function humanSize(n: number, precision = 3): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${Number(v.toPrecision(precision))}${units[i]}`;
}

export interface PortSummary { IP?: string; PrivatePort: number; PublicPort?: number; Type: string }

const joinHostPort = (ip: string, port: string) => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);

/** Compares addresses as Go's netip.Addr.Less: IPv4 before IPv6, then numerically. */
function ipLess(a: string, b: string): number {
  const key = (ip: string) => {
    if (!ip) return '0';
    if (!ip.includes(':')) return '1' + ip.split('.').map((x) => Number(x).toString(16).padStart(2, '0')).join('');
    const [h, t = ''] = ip.split('::') as [string, string?];
    const hs = h ? h.split(':') : [];
    const ts = t ? t.split(':') : [];
    const groups = ip.includes('::') ? [...hs, ...Array(8 - hs.length - ts.length).fill('0'), ...ts] : hs;
    return '2' + groups.map((g) => g.padStart(4, '0')).join('');
  };
  const x = key(a), y = key(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** docker's formatter.DisplayablePorts: "0.0.0.0:8080->80/tcp, [::]:8080->80/tcp, 9000-9001/tcp". */
export function displayablePorts(portsIn: PortSummary[]): string {
  const ports = [...portsIn].sort((i, j) => {
    if (i.PrivatePort !== j.PrivatePort) return i.PrivatePort - j.PrivatePort;
    const c = ipLess(i.IP ?? '', j.IP ?? '');
    if (c) return c;
    if ((i.PublicPort ?? 0) !== (j.PublicPort ?? 0)) return (i.PublicPort ?? 0) - (j.PublicPort ?? 0);
    return i.Type < j.Type ? -1 : i.Type > j.Type ? 1 : 0;
  });
  const groups = new Map<string, { first: number; last: number }>();
  const order: string[] = [];
  const result: string[] = [];
  const hostMappings: string[] = [];
  const formGroup = (key: string, start: number, last: number) => {
    const parts = key.split('/');
    let type = parts[0]!;
    let ip = '';
    if (parts.length > 1) {
      ip = parts[0]!;
      type = parts[1]!;
    }
    let g = String(start);
    if (start !== last) g = `${g}-${last}`;
    if (ip) g = `${joinHostPort(ip, g)}->${g}`;
    return `${g}/${type}`;
  };
  for (const p of ports) {
    const current = p.PrivatePort;
    let key = p.Type;
    if (p.IP) {
      if (p.PublicPort !== current) {
        hostMappings.push(`${joinHostPort(p.IP, String(p.PublicPort ?? 0))}->${p.PrivatePort}/${p.Type}`);
        continue;
      }
      key = `${p.IP}/${p.Type}`;
    }
    const g = groups.get(key);
    if (!g) {
      groups.set(key, { first: current, last: current });
      order.push(key);
      continue;
    }
    if (current === g.last + 1) {
      g.last = current;
      continue;
    }
    result.push(formGroup(key, g.first, g.last));
    groups.set(key, { first: current, last: current });
  }
  for (const k of order) {
    const g = groups.get(k)!;
    result.push(formGroup(k, g.first, g.last));
  }
  return [...result, ...hostMappings].join(', ');
}

/** Go's strconv.Quote for the text docker shows (COMMAND column). */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return out + '"';
}

/** docker's formatter.Ellipsis: at most `max` characters, the last one "…" when cut. */
export function ellipsis(s: string, max: number): string {
  const cps = [...s];
  if (cps.length <= max) return s;
  if (max <= 0) return '';
  return cps.slice(0, max - 1).join('') + '…';
}
