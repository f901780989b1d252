// From parsed lines to build stages: each instruction checked as buildkit's instructions.Parse does
// (known instruction, allowed flags, argument counts) before anything runs, stages split at FROM, ARGs
// before the first FROM kept as meta args, and the plan of which stages a build needs (--target).
import { ParseError, parseDockerfile, type Node, type Parsed } from './parser.ts';

export interface Flags {
  [name: string]: string | true;
}

export interface Instruction {
  node: Node;
  flags: Flags;
}

export interface Stage {
  index: number;
  /** lower case, as Docker compares them */
  name?: string;
  /** the image reference as written (meta args are expanded at build time) */
  base: string;
  platform?: string;
  from: Node;
  instructions: Instruction[];
}

export interface Dockerfile {
  escape: string;
  metaArgs: Instruction[];
  stages: Stage[];
}

const KNOWN = new Set(['add', 'arg', 'cmd', 'copy', 'entrypoint', 'env', 'expose', 'from', 'healthcheck', 'label',
  'maintainer', 'onbuild', 'run', 'shell', 'stopsignal', 'user', 'volume', 'workdir']);

const BUILDKIT_ONLY: Record<string, string[]> = {
  run: ['mount', 'network', 'security'],
  copy: ['link', 'parents', 'exclude'],
  add: ['link', 'checksum', 'keep-git-dir', 'exclude'],
};

const ALLOWED_FLAGS: Record<string, string[]> = {
  from: ['platform'],
  copy: ['from', 'chown', 'chmod'],
  add: ['chown', 'chmod'],
  healthcheck: ['interval', 'timeout', 'start-period', 'start-interval', 'retries'],
};

const STAGE_NAME_RE = /^[a-z][a-z0-9-_.]*$/;

function parseFlags(node: Node): Flags {
  const out: Flags = {};
  const allowed = ALLOWED_FLAGS[node.cmd] ?? [];
  for (const f of node.flags) {
    const m = /^--([^=]*)(?:=([\s\S]*))?$/.exec(f)!;
    const name = m[1]!;
    if ((BUILDKIT_ONLY[node.cmd] ?? []).includes(name)) {
      throw new ParseError(node.startLine, `the --${name} option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled`);
    }
    if (!allowed.includes(name)) throw new ParseError(node.startLine, `Unknown flag: ${name}`);
    if (m[2] === undefined) throw new ParseError(node.startLine, `Missing a value on flag: ${name}`);
    if (name in out) throw new ParseError(node.startLine, `Duplicate flag specified: ${name}`);
    out[name] = m[2];
  }
  return out;
}

function check(node: Node, top = true): void {
  const N = node.name;
  const fail = (msg: string) => {
    throw new ParseError(node.startLine, msg);
  };
  if (!KNOWN.has(node.cmd)) fail(`unknown instruction: ${N}`);
  const n = node.args.length;
  switch (node.cmd) {
    case 'from':
      if (!(n === 1 || (n === 3 && node.args[1]!.toLowerCase() === 'as'))) fail('FROM requires either one or three arguments');
      if (n === 3 && !STAGE_NAME_RE.test(node.args[2]!.toLowerCase())) {
        fail(`invalid name for build stage: "${node.args[2]}", name can't start with a number or contain symbols`);
      }
      break;
    case 'run':
      if (n === 0) fail('RUN requires at least one argument');
      break;
    case 'copy':
    case 'add':
      if (n < 2) fail(`${N} requires at least two arguments, but only one was provided. Destination could not be determined.`);
      break;
    case 'env':
    case 'label':
    case 'arg':
    case 'expose':
    case 'volume':
      if (n === 0 || (node.pairs && node.pairs.length === 0)) fail(`${N} requires at least one argument`);
      if (node.cmd === 'env' && node.pairs!.some((p) => p.key === '')) fail('ENV names can not be blank');
      if (node.cmd === 'volume' && node.args.some((a) => a.trim() === '')) fail('VOLUME specified can not be an empty string');
      break;
    case 'workdir':
    case 'user':
    case 'stopsignal':
    case 'maintainer':
      if (n !== 1) fail(`${N} requires exactly one argument`);
      break;
    case 'shell':
      if (!node.json) fail('SHELL requires the arguments to be in JSON form');
      if (n === 0) fail('SHELL requires at least one argument');
      break;
    case 'healthcheck':
      if (n === 0) fail('HEALTHCHECK requires an argument');
      if (node.args[0] === 'CMD' && n === 1) fail('Missing command after HEALTHCHECK CMD');
      break;
    case 'onbuild': {
      if (!node.sub) fail('ONBUILD requires at least one argument');
      const t = node.sub!.cmd;
      if (t === 'onbuild') fail('Chaining ONBUILD via `ONBUILD ONBUILD` isn\'t allowed');
      if (t === 'from' || t === 'maintainer') fail(`${node.sub!.name} isn't allowed as an ONBUILD trigger`);
      check(node.sub!, false);
      break;
    }
  }
  if (!top) parseFlags(node);
}

/** Parses and checks a Dockerfile; throws ParseError (or Error for an empty file) with Docker's words. */
export function loadDockerfile(text: string): Dockerfile {
  const parsed: Parsed = parseDockerfile(text);
  const metaArgs: Instruction[] = [];
  const stages: Stage[] = [];
  const names = new Set<string>();
  for (const node of parsed.nodes) {
    check(node);
    const flags = parseFlags(node);
    if (node.cmd === 'from') {
      const name = node.args.length === 3 ? node.args[2]!.toLowerCase() : undefined;
      if (name) {
        if (names.has(name)) throw new ParseError(node.startLine, `duplicate stage name "${name}"`);
        names.add(name);
      }
      stages.push({ index: stages.length, name, base: node.args[0]!, platform: flags.platform as string | undefined, from: node, instructions: [] });
      continue;
    }
    if (stages.length === 0) {
      if (node.cmd === 'arg') {
        metaArgs.push({ node, flags });
        continue;
      }
      throw new ParseError(node.startLine, 'no build stage in current context');
    }
    stages[stages.length - 1]!.instructions.push({ node, flags });
  }
  if (stages.length === 0) throw new Error('file with no instructions');
  return { escape: parsed.escape, metaArgs, stages };
}

/** The stage `target` names (the last one without it). */
export function targetStage(df: Dockerfile, target?: string): Stage {
  if (!target) return df.stages[df.stages.length - 1]!;
  const t = target.toLowerCase();
  const s = df.stages.find((st) => st.name === t);
  if (!s) throw new Error(`failed to reach build target ${target} in Dockerfile`);
  return s;
}

/** A stage an image reference or a `--from` names, if it names one (by name or index) before `before`. */
export function stageRef(df: Dockerfile, ref: string, before: number): Stage | undefined {
  const r = ref.toLowerCase();
  const byName = df.stages.find((s) => s.name === r && s.index < before);
  if (byName) return byName;
  if (/^[0-9]+$/.test(ref)) {
    const i = Number(ref);
    if (i < before) return df.stages[i];
  }
  return undefined;
}

/**
 * The stages the build of `target` needs, in Dockerfile order: the target, the stages its FROM and its
 * `COPY --from` name, and theirs. (`--from` values with variables are taken as written; a stage they
 * would name is kept when its name appears in them.)
 */
export function neededStages(df: Dockerfile, target: Stage): Stage[] {
  const need = new Set<number>();
  const visit = (s: Stage) => {
    if (need.has(s.index)) return;
    need.add(s.index);
    const base = stageRef(df, s.base, s.index);
    if (base) visit(base);
    for (const ins of s.instructions) {
      const from = ins.node.cmd === 'copy' ? ins.flags.from : undefined;
      if (typeof from !== 'string') continue;
      const ref = stageRef(df, from, s.index);
      if (ref) visit(ref);
      else if (from.includes('$')) for (const o of df.stages) if (o.index < s.index && o.name && from.includes(o.name)) visit(o);
    }
  };
  visit(target);
  return df.stages.filter((s) => need.has(s.index));
}

/** Go's time.ParseDuration, for HEALTHCHECK's flags; returns nanoseconds. */
export function parseDuration(s: string): number {
  if (s === '0') return 0;
  const re = /([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)/gy;
  const unit: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  let total = 0;
  let pos = 0;
  if (!s) throw new Error('time: invalid duration ""');
  let m: RegExpExecArray | null;
  while ((m = re.exec(s))) {
    total += Number(m[1]) * unit[m[2]!]!;
    pos = re.lastIndex;
  }
  if (pos !== s.length) throw new Error(`time: invalid duration "${s}"`);
  return Math.round(total);
}
