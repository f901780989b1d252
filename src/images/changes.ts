// `docker import --change` / `docker commit --change`: the Dockerfile instructions Docker accepts there
// (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR), applied to an image's
// container config as Docker's builder dispatchers apply them. Written here: the instruction grammar is
// small, and no npm Dockerfile parser handles Docker's key=value quoting and JSON-or-shell forms as dockerd.
import path from 'node:path';
import type { ImageRunConfig } from '../core/types.ts';
import { invalidParameter } from '../util/errors.ts';

const ALLOWED = new Set(['CMD', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'LABEL', 'ONBUILD', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR']);

/** Splits words as the Dockerfile parser does for key=value lists: quotes group, backslash escapes. */
export function splitWords(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quote = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote) {
      if (c === quote) quote = '';
      else if (c === '\\' && quote === '"' && i + 1 < s.length) cur += s[++i];
      else cur += c;
      continue;
    }
    if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < s.length) {
      cur += s[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) throw invalidParameter(`unmatched quote in: ${s}`);
  if (inWord) out.push(cur);
  return out;
}

/** `KEY=V K2="v 2"` or the legacy `KEY value with spaces`. */
function keyValues(instr: string, arg: string): [string, string][] {
  const words = splitWords(arg);
  if (!words.length) throw invalidParameter(`${instr} requires at least one argument`);
  if (!words[0]!.includes('=')) {
    const m = /^\s*(\S+)\s+(.*)$/s.exec(arg);
    if (!m) throw invalidParameter(`${instr} requires at least two arguments`);
    return [[m[1]!, splitWords(m[2]!).join(' ') || m[2]!.trim()]];
  }
  return words.map((w) => {
    const i = w.indexOf('=');
    if (i <= 0) throw invalidParameter(`Syntax error - can't find = in "${w}". Must be of the form: name=value`);
    return [w.slice(0, i), w.slice(i + 1)];
  });
}

function jsonOrShell(arg: string): string[] {
  const t = arg.trim();
  if (t.startsWith('[')) {
    try {
      const v = JSON.parse(t);
      if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v;
    } catch { /* shell form */ }
  }
  return ['/bin/sh', '-c', t];
}

const SIGNALS = new Set(['HUP', 'INT', 'QUIT', 'ILL', 'TRAP', 'ABRT', 'BUS', 'FPE', 'KILL', 'USR1', 'SEGV', 'USR2', 'PIPE', 'ALRM', 'TERM', 'STKFLT', 'CHLD', 'CONT', 'STOP', 'TSTP', 'TTIN', 'TTOU', 'URG', 'XCPU', 'XFSZ', 'VTALRM', 'PROF', 'WINCH', 'IO', 'PWR', 'SYS']);

/** Applies `changes` in order to `cfg` (mutated). Throws Docker's 400s for what it does not accept. */
export function applyChanges(cfg: ImageRunConfig, changes: string[]): void {
  let cmdSet = false;
  for (const raw of changes) {
    const line = raw.trim();
    if (!line) continue;
    const m = /^(\S+)\s*(.*)$/s.exec(line)!;
    const instr = m[1]!.toUpperCase();
    const arg = m[2]!;
    if (!ALLOWED.has(instr)) throw invalidParameter(`${instr.toLowerCase()} is not a valid change command`);
    switch (instr) {
      case 'CMD':
        cfg.Cmd = jsonOrShell(arg);
        cmdSet = true;
        break;
      case 'ENTRYPOINT':
        cfg.Entrypoint = arg.trim() ? jsonOrShell(arg) : null;
        if (!cmdSet) cfg.Cmd = null;
        break;
      case 'ENV': {
        const env = [...(cfg.Env ?? [])];
        for (const [k, v] of keyValues('ENV', arg)) {
          const i = env.findIndex((e) => e.split('=')[0] === k);
          if (i >= 0) env[i] = `${k}=${v}`;
          else env.push(`${k}=${v}`);
        }
        cfg.Env = env;
        break;
      }
      case 'LABEL': {
        const labels = { ...(cfg.Labels ?? {}) };
        for (const [k, v] of keyValues('LABEL', arg)) labels[k] = v;
        cfg.Labels = labels;
        break;
      }
      case 'EXPOSE': {
        const ports: Record<string, object> = { ...(cfg.ExposedPorts ?? {}) };
        for (const p of splitWords(arg)) {
          const mm = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(p);
          if (!mm) throw invalidParameter(`invalid containerPort: ${p}`);
          const lo = Number(mm[1]), hi = Number(mm[2] ?? mm[1]);
          for (let n = lo; n <= hi; n++) ports[`${n}/${(mm[3] ?? 'tcp').toLowerCase()}`] = {};
        }
        cfg.ExposedPorts = ports;
        break;
      }
      case 'VOLUME': {
        const vols: Record<string, object> = { ...(cfg.Volumes ?? {}) };
        const t = arg.trim();
        let list: string[];
        try {
          list = t.startsWith('[') ? JSON.parse(t) : splitWords(t);
        } catch {
          list = splitWords(t);
        }
        for (const v of list) {
          if (!v.trim()) throw invalidParameter('VOLUME specified can not be an empty string');
          vols[v] = {};
        }
        cfg.Volumes = vols;
        break;
      }
      case 'WORKDIR': {
        const w = arg.trim();
        cfg.WorkingDir = path.posix.resolve('/', cfg.WorkingDir || '/', w);
        break;
      }
      case 'USER':
        cfg.User = arg.trim();
        break;
      case 'STOPSIGNAL': {
        const s = arg.trim();
        const name = s.toUpperCase().replace(/^SIG/, '');
        if (!/^\d+$/.test(s) && !SIGNALS.has(name) && !/^RTMIN|^RTMAX/.test(name)) throw invalidParameter(`Invalid signal: ${s}`);
        cfg.StopSignal = s;
        break;
      }
      case 'ONBUILD': {
        const t = arg.trim();
        const first = t.split(/\s+/)[0]!.toUpperCase();
        if (first === 'ONBUILD') throw invalidParameter("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
        if (first === 'FROM' || first === 'MAINTAINER') throw invalidParameter(`${first} isn't allowed as an ONBUILD trigger`);
        cfg.OnBuild = [...(cfg.OnBuild ?? []), t.replace(/^\S+/, first)];
        break;
      }
    }
  }
}
