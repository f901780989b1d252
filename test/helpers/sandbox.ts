// A sandbox world for tests that run the whole daemon (../../shared/TESTING.md):
//
//   outside world  netns loomt-ext-<tag>    ext0 198.51.100.2/24   runs the test's servers
//        | veth
//   host           netns loomt-host-<tag>   ext0 198.51.100.1/24, default route via .2; the daemon runs here
//
// The daemon is started with `nsenter --net=` (keeps the mount namespace, so runc sees the cgroups), with its
// data root, exec root, socket, netns prefix and cgroup parent all private to this sandbox. cleanup() tears
// everything down by what the sandbox owns (its pids, its namespace prefix, mounts below its dir, its
// cgroups), whether or not the test got that far, and leaves `ip netns list` as it found it.
import http from 'node:http';
import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const LOOM = path.join(ROOT, 'bin/loom');

export interface Result { code: number; stdout: string; stderr: string }

export interface SandboxOptions {
  /** extra daemon flags, e.g. ['--icc=false'] */
  daemonArgs?: string[];
  /** distinguishes several sandboxes of one process */
  tag?: string;
}

/** Mount points below `dir` (container rootfs overlays, volumes, build views) as this process sees them. */
export function mountsUnder(dir: string): string[] {
  return fs.readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => m.startsWith(dir));
}

export function requireRoot(): string | false {
  return process.getuid?.() === 0 ? false : 'needs root (network namespaces, nftables, runc)';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs a command to its end (never throws), with an optional stdin and a timeout. */
export function runCmd(argv: string[], opts: { env?: NodeJS.ProcessEnv; input?: string | Buffer; timeoutMs?: number } = {}): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', (e) => { clearTimeout(t); resolve({ code: 127, stdout, stderr: stderr + String(e) }); });
    child.on('close', (code, sig) => { clearTimeout(t); resolve({ code: code ?? (sig ? 128 + (os.constants.signals[sig] ?? 0) : 1), stdout, stderr }); });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

export class Sandbox {
  readonly tag: string;
  readonly hostNs: string;
  readonly extNs: string;
  readonly dir: string;
  readonly socket: string;
  /** container namespaces appear in `ip netns` as <netnsPrefix><name> */
  readonly netnsPrefix: string;
  readonly cgroupParent: string;
  readonly daemonArgs: string[];
  daemon: ChildProcess | null = null;
  daemonLog = '';
  private readonly children = new Set<ChildProcess>();

  constructor(opts: SandboxOptions = {}) {
    this.tag = `${process.pid}${opts.tag ? `-${opts.tag}` : ''}`;
    this.hostNs = `loomt-host-${this.tag}`;
    this.extNs = `loomt-ext-${this.tag}`;
    this.netnsPrefix = `loomt${this.tag}-`;
    this.cgroupParent = `/loomt-${this.tag}`;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `loomt-${this.tag}-`));
    this.socket = path.join(this.dir, 'run', 'loom.sock');
    this.daemonArgs = opts.daemonArgs ?? [];
  }

  get env(): NodeJS.ProcessEnv {
    return { ...process.env, LOOM_HOST: `unix://${this.socket}`, DOCKER_HOST: `unix://${this.socket}`, DOCKER_CONFIG: path.join(this.dir, 'docker-config') };
  }

  setup(): void {
    this.removeNamespaces(); // leftovers of a crashed run with a recycled pid
    const sh = (...a: string[]) => execFileSync(a[0]!, a.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    sh('ip', 'netns', 'add', this.hostNs);
    sh('ip', 'netns', 'add', this.extNs);
    sh('ip', '-n', this.hostNs, 'link', 'add', 'ext0', 'type', 'veth', 'peer', 'name', 'ext0', 'netns', this.extNs);
    sh('ip', '-n', this.hostNs, 'addr', 'add', '198.51.100.1/24', 'dev', 'ext0');
    sh('ip', '-n', this.extNs, 'addr', 'add', '198.51.100.2/24', 'dev', 'ext0');
    for (const ns of [this.hostNs, this.extNs]) {
      sh('ip', '-n', ns, 'link', 'set', 'lo', 'up');
      sh('ip', '-n', ns, 'link', 'set', 'ext0', 'up');
    }
    sh('ip', '-n', this.hostNs, 'route', 'add', 'default', 'via', '198.51.100.2');
    // The host's resolver configuration the daemon reads: a server in the outside world (tests that
    // forward DNS run one there), as a real machine's resolv.conf names its upstream.
    fs.writeFileSync(path.join(this.dir, 'resolv.conf'), 'nameserver 198.51.100.2\nsearch example.test\n');
    fs.writeFileSync(path.join(this.dir, 'hosts'), '127.0.0.1\tlocalhost\n198.51.100.1\tsandbox-host\n');
  }

  /** argv run in the host namespace (nsenter keeps the mount namespace, unlike `ip netns exec`). */
  inHost(argv: string[]): string[] {
    return ['nsenter', `--net=/run/netns/${this.hostNs}`, '--', ...argv];
  }

  inExt(argv: string[]): string[] {
    return ['nsenter', `--net=/run/netns/${this.extNs}`, '--', ...argv];
  }

  async startDaemon(extra: string[] = []): Promise<void> {
    if (this.daemon) throw new Error('daemon already running');
    const args = [
      LOOM, 'daemon', '--data-root', path.join(this.dir, 'data'), '--exec-root', path.join(this.dir, 'run'),
      '--host', `unix://${this.socket}`, '--netns-prefix', this.netnsPrefix, '--cgroup-parent', this.cgroupParent,
      '--resolv-conf', path.join(this.dir, 'resolv.conf'), '--hosts-file', path.join(this.dir, 'hosts'),
      '--log-level', 'debug', ...this.daemonArgs, ...extra,
    ];
    const argv = this.inHost(args);
    const d = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], env: process.env });
    this.daemon = d;
    d.stderr!.on('data', (b: Buffer) => {
      this.daemonLog += b.toString();
      if (this.daemonLog.length > 4_000_000) this.daemonLog = this.daemonLog.slice(-2_000_000);
    });
    d.on('exit', () => { if (this.daemon === d) this.daemon = null; });
    for (let i = 0; i < 300; i++) {
      if (d.exitCode !== null || d.signalCode) throw new Error(`daemon exited at start: ${this.daemonLog.slice(-4000)}`);
      const r = await runCmd([LOOM, 'version', '--format', '{{.Server.Version}}'], { env: this.env, timeoutMs: 5000 });
      if (r.code === 0) return;
      await sleep(100);
    }
    throw new Error(`daemon did not come up: ${this.daemonLog.slice(-4000)}`);
  }

  async stopDaemon(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const d = this.daemon;
    if (!d) return;
    const gone = new Promise<void>((r) => (d.exitCode !== null || d.signalCode ? r() : d.once('exit', () => r())));
    // nsenter execs the daemon, so the child's pid is the daemon's
    d.kill(signal);
    await Promise.race([gone, sleep(15_000)]);
    if (d.exitCode === null && !d.signalCode) {
      d.kill('SIGKILL');
      await gone;
    }
    this.daemon = null;
  }

  loom(...args: string[]): Promise<Result> {
    return runCmd([LOOM, ...args], { env: this.env });
  }

  loomIn(input: string, ...args: string[]): Promise<Result> {
    return runCmd([LOOM, ...args], { env: this.env, input });
  }

  /** A raw Engine API request on the daemon's socket (what the CLIs do not let through): status and parsed body. */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
    return new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = http.request({ socketPath: this.socket, method, path, headers: data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {} }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : null }));
      });
      req.on('error', reject);
      req.end(data);
    });
  }

  docker(...args: string[]): Promise<Result> {
    return runCmd(['docker', ...args], { env: this.env });
  }

  hostExec(argv: string[], timeoutMs?: number): Promise<Result> {
    return runCmd(this.inHost(argv), { timeoutMs });
  }

  extExec(argv: string[], timeoutMs?: number): Promise<Result> {
    return runCmd(this.inExt(argv), { timeoutMs });
  }

  /** A background process in the outside world; killed at cleanup. */
  spawnExt(argv: string[]): ChildProcess {
    return this.spawnTracked(this.inExt(argv));
  }

  spawnHost(argv: string[]): ChildProcess {
    return this.spawnTracked(this.inHost(argv));
  }

  private spawnTracked(argv: string[]): ChildProcess {
    const c = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
    this.children.add(c);
    c.on('exit', () => this.children.delete(c));
    return c;
  }

  /** Imports a busybox root filesystem (with /www/index.html) as image NAME. */
  async image(name: string): Promise<void> {
    const tar = busyboxTar(this.dir);
    const r = await runCmd([LOOM, 'import', tar, name], { env: this.env });
    if (r.code !== 0) throw new Error(`import failed: ${r.stderr}`);
  }

  /** Tears down everything this sandbox made. Never throws. */
  async cleanup(): Promise<void> {
    for (const c of this.children) try { c.kill('SIGKILL'); } catch { /* gone */ }
    await this.stopDaemon('SIGKILL').catch(() => {});
    const runcRoot = path.join(this.dir, 'run', 'runc');
    // Containers: killed through runc (their shims then exit), then any process still in our cgroups.
    if (fs.existsSync(runcRoot)) {
      for (const id of fs.readdirSync(runcRoot)) spawnSync('runc', ['--root', runcRoot, 'delete', '-f', id], { stdio: 'ignore' });
    }
    for (const pid of this.pidsInCgroups()) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    // Shims (sh processes that ran `runc run` for a container of ours) are found by their pid files.
    const cdir = path.join(this.dir, 'data', 'containers');
    if (fs.existsSync(cdir)) {
      for (const id of fs.readdirSync(cdir)) {
        try {
          const pid = Number(fs.readFileSync(path.join(cdir, id, 'shim.pid'), 'utf8'));
          if (pid > 0 && fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(this.dir)) process.kill(pid, 'SIGKILL');
        } catch { /* gone */ }
      }
    }
    await sleep(100);
    const mounts = () => fs.readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '').map((m) => m.replace(/\\040/g, ' '));
    for (const m of mounts().filter((m) => m.startsWith(this.dir)).reverse()) spawnSync('umount', ['-l', m], { stdio: 'ignore' });
    this.removeNamespaces();
    this.removeCgroups();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  private removeNamespaces(): void {
    const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').map((l) => l.split(' ')[0]!).filter(Boolean);
    for (const ns of list) {
      if (ns === this.hostNs || ns === this.extNs || ns.startsWith(this.netnsPrefix)) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    }
  }

  private cgroupDirs(): string[] {
    const out: string[] = [];
    const base = '/sys/fs/cgroup';
    if (!fs.existsSync(base)) return out;
    const walk = (d: string) => {
      out.push(d);
      try {
        for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(path.join(d, e.name));
      } catch { /* gone */ }
    };
    for (const top of [base, ...fs.readdirSync(base).map((c) => path.join(base, c))]) {
      const d = path.join(top, this.cgroupParent);
      if (fs.existsSync(d) && fs.statSync(d).isDirectory()) walk(d);
    }
    return out;
  }

  private pidsInCgroups(): number[] {
    const pids = new Set<number>();
    for (const d of this.cgroupDirs()) {
      try {
        for (const p of fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n')) if (p) pids.add(Number(p));
      } catch { /* none */ }
    }
    return [...pids];
  }

  private removeCgroups(): void {
    for (const d of this.cgroupDirs().sort((a, b) => b.length - a.length)) try { fs.rmdirSync(d); } catch { /* busy or gone */ }
  }
}

/**
 * Builds (once per dir and name) a busybox root filesystem tarball: the binary, applet symlinks, passwd, a
 * web root; `files` (path in the image → content) adds or replaces files.
 */
export function busyboxTar(dir: string, files: Record<string, string> = {}, name = 'busybox.tar'): string {
  const tar = path.join(dir, name);
  if (fs.existsSync(tar)) return tar;
  const build = path.join(dir, `${name}.build`);
  fs.mkdirSync(path.join(build, 'bin'), { recursive: true });
  for (const d of ['etc', 'proc', 'sys', 'dev', 'tmp', 'root', 'www']) fs.mkdirSync(path.join(build, d), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(build, 'bin/busybox'));
  fs.chmodSync(path.join(build, 'bin/busybox'), 0o755);
  for (const a of execFileSync('/bin/busybox', ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean)) {
    if (a !== 'busybox') fs.symlinkSync('busybox', path.join(build, 'bin', a));
  }
  fs.writeFileSync(path.join(build, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
  fs.writeFileSync(path.join(build, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  fs.writeFileSync(path.join(build, 'www/index.html'), 'hello from loom\n');
  for (const [p, text] of Object.entries(files)) fs.writeFileSync(path.join(build, p), text);
  execFileSync('tar', ['-C', build, '--numeric-owner', '-cf', tar, '.']);
  fs.rmSync(build, { recursive: true, force: true });
  return tar;
}

export async function createSandbox(opts: SandboxOptions = {}): Promise<Sandbox> {
  const sb = new Sandbox(opts);
  try {
    sb.setup();
  } catch (e) {
    await sb.cleanup();
    throw e;
  }
  return sb;
}

/**
 * Polls `get` until it deep-equals `want` (or `want` is a predicate that holds), up to `ms`; returns the
 * last value, so the caller's assertion shows the difference. For kernel state that settles in the
 * background: a stopped container's veth pair is destroyed by the kernel with its namespace.
 */
export async function eventually<T>(get: () => Promise<T>, want: T | ((v: T) => boolean), ms = 5000): Promise<T> {
  const { isDeepStrictEqual } = await import('node:util');
  const ok = (v: T) => (typeof want === 'function' ? (want as (v: T) => boolean)(v) : isDeepStrictEqual(v, want));
  const end = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (ok(v) || Date.now() > end) return v;
    await sleep(50);
  }
}
