// A sandbox world per benchmark system (../shared/TESTING.md): a "host" namespace where the daemon or
// the peer runs, an "outside world" namespace behind it, and everything named with the run's prefix:
//
//   outside world  netns loomb5-<pid>-<world>-x   ext0 198.51.100.2/24
//        | veth
//   host           netns loomb5-<pid>-<world>-h   ext0 198.51.100.1/24, default route via .2
//                  (loom daemon / dockerd / netavark / CNI plugins run here; their bridges, veths and
//                  firewall tables are this namespace's; container namespaces hang off it)
//
// Daemons are started with `nsenter --net=` (keeping the mount namespace, so runc sees the cgroups).
// cleanup() stops them and then sweeps by ownership (lib/sweep.ts): nothing is left in the machine's own
// namespace or in /run/netns, whatever happened.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Api } from './api.ts';
import { must, run, sleep, type RunOptions, type Result } from './proc.ts';
import { sweep, type Owned } from './sweep.ts';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const LOOM = path.join(ROOT, 'bin/loom');
export const NODE = path.join(ROOT, '.node/bin/node');
/** The Node flags bin/loom starts the daemon with (keep in step with bin/loom): workers that run the daemon's code in process use them too. */
export const LOOM_DAEMON_NODE_FLAGS = ['--max-semi-space-size=1', '--require', path.join(ROOT, 'src/cli/preload.cjs')];

export interface Ctx {
  quick: boolean;
  /** write CPU profiles of loom's processes here (--cpu-prof) */
  profDir?: string;
  /** /tmp/loomb5-<pid> */
  runDir: string;
  /** loomb5-<pid>- */
  nsPrefix: string;
  /** busybox root filesystem tarball (test/helpers/sandbox.ts busyboxTar) */
  tar: string;
  log(msg: string): void;
  /** figures one benchmark leaves for another of the same run (e.g. the daemon's RSS at N endpoints) */
  cache: Map<string, unknown>;
}

let worldCount = 0;
const RUN_DOCKER_EXISTED = fs.existsSync('/run/docker');

/**
 * dockerd makes its plugin discovery directory /run/docker/plugins whatever its exec root: removed again
 * when it was not there before the run (rmdir: only while empty, so nobody else's is touched).
 */
export function dropDockerRunDir(): void {
  if (RUN_DOCKER_EXISTED) return;
  for (const d of ['/run/docker/plugins', '/run/docker']) try { fs.rmdirSync(d); } catch { /* not empty, or gone */ }
}
export const liveWorlds = new Set<World>();

export interface Daemon {
  kind: 'loom' | 'docker';
  api: Api;
  pid: number;
  socket: string;
  /** environment for CLIs talking to it (LOOM_HOST, DOCKER_HOST, DOCKER_CONFIG) */
  env: NodeJS.ProcessEnv;
  proc: ChildProcess;
}

/** dir, or dir-2, dir-3 ... when a run profiles the same thing twice */
function uniqueDir(dir: string): string {
  let d = dir;
  for (let i = 2; fs.existsSync(d); i++) d = `${dir}-${i}`;
  return d;
}

export class World {
  readonly ctx: Ctx;
  readonly id: string;
  readonly hostNs: string;
  readonly extNs: string;
  /** container namespaces of this world: /run/netns/<ctrPrefix><name> */
  readonly ctrPrefix: string;
  readonly dir: string;
  readonly cgroupParent: string;
  readonly owned: Owned;
  private readonly daemons: Daemon[] = [];
  private readonly children = new Set<ChildProcess>();

  constructor(ctx: Ctx, name: string) {
    this.ctx = ctx;
    this.id = `${++worldCount}${name}`;
    const p = `${ctx.nsPrefix}${this.id}-`;
    this.hostNs = `${p}h`;
    this.extNs = `${p}x`;
    this.ctrPrefix = `${p}c-`;
    this.dir = path.join(ctx.runDir, this.id);
    this.cgroupParent = `/${p}cg`;
    this.owned = { nsPrefix: p, dir: this.dir, cgroupPrefix: p };
  }

  get hostPath(): string { return `/run/netns/${this.hostNs}`; }
  get extPath(): string { return `/run/netns/${this.extNs}`; }
  get resolvConf(): string { return path.join(this.dir, 'resolv.conf'); }
  get hostsFile(): string { return path.join(this.dir, 'hosts'); }

  static async create(ctx: Ctx, name: string): Promise<World> {
    const w = new World(ctx, name);
    liveWorlds.add(w);
    try {
      await w.setup();
    } catch (e) {
      await w.cleanup();
      throw e;
    }
    return w;
  }

  private async setup(): Promise<void> {
    fs.mkdirSync(this.dir, { recursive: true });
    const batch = [
      `netns add ${this.hostNs}`, `netns add ${this.extNs}`,
      `-n ${this.hostNs} link add ext0 type veth peer name ext0 netns ${this.extNs}`,
      `-n ${this.hostNs} addr add 198.51.100.1/24 dev ext0`, `-n ${this.extNs} addr add 198.51.100.2/24 dev ext0`,
      `-n ${this.hostNs} link set lo up`, `-n ${this.extNs} link set lo up`,
      `-n ${this.hostNs} link set ext0 up`, `-n ${this.extNs} link set ext0 up`,
      `-n ${this.hostNs} route add default via 198.51.100.2`,
    ];
    // one `ip` per line: -n must come before the object, which -batch lines cannot carry
    for (const l of batch) await must(['ip', ...l.split(' ')]);
    // The "host's" resolver: a server in the outside world (nothing answers there: benchmarks query
    // local names only), as a real machine's resolv.conf names its upstream.
    fs.writeFileSync(this.resolvConf, 'nameserver 198.51.100.2\n');
    fs.writeFileSync(this.hostsFile, '127.0.0.1\tlocalhost\n198.51.100.1\tbench-host\n');
  }

  inHost(argv: string[]): string[] { return ['nsenter', `--net=${this.hostPath}`, '--', ...argv]; }
  inExt(argv: string[]): string[] { return ['nsenter', `--net=${this.extPath}`, '--', ...argv]; }
  inNs(nsPath: string, argv: string[]): string[] { return ['nsenter', `--net=${nsPath}`, '--', ...argv]; }

  host(argv: string[], o?: RunOptions): Promise<string> { return must(this.inHost(argv), o); }

  /** A background process (killed at cleanup); stdout/stderr to <dir>/<log>. */
  spawnBg(argv: string[], log: string, env?: NodeJS.ProcessEnv): ChildProcess {
    const fd = fs.openSync(path.join(this.dir, log), 'a');
    const c = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', fd, fd], env: env ?? process.env });
    fs.closeSync(fd);
    this.children.add(c);
    c.on('exit', () => this.children.delete(c));
    return c;
  }

  /** Runs a worker module (bench/workers/NAME.ts) in the host namespace; returns its result file's JSON. */
  async worker<T>(name: string, cfg: Record<string, unknown> & { out?: string }, timeoutMs = 600_000, profName?: string): Promise<T> {
    const cfgPath = path.join(this.dir, `${name}-${Date.now()}.json`);
    const out = cfg.out ?? `${cfgPath}.out`;
    // --cpu-prof: the worker profiles its measured phases itself (inspector), into this directory
    const profDir = this.ctx.profDir && profName ? uniqueDir(path.join(this.ctx.profDir, profName)) : undefined;
    fs.writeFileSync(cfgPath, JSON.stringify({ ...cfg, out, ...(profDir ? { profDir } : {}) }));
    const flags = cfg.mode === 'loom' ? LOOM_DAEMON_NODE_FLAGS : [];
    const r: Result = await run(this.inHost([NODE, '--disable-warning=ExperimentalWarning', '--stack-trace-limit=30', ...flags, path.join(ROOT, 'bench/workers', `${name}.ts`), cfgPath]), { timeoutMs });
    if (r.code !== 0 || !fs.existsSync(out)) throw new Error(`worker ${name} failed (exit ${r.code}): ${(r.stderr + r.stdout).trim().slice(-3000)}`);
    return JSON.parse(fs.readFileSync(out, 'utf8')) as T;
  }

  // ---------------------------------------------------------------- daemons

  async startLoom(extra: string[] = []): Promise<Daemon> {
    const d = path.join(this.dir, 'loom');
    const socket = path.join(d, 'run', 'loom.sock');
    const env: NodeJS.ProcessEnv = { ...process.env };
    // --cpu-prof: the whole daemon's life (src/firewall/nft.ts keeps the profiler's signals out of libnftables)
    if (this.ctx.profDir) env.NODE_OPTIONS = `--cpu-prof --cpu-prof-dir=${uniqueDir(path.join(this.ctx.profDir, `loom-daemon-${this.id}`))}`;
    const proc = this.spawnBg(this.inHost([
      LOOM, 'daemon', '--data-root', path.join(d, 'data'), '--exec-root', path.join(d, 'run'), '--host', `unix://${socket}`,
      '--netns-prefix', this.ctrPrefix, '--cgroup-parent', this.cgroupParent, '--resolv-conf', this.resolvConf,
      '--hosts-file', this.hostsFile, '--log-level', 'warn', ...extra,
    ]), 'loom-daemon.log', env);
    const daemon = await this.awaitDaemon('loom', proc, socket, 'loom-daemon.log', 30_000);
    daemon.env = { ...process.env, LOOM_HOST: `unix://${socket}`, DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: path.join(this.dir, 'docker-config') };
    return daemon;
  }

  /**
   * dockerd (Debian's docker.io) inside the host namespace with a data root, exec root, socket, pid file,
   * config file, key file and cgroup parent of its own, its managed containerd below its exec root. Its
   * iptables rules land in this namespace only. It is pointed at no registry (a dead proxy): nothing is
   * pulled but from the sandbox's own registries (`noProxy`: the registry bench), and the namespace has no
   * route anywhere but the sandbox's outside world.
   */
  async startDocker(extra: string[] = [], opts: { noProxy?: string; hostname?: string } = {}): Promise<Daemon> {
    const d = path.join(this.dir, 'docker');
    fs.mkdirSync(d, { recursive: true });
    const socket = path.join(d, 'docker.sock');
    // the trust key would otherwise be written to /etc/docker/key.json
    fs.writeFileSync(path.join(d, 'daemon.json'), JSON.stringify({ 'deprecated-key-path': path.join(d, 'key.json') }) + '\n');
    // hostname: a UTS namespace of its own with that name (the classic overlay's gossip names each node
    // by its hostname: two dockerds with the machine's one conflict and one of them leaves)
    const uts = opts.hostname ? ['unshare', '--uts', '--', 'sh', '-c', 'hostname "$0" && exec "$@"', opts.hostname] : [];
    const proc = this.spawnBg(this.inHost([
      ...uts, 'dockerd', '--data-root', path.join(d, 'data'), '--exec-root', path.join(d, 'run'), '-H', `unix://${socket}`,
      '--pidfile', path.join(d, 'docker.pid'), '--config-file', path.join(d, 'daemon.json'),
      '--cgroup-parent', this.cgroupParent,
      '--exec-opt', 'native.cgroupdriver=cgroupfs', '--storage-driver', 'overlay2', '--dns', '198.51.100.2',
      '--log-level', 'warn', ...extra,
    ]), 'dockerd.log', { ...process.env, HTTP_PROXY: 'http://127.0.0.1:9', HTTPS_PROXY: 'http://127.0.0.1:9', NO_PROXY: opts.noProxy ?? '' });
    const daemon = await this.awaitDaemon('docker', proc, socket, 'dockerd.log', 90_000);
    daemon.env = { ...process.env, DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: path.join(this.dir, 'docker-config') };
    return daemon;
  }

  private async awaitDaemon(kind: 'loom' | 'docker', proc: ChildProcess, socket: string, log: string, timeoutMs: number): Promise<Daemon> {
    const api = new Api(socket);
    const t0 = Date.now();
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode) throw new Error(`${kind} daemon exited at start: ${this.tail(log)}`);
      if (fs.existsSync(socket) && await api.ping()) break;
      if (Date.now() - t0 > timeoutMs) throw new Error(`${kind} daemon did not come up in ${timeoutMs / 1000} s: ${this.tail(log)}`);
      await sleep(100);
    }
    const daemon: Daemon = { kind, api, pid: proc.pid!, socket, env: {}, proc };
    this.daemons.push(daemon);
    return daemon;
  }

  tail(log: string, n = 3000): string {
    try { return fs.readFileSync(path.join(this.dir, log), 'utf8').slice(-n); } catch { return '(no log)'; }
  }

  /** Imports the busybox rootfs as image `box` (loom import / docker import). */
  async importBox(d: Daemon): Promise<void> {
    if (d.kind === 'loom') await must([LOOM, 'import', this.ctx.tar, 'box'], { env: d.env });
    else await must(['docker', 'import', this.ctx.tar, 'box'], { env: d.env });
  }

  /** PID of a container's init as the daemon reports it. */
  async containerPid(d: Daemon, id: string): Promise<number> {
    const j = await d.api.ok<{ State: { Pid: number } }>('GET', `/containers/${id}/json`);
    return j.State.Pid;
  }

  /** The network namespace path of a container (loom: its named namespace; docker: its init's). */
  async containerNetns(d: Daemon, id: string): Promise<string> {
    if (d.kind === 'loom') {
      const j = await d.api.ok<{ Name: string }>('GET', `/containers/${id}/json`);
      return `/run/netns/${this.ctrPrefix}${j.Name.replace(/^\//, '')}`;
    }
    return `/proc/${await this.containerPid(d, id)}/ns/net`;
  }

  /** Stops the daemons (loom with SIGTERM so a CPU profile gets written), then removes everything owned. */
  async cleanup(): Promise<string[]> {
    for (const d of this.daemons) {
      d.api.close();
      if (d.proc.exitCode !== null || d.proc.signalCode) continue;
      const gone = new Promise<void>((r) => d.proc.once('exit', () => r()));
      d.proc.kill(d.kind === 'loom' ? 'SIGTERM' : 'SIGKILL');
      await Promise.race([gone, sleep(20_000)]);
    }
    for (const c of this.children) try { c.kill('SIGKILL'); } catch { /* gone */ }
    const did = sweep(this.owned);
    if (this.daemons.some((d) => d.kind === 'docker')) dropDockerRunDir();
    liveWorlds.delete(this);
    return did;
  }
}

export { run, must };
