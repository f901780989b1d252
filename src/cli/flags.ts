// Docker-style flag parsing (pflag semantics): short flags combine (-it, -dit), long flags take
// `--x=v` or `--x v`, repeatable flags collect, and for run/create/exec parsing stops at the first
// positional argument so the container's command keeps its own flags.

export interface FlagSpec {
  names: string[]; // e.g. ['-d', '--detach']
  kind: 'bool' | 'string' | 'list';
  key: string;
}

export type Parsed = { flags: Record<string, any>; args: string[] };

export class UsageError extends Error {}

export function parseFlags(argv: string[], specs: FlagSpec[], opts: { interspersed: boolean }): Parsed {
  const byName = new Map<string, FlagSpec>();
  for (const s of specs) for (const n of s.names) byName.set(n, s);
  const flags: Record<string, any> = {};
  for (const s of specs) if (s.kind === 'list') flags[s.key] = [];
  const args: string[] = [];
  const set = (s: FlagSpec, v: string | undefined, name: string) => {
    if (s.kind === 'bool') {
      if (v !== undefined && !/^(true|false|1|0)$/.test(v)) throw new UsageError(`invalid argument "${v}" for "${name}" flag: strconv.ParseBool: parsing "${v}": invalid syntax`);
      flags[s.key] = v === undefined ? true : v === 'true' || v === '1';
    } else if (s.kind === 'list') flags[s.key].push(v);
    else flags[s.key] = v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq > 0 ? a.slice(0, eq) : a;
      const s = byName.get(name);
      if (!s) throw new UsageError(`unknown flag: ${name}`);
      if (s.kind === 'bool') set(s, eq > 0 ? a.slice(eq + 1) : undefined, name);
      else if (eq > 0) set(s, a.slice(eq + 1), name);
      else {
        if (i + 1 >= argv.length) throw new UsageError(`flag needs an argument: ${name}`);
        set(s, argv[++i], name);
      }
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      // -abc: each a bool, except a value flag that takes the rest (or the next argument)
      for (let j = 1; j < a.length; j++) {
        const name = `-${a[j]}`;
        const s = byName.get(name);
        if (!s) throw new UsageError(`unknown shorthand flag: '${a[j]}' in ${a}`);
        if (s.kind === 'bool') {
          set(s, undefined, name);
          continue;
        }
        let v = a.slice(j + 1);
        if (v.startsWith('=')) v = v.slice(1);
        if (!v) {
          if (i + 1 >= argv.length) throw new UsageError(`flag needs an argument: '${a[j]}' in ${a}`);
          v = argv[++i]!;
        }
        set(s, v, name);
        break;
      }
      continue;
    }
    if (!opts.interspersed) {
      args.push(...argv.slice(i));
      break;
    }
    args.push(a);
  }
  return { flags, args };
}

export const f = (names: string, kind: FlagSpec['kind'] = 'bool', key?: string): FlagSpec => {
  const ns = names.split(',').map((x) => x.trim());
  return { names: ns, kind, key: key ?? ns[ns.length - 1]!.replace(/^-+/, '') };
};
