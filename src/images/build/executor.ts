// The classic builder's executor: the stages a target needs, one instruction at a time, each a new image
// (metadata instructions commit the config alone, RUN commits its container's changes, COPY/ADD their
// staged files), each looked up in the build cache first (key: the parent image and the instruction as
// the classic builder compares them; COPY/ADD by the content checksum of their files), with Docker's
// output ("Step 2/9 : RUN ...", " ---> Running in ...", " ---> Using cache", " ---> <id>").
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { loadDockerfile, neededStages, parseDuration, stageRef, targetStage, type Dockerfile, type Instruction, type Stage } from './instructions.ts';
import { processWord, processWords, envMap, ShellError, type Env } from './shell.ts';
import { stageCopy, sourceChecksum, BuildStepError } from './copy.ts';
import { packTree } from '../archive/layer.ts';
import { insideRoot, resolveInScope } from '../archive/scope.ts';
import { emptyConfig, type BuildBackend, type BuildImage, type ImageConfig } from './types.ts';

export const PROXY_ARGS = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy'];

export interface BuildOptions {
  contextDir: string;
  dockerfile: string;
  /** the Dockerfile's name, for messages */
  dockerfileName: string;
  tags: string[];
  buildArgs: Record<string, string | null>;
  noCache: boolean;
  rm: boolean;
  forceRm: boolean;
  target?: string;
  labels: Record<string, string>;
  networkMode: string;
  extraHosts: string[];
  quiet: boolean;
  /** `--pull`: pull every base image even when it is here */
  pull?: boolean;
}

export interface BuildOutput {
  stream(text: string): void;
  aux(value: unknown): void;
  /** a pull's progress messages, as they are (the classic builder relays them into its stream) */
  progress?(message: object): void;
}

export class BuildError extends Error {}

interface StageState {
  image: BuildImage | null;
  config: ImageConfig;
  shell: string[];
  /** ARGs declared in this stage: name → value (undefined: declared without a value) */
  args: Map<string, string | undefined>;
  cmdSet: boolean;
  author: string;
}

const short = (id: string) => id.replace(/^sha256:/, '').slice(0, 12);

function cloneConfig(c: ImageConfig): ImageConfig {
  return JSON.parse(JSON.stringify(c)) as ImageConfig;
}

function setEnv(list: string[], key: string, value: string): string[] {
  const out = list.filter((e) => e.slice(0, e.indexOf('=') < 0 ? e.length : e.indexOf('=')) !== key);
  out.push(`${key}=${value}`);
  return out;
}

/** docker's nat.ParsePortSpecs for EXPOSE: `80`, `80/udp`, `8000-8002/tcp`. */
function exposedPorts(spec: string): string[] {
  const m = /^([0-9]+)(?:-([0-9]+))?(?:\/([a-zA-Z]+))?$/.exec(spec);
  if (!m) throw new BuildStepError(`invalid containerPort: ${spec.split('/')[0]}`);
  const proto = (m[3] ?? 'tcp').toLowerCase();
  if (!['tcp', 'udp', 'sctp'].includes(proto)) throw new BuildStepError(`invalid proto: ${m[3]}`);
  const a = Number(m[1]);
  const b = m[2] ? Number(m[2]) : a;
  if (a > 65535 || b > 65535 || b < a) throw new BuildStepError(`invalid containerPort: ${spec.split('/')[0]}`);
  const out: string[] = [];
  for (let p = a; p <= b; p++) out.push(`${p}/${proto}`);
  return out;
}

const SIGNALS = new Set(['ABRT', 'ALRM', 'BUS', 'CHLD', 'CLD', 'CONT', 'FPE', 'HUP', 'ILL', 'INT', 'IO', 'IOT', 'KILL', 'PIPE', 'POLL', 'PROF', 'PWR', 'QUIT', 'SEGV', 'STKFLT', 'STOP', 'SYS', 'TERM', 'TRAP', 'TSTP', 'TTIN', 'TTOU', 'URG', 'USR1', 'USR2', 'VTALRM', 'WINCH', 'XCPU', 'XFSZ']);

function checkSignal(s: string): void {
  if (/^[0-9]+$/.test(s) && Number(s) > 0 && Number(s) < 65) return;
  const n = s.toUpperCase().replace(/^SIG/, '');
  if (SIGNALS.has(n) || /^RTMIN(\+[0-9]+)?$|^RTMAX(-[0-9]+)?$/.test(n)) return;
  throw new BuildStepError(`Invalid signal: ${s}`);
}

export class Builder {
  private readonly opts: BuildOptions;
  private readonly backend: BuildBackend;
  private readonly out: BuildOutput;
  private df!: Dockerfile;
  private readonly results = new Map<number, BuildImage | null>();
  private readonly metaArgs = new Map<string, string | undefined>();
  private readonly consumed = new Set<string>();
  private step = 0;
  private total = 0;
  /** containers of failed RUNs kept (with rm=false and no forcerm) */
  readonly keptContainers: string[] = [];

  constructor(opts: BuildOptions, backend: BuildBackend, out: BuildOutput) {
    this.opts = opts;
    this.backend = backend;
    this.out = out;
  }

  private say(text: string): void {
    if (!this.opts.quiet) this.out.stream(text);
  }

  async build(): Promise<string> {
    try {
      this.df = loadDockerfile(this.opts.dockerfile);
    } catch (e) {
      throw new BuildError((e as Error).message);
    }
    for (const t of this.opts.tags) this.backend.checkTag(t);
    const target = (() => {
      try {
        return targetStage(this.df, this.opts.target);
      } catch (e) {
        throw new BuildError((e as Error).message);
      }
    })();
    if (Object.keys(this.opts.labels).length) {
      // the classic builder appends the build's labels as a LABEL instruction of the target stage
      const line = `LABEL ${Object.entries(this.opts.labels).map(([k, v]) => `${JSON.stringify(k)}=${JSON.stringify(v)}`).join(' ')}`;
      const extra = loadDockerfile(`FROM scratch\n${line}`).stages[0]!.instructions[0]!;
      target.instructions.push(extra);
    }
    // meta args: ARGs before the first FROM, usable in FROM lines (and in stages that declare them again)
    for (const ins of this.df.metaArgs) {
      for (const p of ins.node.pairs ?? []) {
        const given = this.opts.buildArgs[p.key];
        if (given !== undefined && given !== null) {
          this.metaArgs.set(p.key, given);
          this.consumed.add(p.key);
        } else if (p.value !== undefined) {
          this.metaArgs.set(p.key, this.expand(p.value, this.metaEnv()));
        } else this.metaArgs.set(p.key, undefined);
      }
    }
    const stages = neededStages(this.df, target);
    this.total = stages.reduce((n, s) => n + 1 + s.instructions.length, 0);
    for (const s of stages) this.results.set(s.index, await this.buildStage(s));
    const img = this.results.get(target.index);
    if (!img) throw new BuildError('No image was generated. Is your Dockerfile empty?');
    const unused = Object.keys(this.opts.buildArgs).filter((k) => !this.consumed.has(k) && !PROXY_ARGS.includes(k)).sort();
    if (unused.length) this.say(`[Warning] One or more build-args [${unused.join(' ')}] were not consumed\n`);
    this.out.aux({ ID: img.id });
    this.say(`Successfully built ${short(img.id)}\n`);
    for (const t of this.opts.tags) {
      const ref = this.backend.checkTag(t);
      this.backend.tag(img.id, ref);
      this.say(`Successfully tagged ${ref}\n`);
    }
    return img.id;
  }

  private metaEnv(): Env {
    const m: Env = new Map();
    for (const [k, v] of this.metaArgs) if (v !== undefined) m.set(k, v);
    return m;
  }

  private expand(word: string, env: Env): string {
    try {
      return processWord(word, env, this.df.escape);
    } catch (e) {
      if (e instanceof ShellError) throw new BuildStepError(e.message);
      throw e;
    }
  }

  /** The environment instructions are expanded with: the stage's ARGs, overridden by ENV. */
  private buildEnv(st: StageState): Env {
    const env: Env = new Map();
    for (const [k, v] of st.args) if (v !== undefined) env.set(k, v);
    for (const [k, v] of envMap(st.config.Env)) env.set(k, v);
    return env;
  }

  private header(text: string): void {
    this.step++;
    this.say(`Step ${this.step}/${this.total} : ${text}\n`);
  }

  private async buildStage(stage: Stage): Promise<BuildImage | null> {
    this.header(stage.from.original);
    const st = await this.fromImage(stage);
    const triggers = st.image?.config.OnBuild ?? [];
    st.config.OnBuild = null;
    if (triggers.length) {
      this.say(`# Executing ${triggers.length} build trigger${triggers.length > 1 ? 's' : ''}\n`);
      const trigDf = (() => {
        try {
          return loadDockerfile(`FROM scratch\n${triggers.join('\n')}`);
        } catch (e) {
          throw new BuildError((e as Error).message);
        }
      })();
      for (const ins of trigDf.stages[0]!.instructions) await this.dispatch(stage, st, ins);
    }
    for (const ins of stage.instructions) {
      this.header(ins.node.original);
      await this.dispatch(stage, st, ins);
    }
    return st.image;
  }

  private async fromImage(stage: Stage): Promise<StageState> {
    const ref = this.expand(stage.base, this.metaEnv());
    if (!ref) throw new BuildError(`base name (${stage.base}) should not be blank`);
    let image: BuildImage | null = null;
    const prev = stageRef(this.df, ref, stage.index);
    if (prev && this.results.has(prev.index)) {
      image = this.results.get(prev.index) ?? null;
    } else if (ref.toLowerCase() !== 'scratch') {
      image = this.opts.pull ? null : this.backend.findImage(ref) ?? null;
      // as the classic builder: a base image that is not here (or every one, with --pull) is pulled
      if (!image && this.backend.pullImage) {
        try {
          image = (await this.backend.pullImage(ref, (m) => { if (!this.opts.quiet) this.out.progress?.(m); })) ?? null;
        } catch (e) {
          // --pull of an image that is here but whose registry cannot be reached: dockerd fails the build too
          throw new BuildError((e as Error).message);
        }
      }
      if (!image) throw new BuildError(`pull access denied for ${ref.split(':')[0]}, repository does not exist or may require 'docker login'`);
    }
    if (image) this.say(` ---> ${short(image.id)}\n`);
    const config = image ? cloneConfig(image.config) : emptyConfig();
    return { image, config, shell: config.Shell?.length ? [...config.Shell] : ['/bin/sh', '-c'], args: new Map(), cmdSet: false, author: '' };
  }

  /** Cached result of (parent, key), else `make` it; prints Docker's lines either way. */
  private async commitStep(st: StageState, key: string, make: () => Promise<BuildImage>): Promise<void> {
    const cacheKey = createHash('sha256').update(`${st.image?.id ?? 'scratch'}\n${key}`).digest('hex');
    if (!this.opts.noCache) {
      const hit = this.backend.cacheGet(cacheKey);
      if (hit) {
        this.say(' ---> Using cache\n');
        this.say(` ---> ${short(hit.id)}\n`);
        st.image = hit;
        st.config = cloneConfig(hit.config);
        return;
      }
    }
    const img = await make();
    this.backend.cacheSet(cacheKey, img.id);
    this.say(` ---> ${short(img.id)}\n`);
    st.image = img;
    st.config = cloneConfig(img.config);
  }

  private metaCommit(st: StageState, text: string): Promise<void> {
    const createdBy = `/bin/sh -c #(nop)  ${text}`;
    const cfg = cloneConfig(st.config);
    const parent = st.image;
    return this.commitStep(st, `${createdBy}\n${JSON.stringify(cfg)}`, () => this.withProbe(parent, createdBy,
      () => this.backend.commit({ parent, layer: null, config: cfg, createdBy, author: st.author })));
  }

  /** The classic builder commits a metadata step from a container it makes (and removes) for it. */
  private async withProbe(parent: BuildImage | null, createdBy: string, make: () => Promise<BuildImage>): Promise<BuildImage> {
    const probe = parent && this.backend.probe ? await this.backend.probe(parent, createdBy) : undefined;
    if (probe) this.say(` ---> Running in ${short(probe.containerId)}\n`);
    const removing = !!probe && (this.opts.rm || this.opts.forceRm);
    try {
      const img = await make();
      if (removing) this.say(`Removing intermediate container ${short(probe.containerId)}\n`);
      return img;
    } finally {
      if (removing) await probe.remove();
    }
  }

  private async dispatch(stage: Stage, st: StageState, ins: Instruction): Promise<void> {
    try {
      await this.dispatchInner(stage, st, ins);
    } catch (e) {
      if (e instanceof BuildError) throw e;
      if (e instanceof BuildStepError) throw new BuildError(e.message);
      throw e;
    }
  }

  private async dispatchInner(stage: Stage, st: StageState, ins: Instruction): Promise<void> {
    const { node } = ins;
    const env = this.buildEnv(st);
    switch (node.cmd) {
      case 'env': {
        const parts: string[] = [];
        for (const p of node.pairs!) {
          const k = this.expand(p.key, env);
          const v = this.expand(p.value ?? '', env);
          st.config.Env = setEnv(st.config.Env, k, v);
          parts.push(`${k}=${v}`);
        }
        return this.metaCommit(st, `ENV ${parts.join(' ')}`);
      }
      case 'label': {
        const parts: string[] = [];
        st.config.Labels = { ...(st.config.Labels ?? {}) };
        for (const p of node.pairs!) {
          const k = this.expand(p.key, env);
          const v = this.expand(p.value ?? '', env);
          st.config.Labels[k] = v;
          parts.push(`${k}=${v}`);
        }
        return this.metaCommit(st, `LABEL ${parts.join(' ')}`);
      }
      case 'arg': {
        const parts: string[] = [];
        for (const p of node.pairs!) {
          const given = this.opts.buildArgs[p.key];
          let value: string | undefined;
          if (given !== undefined && given !== null) value = given;
          else if (p.value !== undefined) value = this.expand(p.value, env);
          else if (this.metaArgs.has(p.key)) value = this.metaArgs.get(p.key);
          st.args.set(p.key, value);
          if (given !== undefined) this.consumed.add(p.key);
          env.set(p.key, value ?? '');
          parts.push(p.value !== undefined ? `${p.key}=${p.value}` : p.key);
        }
        return this.metaCommit(st, `ARG ${parts.join(' ')}`);
      }
      case 'maintainer':
        st.author = this.expand(node.args[0]!, env);
        return this.metaCommit(st, `MAINTAINER ${st.author}`);
      case 'workdir': {
        const w = this.expand(node.args[0]!, env);
        const dir = path.posix.resolve(st.config.WorkingDir || '/', w);
        st.config.WorkingDir = dir;
        return this.workdirCommit(st, dir);
      }
      case 'user':
        st.config.User = this.expand(node.args[0]!, env);
        return this.metaCommit(st, `USER ${st.config.User}`);
      case 'expose': {
        const ports: string[] = [];
        for (const a of node.args) for (const w of this.words(a, env)) ports.push(...exposedPorts(w));
        st.config.ExposedPorts = { ...(st.config.ExposedPorts ?? {}) };
        for (const p of ports) st.config.ExposedPorts[p] = {};
        return this.metaCommit(st, `EXPOSE ${ports.join(' ')}`);
      }
      case 'volume': {
        st.config.Volumes = { ...(st.config.Volumes ?? {}) };
        const vols = node.args.map((a) => this.expand(a, env));
        for (const v of vols) {
          if (!v.trim()) throw new BuildStepError('VOLUME specified can not be an empty string');
          st.config.Volumes[v] = {};
        }
        return this.metaCommit(st, `VOLUME [${vols.join(' ')}]`);
      }
      case 'stopsignal': {
        const s = this.expand(node.args[0]!, env);
        checkSignal(s);
        st.config.StopSignal = s;
        return this.metaCommit(st, `STOPSIGNAL ${s}`);
      }
      case 'cmd': {
        st.config.Cmd = node.json ? [...node.args] : [...st.shell, node.args[0] ?? ''];
        if (!node.json) st.config.ArgsEscaped = true;
        st.cmdSet = true;
        return this.metaCommit(st, `CMD ${goQuoted(st.config.Cmd)}`);
      }
      case 'entrypoint': {
        st.config.Entrypoint = node.json ? [...node.args] : node.args.length ? [...st.shell, node.args[0]!] : null;
        if (!st.cmdSet) st.config.Cmd = null; // an inherited CMD goes with a new ENTRYPOINT
        return this.metaCommit(st, `ENTRYPOINT ${goQuoted(st.config.Entrypoint ?? [])}`);
      }
      case 'shell':
        st.shell = [...node.args];
        st.config.Shell = [...node.args];
        return this.metaCommit(st, `SHELL ${goQuoted(node.args)}`);
      case 'healthcheck':
        st.config.Healthcheck = this.healthcheck(ins);
        return this.metaCommit(st, `HEALTHCHECK &{${JSON.stringify(st.config.Healthcheck)}}`);
      case 'onbuild': {
        const trig = node.original.replace(/^\s*ONBUILD\s*/i, '');
        st.config.OnBuild = [...(st.config.OnBuild ?? []), trig];
        return this.metaCommit(st, `ONBUILD ${trig}`);
      }
      case 'run':
        return this.run(st, ins);
      case 'copy':
      case 'add':
        return this.copy(stage, st, ins, env);
      default:
        throw new BuildStepError(`unknown instruction: ${node.name}`);
    }
  }

  private words(s: string, env: Env): string[] {
    try {
      return processWords(s, env, this.df.escape);
    } catch (e) {
      throw new BuildStepError((e as Error).message);
    }
  }

  private healthcheck(ins: Instruction): ImageConfig['Healthcheck'] {
    const a = ins.node.args;
    if (a[0] === 'NONE') return { Test: ['NONE'] };
    const hc: NonNullable<ImageConfig['Healthcheck']> = { Test: ins.node.json ? ['CMD', ...a.slice(1)] : ['CMD-SHELL', a[1]!] };
    const dur = (name: string, field: 'Interval' | 'Timeout' | 'StartPeriod' | 'StartInterval') => {
      const v = ins.flags[name];
      if (typeof v !== 'string') return;
      let ns: number;
      try {
        ns = parseDuration(v);
      } catch (e) {
        throw new BuildStepError((e as Error).message);
      }
      if (ns !== 0 && ns < 1e6) throw new BuildStepError(`${field} "${v}" cannot be less than 1ms`);
      hc[field] = ns;
    };
    dur('interval', 'Interval');
    dur('timeout', 'Timeout');
    dur('start-period', 'StartPeriod');
    dur('start-interval', 'StartInterval');
    if (typeof ins.flags.retries === 'string') {
      const r = Number(ins.flags.retries);
      if (!Number.isInteger(r)) throw new BuildStepError(`strconv.ParseInt: parsing "${ins.flags.retries}": invalid syntax`);
      if (r < 1) throw new BuildStepError(`--retries cannot be 0 or negative (${r})`);
      hc.Retries = r;
    }
    return hc;
  }

  /** WORKDIR makes the directory when the image lacks it (a layer), else only the config changes. */
  private async workdirCommit(st: StageState, dir: string): Promise<void> {
    const createdBy = `/bin/sh -c #(nop) WORKDIR ${dir}`;
    const cfg = cloneConfig(st.config);
    const parent = st.image;
    // keyed without looking into the image (the parent's id decides whether the directory is there)
    await this.commitStep(st, `${createdBy}\n${JSON.stringify(cfg)}`, () => this.withProbe(parent, createdBy, async () => {
      const root = parent?.rootfs ?? null;
      let exists = dir === '/';
      if (root && !exists) {
        try {
          exists = fs.statSync(resolveInScope(root, dir)).isDirectory();
        } catch {
          exists = false;
        }
      }
      if (exists) return this.backend.commit({ parent, layer: null, config: cfg, createdBy, author: st.author });
      const staging = fs.mkdtempSync(path.join(os.tmpdir(), 'loom-workdir-'));
      try {
        fs.mkdirSync(path.join(staging, dir), { recursive: true, mode: 0o755 });
        return await this.backend.commit({ parent, layer: packTree(staging, { skipDirHeader: (r) => existsIn(root, r) }), config: cfg, createdBy, author: st.author });
      } finally {
        fs.rmSync(staging, { recursive: true, force: true });
      }
    }));
  }

  /** Build args a RUN sees as environment: declared ones with a value, and the predefined proxy args given. */
  private runArgs(st: StageState): string[] {
    const out: string[] = [];
    const envKeys = new Set(envMap(st.config.Env).keys());
    for (const [k, v] of st.args) if (v !== undefined && !envKeys.has(k)) out.push(`${k}=${v}`);
    for (const k of PROXY_ARGS) {
      const v = this.opts.buildArgs[k];
      if (v !== undefined && v !== null && !st.args.has(k) && !envKeys.has(k)) {
        out.push(`${k}=${v}`);
        this.consumed.add(k);
      }
    }
    return out.sort();
  }

  private async run(st: StageState, ins: Instruction): Promise<void> {
    const { node } = ins;
    const cmd = node.json ? [...node.args] : [...st.shell, node.args[0]!];
    const args = this.runArgs(st);
    // the classic builder's cache key and history: `|<n> K=V ... cmd` when build args are in play
    // (the proxy args stay out of both, as Docker keeps them out of the image's history)
    const shown = args.filter((a) => !PROXY_ARGS.includes(a.slice(0, a.indexOf('='))));
    const createdBy = `${shown.length ? `|${shown.length} ${shown.join(' ')} ` : ''}${cmd.join(' ')}`;
    const cfg = cloneConfig(st.config);
    const key = `RUN\n${createdBy}\n${JSON.stringify({ ...cfg, Cmd: null })}`;
    if (!st.image) {
      // scratch: the container needs an image to be made from (an empty one)
      st.image = await this.backend.commit({ parent: null, layer: null, config: cfg, createdBy: '' });
    }
    const image = st.image;
    await this.commitStep(st, key, async () => {
      const result = await this.backend.run(image, {
        cmd,
        env: [...cfg.Env, ...args],
        workdir: cfg.WorkingDir || '/',
        user: cfg.User,
        networkMode: this.opts.networkMode,
        extraHosts: this.opts.extraHosts,
      }, (chunk) => this.say(chunk.toString('utf8')), (id) => this.say(` ---> Running in ${short(id)}\n`));
      const cid = result.containerId;
      if (result.exitCode !== 0) {
        // A failing build leaves nothing behind (issue 11) unless the client asked to keep intermediate
        // containers (rm=false without forcerm). dockerd's classic builder keeps the failed container
        // with rm=true too; its own --force-rm exists for that.
        if (this.opts.rm || this.opts.forceRm) {
          await result.remove();
        } else this.keptContainers.push(cid);
        throw new BuildError(`The command '${cmd.join(' ')}' returned a non-zero code: ${result.exitCode}`);
      }
      let img: BuildImage;
      try {
        img = await this.backend.commit({ parent: image, layer: result.diff(), config: cfg, createdBy, author: st.author });
      } catch (e) {
        await result.remove().catch(() => {});
        throw e;
      }
      if (this.opts.rm || this.opts.forceRm) {
        this.say(`Removing intermediate container ${short(cid)}\n`);
        await result.remove();
      }
      return img;
    });
  }

  private async copy(stage: Stage, st: StageState, ins: Instruction, env: Env): Promise<void> {
    const { node } = ins;
    const CMD = node.cmd === 'copy' ? 'COPY' : 'ADD';
    const rawSrcs = node.args.slice(0, -1);
    const sources = rawSrcs.map((s) => this.expand(s, env));
    let dest = this.expand(node.args[node.args.length - 1]!, env);
    const trailing = dest.endsWith('/') || dest === '.' || dest.endsWith('/.');
    dest = path.posix.resolve(st.config.WorkingDir || '/', dest);
    let srcRoot = this.opts.contextDir;
    let fromContext = true;
    const from = typeof ins.flags.from === 'string' ? this.expand(ins.flags.from, env) : undefined;
    if (from !== undefined) {
      const s = stageRef(this.df, from, stage.index);
      let img: BuildImage | null | undefined;
      if (s) {
        if (!this.results.has(s.index)) throw new BuildStepError(`invalid from flag value ${from}: stage not built`);
        img = this.results.get(s.index);
      } else {
        img = this.backend.findImage(from);
        if (!img) throw new BuildStepError(`invalid from flag value ${from}: No such image: ${from}`);
      }
      if (!img?.rootfs) throw new BuildStepError(`invalid from flag value ${from}: the stage has no filesystem`);
      srcRoot = img.rootfs;
      fromContext = false;
    }
    const chown = typeof ins.flags.chown === 'string' ? this.expand(ins.flags.chown, env) : undefined;
    const chmod = typeof ins.flags.chmod === 'string' ? this.expand(ins.flags.chmod, env) : undefined;
    const cfg = cloneConfig(st.config);
    const parent = st.image;
    // the cache key from the sources' content alone, so that a hit lays nothing out and reads no image
    // (the parent's id is part of the key, so the destination resolves the same way as when it was made)
    if (sources.length > 1 && !trailing) throw new BuildStepError(`When using ${CMD} with more than one source file, the destination must be a directory and end with a /`);
    const pre = sourceChecksum(CMD, srcRoot, fromContext, sources);
    const layOut = async (staging: string) => {
      let d = dest;
      // a destination through a symlink of the image (/bin -> usr/bin) lands where the link leads
      if (parent?.rootfs) d = insideRoot(parent.rootfs, resolveInScope(parent.rootfs, dest)) + (trailing && dest !== '/' ? '/' : '');
      const staged = await stageCopy({ cmd: CMD, srcRoot, fromContext, sources, dest: d, imageRoot: parent?.rootfs ?? null, chown, chmod, staging });
      return { d, staged };
    };
    const commitStaged = (staging: string, d: string, staged: { checksum: string; kind: string }) => {
      const createdBy = `/bin/sh -c #(nop) ${CMD} ${staged.kind === 'file' ? 'file' : staged.kind === 'dir' ? 'dir' : 'multi'}:${staged.checksum} in ${d} `;
      const root = parent?.rootfs ?? null;
      return this.backend.commit({
        parent, layer: packTree(staging, { skipDirHeader: (r) => existsIn(root, r) && !isStagedSource(staging, r, d) }), config: cfg, createdBy, author: st.author,
      });
    };
    const keyOf = (sum: string) => `${CMD} ${sum} in ${dest}${trailing ? '/' : ''}\n${JSON.stringify([chown, chmod, from])}\n${JSON.stringify(cfg)}`;
    const staging = fs.mkdtempSync(path.join(os.tmpdir(), 'loom-copy-'));
    try {
      if (pre !== undefined) {
        await this.commitStep(st, keyOf(pre), async () => {
          const { d, staged } = await layOut(staging);
          return commitStaged(staging, d, staged);
        });
      } else {
        // a URL's content is known once downloaded: laid out first, keyed by what came
        const { d, staged } = await layOut(staging);
        await this.commitStep(st, keyOf(staged.checksum), () => commitStaged(staging, d, staged));
      }
    } finally {
      fs.rmSync(staging, { recursive: true, force: true });
    }
  }
}

/** Go's %q of a []string, as the classic builder writes CMD and ENTRYPOINT into the history. */
function goQuoted(list: string[]): string {
  return `[${list.map((x) => JSON.stringify(x)).join(' ')}]`;
}

/** A directory the parent image has already (its header stays out of a COPY layer: it keeps its metadata). */
function existsIn(root: string | null, rel: string): boolean {
  if (!root) return false;
  try {
    return fs.lstatSync(path.join(root, rel)).isDirectory();
  } catch {
    return false;
  }
}

/** Directories inside the destination came from the sources: their headers are kept. */
function isStagedSource(_staging: string, rel: string, dest: string): boolean {
  const d = dest.replace(/^\/+/, '').replace(/\/+$/, '');
  return d !== '' && rel.startsWith(`${d}/`);
}
