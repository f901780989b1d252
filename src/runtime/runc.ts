// Container lifecycle on runc. Each container runs under a tiny POSIX sh shim (shim.sh) started in a
// session of its own, which outlives the daemon: the shim runs `runc run` in the foreground with the
// container's stdout/stderr going straight to two log files (no copying process), and records the exit
// status in a file when runc returns. The daemon talks to containers only through files in the state
// directory (init.pid, exit.json, runc.log, stdin.fifo) and runc's CLI (kill, pause, exec, state,
// delete), so a restarted daemon sees exactly what the one that started them saw.
//
// State directory layout (the bundle dir of runc, one per container, under the data root):
//   config.json            OCI config written at each start
//   rootfs/ upper/ work/   overlay mount point (lower = image rootfs) and its upper and work dirs
//   stdout.log stderr.log  the container's output, appended across restarts
//   stdin.fifo             stdin for containers with openStdin (and tty ones, which never see EOF)
//   shim.pid init.pid      the shim's pid; the container's init pid (written by runc once it runs)
//   runc.log exit.json     runc's own messages (JSON lines); exit code + time, written when runc returns
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Writable } from 'node:stream';
import type { Logger } from '../util/log.ts';
import {
  buildOciConfig, nowRfc3339Nano, parseExitFile, resolveUserIn, runcMessage, shellQuote,
  type ContainerSpec, type ExitStatus,
} from './spec.ts';
import { ensureFifo, isMountPoint, mountOverlay, unmount } from './mounts.ts';
import { LogClock } from './logclock.ts';

export type { ContainerSpec, ExitStatus, ResolvedUser } from './spec.ts';

const SHIM = fileURLToPath(new URL('./shim.sh', import.meta.url));
const F = {
  config: 'config.json', rootfs: 'rootfs', upper: 'upper', work: 'work', stdout: 'stdout.log', stderr: 'stderr.log',
  fifo: 'stdin.fifo', shimPid: 'shim.pid', initPid: 'init.pid', runcLog: 'runc.log', exit: 'exit.json',
} as const;
const ID_RE = /^[\w+.-]+$/; // runc's own rule for container ids

/** runc refused or failed; `message` is runc's own text (e.g. `runc run failed: unable to start ...`). */
export class RuncError extends Error {
  readonly exitCode: number | null;
  constructor(message: string, exitCode: number | null = null) {
    super(message);
    this.name = 'RuncError';
    this.exitCode = exitCode;
  }
}

export interface RuncOptions {
  /** runc --root: runc's state dir, under the exec root. */
  root: string;
  log: Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;
  runcPath?: string;
  /** cgroups of containers go to <cgroupParent>/<id>; default /loom. */
  cgroupParent?: string;
  /** How long start() waits for runc to report the container running; default 60 s. */
  startTimeoutMs?: number;
}

interface StdinState {
  holder: number | null; // a read-write fd keeping the FIFO's buffer alive (and a writer present)
  once: boolean; // StdinOnce: EOF once the first attacher has come and every writer closed
  running: boolean;
  attached: boolean;
}

interface ExitSub { resolve: (st: ExitStatus) => void; reject: (e: Error) => void }
interface ExitWatch {
  id: string;
  dir: string;
  watcher: fs.FSWatcher | null;
  subs: Set<ExitSub>;
  lostSince: number;
  badReads: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

function readText(p: string): string | null {
  try {
    return fs.readFileSync(p, 'utf8');
  } catch {
    return null;
  }
}

/** What a file holds from `offset` on (at most 4 KiB), as text. */
function readFrom(p: string, offset: number): string {
  try {
    const fd = fs.openSync(p, 'r');
    try {
      const buf = Buffer.alloc(4096);
      return buf.subarray(0, fs.readSync(fd, buf, 0, buf.length, offset)).toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return '';
  }
}

function sizeOf(p: string): number {
  try {
    return fs.statSync(p).size;
  } catch {
    return 0;
  }
}

/** Is `pid` alive and its command line still contains every one of `words` (guards against pid reuse)? */
function processMatches(pid: number, words: string[]): boolean {
  if (!(pid > 0)) return false;
  const cmd = readText(`/proc/${pid}/cmdline`);
  if (cmd === null) return false;
  if (readText(`/proc/${pid}/stat`)?.match(/\) Z /)) return false; // a zombie waiting for its parent
  return words.every((w) => cmd.includes(w));
}

function readPidFile(p: string): number {
  const n = Number((readText(p) ?? '').trim());
  return Number.isInteger(n) && n > 0 ? n : 0;
}

export class Runc {
  readonly root: string;
  private readonly log: RuncOptions['log'];
  private readonly runcPath: string;
  private readonly cgroupParent: string;
  private readonly startTimeoutMs: number;
  private readonly stdin = new Map<string, StdinState>(); // by state dir
  private readonly exitWatches = new Map<string, ExitWatch>(); // by state dir
  private sweepTimer: NodeJS.Timeout | null = null;
  private sweeps = 0;
  /** when the output of running containers was written (logs -t, --since, --until) */
  readonly clock = new LogClock();

  constructor(opts: RuncOptions) {
    this.root = path.resolve(opts.root);
    this.log = opts.log;
    this.runcPath = opts.runcPath ?? findExecutable('runc');
    this.cgroupParent = (opts.cgroupParent ?? '/loom').replace(/\/+$/, '');
    this.startTimeoutMs = opts.startTimeoutMs ?? 60_000;
    fs.mkdirSync(this.root, { recursive: true, mode: 0o700 });
  }

  // ---------------------------------------------------------------------------- runc CLI

  /** Runs runc to completion; rejects with runc's own message. */
  private runc(args: string[], timeoutMs = 30_000): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile(this.runcPath, ['--root', this.root, '--log-format', 'json', ...args], { timeout: timeoutMs, maxBuffer: 16 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const code = typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null;
        reject(new RuncError(runcMessage(stderr) || err.message, code));
      });
    });
  }

  /** runc's view of a container, or null when it has none. */
  async state(id: string): Promise<{ status: string; pid: number; bundle: string } | null> {
    if (!fs.existsSync(path.join(this.root, id))) return null;
    try {
      return JSON.parse(await this.runc(['state', id])) as { status: string; pid: number; bundle: string };
    } catch (e) {
      if (/does not exist/.test((e as Error).message)) return null;
      throw e;
    }
  }

  /** The container's init pid from runc's state file, without spawning runc (0 when none). */
  private initPid(id: string): number {
    const st = readText(path.join(this.root, id, 'state.json'));
    if (!st) return 0;
    try {
      const pid = (JSON.parse(st) as { init_process_pid?: number }).init_process_pid ?? 0;
      return pid > 0 && fs.existsSync(`/proc/${pid}`) ? pid : 0;
    } catch {
      return 0;
    }
  }

  /** The container's cgroup, below each controller's mount (or the unified tree). */
  cgroupsPath(id: string): string {
    return `${this.cgroupParent}/${id}`;
  }

  // ---------------------------------------------------------------------------- start

  async start(spec: ContainerSpec): Promise<{ pid: number; startedAt: string }> {
    const { id } = spec;
    if (!ID_RE.test(id)) throw new Error(`invalid container id ${JSON.stringify(id)}`);
    const dir = path.resolve(spec.stateDir);
    const file = (f: string) => path.join(dir, f);
    fs.mkdirSync(dir, { recursive: true });

    if (fs.existsSync(path.join(this.root, id))) {
      const st = await this.state(id);
      if (st && st.status !== 'stopped') throw new RuncError(`container ${id} is already ${st.status}`);
      if (st) await this.runc(['delete', '-f', id]).catch(() => {});
    }
    // The shim of the previous run (restart right after an exit) may still be between writing the exit
    // status and exiting: give it a moment. One without an exit status supervises a live container.
    const oldShim = readPidFile(file(F.shimPid));
    for (let i = 0; processMatches(oldShim, [SHIM, id]); i++) {
      if (!fs.existsSync(file(F.exit)) || i >= 100) throw new RuncError(`container ${id} is still supervised by its shim (pid ${oldShim})`);
      await sleep(20);
    }
    for (const f of [F.initPid, F.exit, `${F.exit}.tmp`, F.runcLog, F.shimPid]) fs.rmSync(file(f), { force: true });

    const t0 = performance.now();
    const rootfs = file(F.rootfs);
    mountOverlay([spec.rootfsLower].flat().map((l) => path.resolve(l)), file(F.upper), file(F.work), rootfs);
    let stdinMode: 'none' | 'keep' | 'once' = 'none';
    const outSize = sizeOf(file(F.stdout)), errSize = sizeOf(file(F.stderr));
    try {
      const user = resolveUserIn(rootfs, spec.user);
      const config = buildOciConfig({ ...spec, stateDir: dir }, { cgroupsPath: this.cgroupsPath(id), user });
      fs.writeFileSync(file(F.config), JSON.stringify(config));
      if (spec.openStdin || spec.tty) {
        ensureFifo(file(F.fifo));
        stdinMode = spec.openStdin && spec.stdinOnce ? 'once' : 'keep';
        const s = this.stdinState(dir);
        s.once = stdinMode === 'once';
        s.running = false;
        // The shim's read-only open needs a writer present, and data an early attacher wrote must
        // survive until the container reads it: hold the FIFO open until the container runs.
        if (s.holder === null) s.holder = fs.openSync(file(F.fifo), fs.constants.O_RDWR);
      }
    } catch (e) {
      unmount(rootfs);
      throw e;
    }

    const t1 = performance.now();
    let result: 'running' | 'exited' | 'timeout';
    const watch = this.watchFor(dir, [F.initPid, F.exit]);
    // output is stamped from the first byte on (logs -t, --since)
    this.clock.track(dir);
    try {
      const shim = spawn('/bin/sh', [SHIM, this.runcPath, this.root, id, dir, stdinMode, spec.tty ? '1' : '0'], {
        detached: true, stdio: 'ignore', cwd: dir,
      });
      shim.unref();
      const spawnError = new Promise<never>((_, reject) => shim.once('error', reject));
      const found = await Promise.race([watch.found, spawnError, sleep(this.startTimeoutMs).then(() => null)]);
      result = found === F.initPid || fs.existsSync(file(F.initPid)) ? 'running' : found === F.exit ? 'exited' : 'timeout';
      if (result === 'timeout') {
        try {
          process.kill(-shim.pid!, 'SIGKILL'); // the shim's session: shim, script, runc
        } catch { /* gone */ }
      }
    } catch (e) {
      watch.close();
      await this.abortStart(id, dir, outSize, errSize);
      throw e;
    } finally {
      watch.close();
    }

    if (result === 'running') {
      const pid = readPidFile(file(F.initPid));
      const startedAt = nowRfc3339Nano();
      if (stdinMode !== 'none') {
        const s = this.stdinState(dir);
        s.running = true;
        this.settleHolder(dir);
      }
      const t2 = performance.now();
      this.log.debug({ id, pid, prepareMs: +(t1 - t0).toFixed(1), runcMs: +(t2 - t1).toFixed(1) }, 'container running');
      return { pid, startedAt };
    }
    // runc's message from its log; else whatever the shim's commands printed (e.g. a missing tool).
    const printed = (readFrom(file(F.stderr), errSize) + readFrom(file(F.stdout), outSize)).trim();
    const msg = result === 'timeout'
      ? `runc did not report container ${id} running within ${this.startTimeoutMs / 1000} s`
      : runcMessage(readText(file(F.runcLog)) ?? '') || printed
        || `runc exited with status ${parseExitFile(readText(file(F.exit)) ?? '')?.exitCode ?? '?'} before the container ran`;
    await this.abortStart(id, dir, outSize, errSize);
    throw new RuncError(msg);
  }

  /** Undoes a failed start: nothing running, nothing mounted, the logs as they were. */
  private async abortStart(id: string, dir: string, outSize: number, errSize: number): Promise<void> {
    if (fs.existsSync(path.join(this.root, id))) await this.runc(['delete', '-f', id]).catch(() => {});
    this.closeStdin(dir);
    try {
      unmount(path.join(dir, F.rootfs));
    } catch (e) {
      this.log.warn({ id, err: (e as Error).message }, 'unmount after failed start');
    }
    // runc's own error text went to the container's streams too; the logs keep only container output.
    for (const [f, size] of [[F.stdout, outSize], [F.stderr, errSize]] as const) {
      try {
        fs.truncateSync(path.join(dir, f), size);
      } catch { /* absent */ }
    }
    for (const f of [F.initPid, F.exit, `${F.exit}.tmp`]) fs.rmSync(path.join(dir, f), { force: true });
    this.clock.untrack(dir);
  }

  /**
   * Resolves with the first of `names` that exists in `dir`: inotify on the directory, plus a poll as a
   * fallback (a watch can miss events on some filesystems, or fail when inotify instances run out).
   */
  private watchFor(dir: string, names: string[], pollMs = 100): { found: Promise<string>; close: () => void } {
    let watcher: fs.FSWatcher | null = null;
    let timer: NodeJS.Timeout | null = null;
    let resolveFn: (n: string) => void = () => {};
    const found = new Promise<string>((r) => (resolveFn = r));
    const close = () => {
      watcher?.close();
      watcher = null;
      if (timer) clearInterval(timer);
      timer = null;
    };
    const check = () => {
      for (const n of names) {
        if (fs.existsSync(path.join(dir, n))) {
          close();
          resolveFn(n);
          return;
        }
      }
    };
    try {
      watcher = fs.watch(dir, { persistent: false }, (_ev, name) => {
        if (name === null || names.includes(String(name))) check();
      });
      watcher.on('error', () => {
        watcher?.close();
        watcher = null;
      });
    } catch { /* poll only */ }
    // Referenced: a pending start() or waitExit() keeps the process alive, like any pending I/O.
    timer = setInterval(check, pollMs);
    check();
    return { found, close };
  }

  // ---------------------------------------------------------------------------- exit

  private readExit(dir: string): ExitStatus | null {
    const p = path.join(dir, F.exit);
    const text = readText(p);
    if (text === null) return null;
    const st = parseExitFile(text);
    if (!st) return null;
    let finishedAt = st.finishedAt;
    if (!finishedAt) {
      try {
        finishedAt = nowRfc3339Nano(fs.statSync(p).mtime);
      } catch {
        finishedAt = nowRfc3339Nano();
      }
    }
    return { exitCode: st.exitCode, finishedAt, oomKilled: false };
  }

  /** Is anything still supervising or running this container (shim alive, or runc's init alive)? */
  private alive(id: string, dir: string): boolean {
    return processMatches(readPidFile(path.join(dir, F.shimPid)), [SHIM, id]) || this.initPid(id) > 0;
  }

  waitExit(id: string, stateDir: string): Promise<ExitStatus> {
    return this.subscribeExit(id, path.resolve(stateDir)).promise;
  }

  /**
   * Exit watching, shared by every waiter on a container: an inotify watch on its state directory (one
   * inotify instance for the whole process: libuv shares it) and one sweep timer for all containers,
   * which re-reads exit files every second in case a watch missed the rename, and every 5 s checks that
   * the shim or the container is still alive: if neither is and no status came (shim killed, machine
   * trouble) the status is reported lost rather than waited for forever.
   */
  private subscribeExit(id: string, dir: string): { promise: Promise<ExitStatus>; cancel: () => void } {
    let sub!: ExitSub;
    const promise = new Promise<ExitStatus>((resolve, reject) => (sub = { resolve, reject }));
    const now = this.readExit(dir);
    if (now) {
      sub.resolve(now);
      return { promise, cancel: () => {} };
    }
    let w = this.exitWatches.get(dir);
    if (!w) {
      const nw: ExitWatch = { id, dir, watcher: null, subs: new Set(), lostSince: 0, badReads: 0 };
      try {
        nw.watcher = fs.watch(dir, { persistent: false }, (_ev, name) => {
          if (name === null || String(name) === F.exit) this.checkExit(nw, false);
        });
        nw.watcher.on('error', () => {
          nw.watcher?.close();
          nw.watcher = null;
        });
      } catch { /* the sweep alone */ }
      this.exitWatches.set(dir, (w = nw));
      if (!this.sweepTimer) this.sweepTimer = setInterval(() => this.sweep(), 1000);
    }
    w.subs.add(sub);
    const ew = w;
    return {
      promise,
      cancel: () => {
        if (!ew.subs.delete(sub)) return;
        sub.reject(new Error('aborted'));
        if (ew.subs.size === 0) this.dropWatch(ew);
      },
    };
  }

  private dropWatch(w: ExitWatch): void {
    w.watcher?.close();
    w.watcher = null;
    if (this.exitWatches.get(w.dir) === w) this.exitWatches.delete(w.dir);
    if (this.exitWatches.size === 0 && this.sweepTimer) {
      clearInterval(this.sweepTimer);
      this.sweepTimer = null;
    }
  }

  private finishWatch(w: ExitWatch, st: ExitStatus): void {
    this.clock.untrack(w.dir);
    this.dropWatch(w);
    for (const s of w.subs) s.resolve(st);
    w.subs.clear();
  }

  /** Settles the waiters of `w` when its exit file is there; `sweeping` also checks liveness. */
  private checkExit(w: ExitWatch, sweeping: boolean, checkAlive = false): void {
    const st = this.readExit(w.dir);
    if (st) return this.finishWatch(w, st);
    const lost = (error: string) => this.finishWatch(w, { exitCode: 255, finishedAt: nowRfc3339Nano(), oomKilled: false, error });
    if (!sweeping) return;
    if (fs.existsSync(path.join(w.dir, F.exit))) {
      // The shim renames the file into place whole: one that does not parse was not written by it.
      if (++w.badReads >= 3) lost(`unreadable exit status file ${path.join(w.dir, F.exit)}`);
      return;
    }
    if (!checkAlive) return;
    if (!fs.existsSync(w.dir)) return lost('container state directory is gone');
    if (this.alive(w.id, w.dir)) {
      w.lostSince = 0;
    } else if (!w.lostSince) {
      w.lostSince = Date.now();
    } else if (Date.now() - w.lostSince >= 4000) {
      lost('the container\'s shim exited without recording its exit status');
    }
  }

  private sweep(): void {
    const checkAlive = ++this.sweeps % 5 === 0;
    for (const w of [...this.exitWatches.values()]) this.checkExit(w, true, checkAlive);
  }

  // ---------------------------------------------------------------------------- signals

  async kill(id: string, signal: string | number = 'SIGTERM'): Promise<void> {
    const sig = normalizeSignal(signal);
    await this.runc(['kill', id, sig]);
    // A frozen container does not die before it is thawed (cgroup v1).
    if ((sig === 'KILL' || sig === '9') && this.frozen(id)) await this.runc(['resume', id]).catch(() => {});
  }

  /** The processes of a running container (its cgroup's members), for `top`. */
  pids(id: string): number[] {
    const cg = this.cgroupsPath(id);
    for (const dir of ['pids', 'memory', 'cpu', 'freezer', 'systemd', 'unified', '']) {
      const text = readText(`/sys/fs/cgroup${dir ? `/${dir}` : ''}${cg}/cgroup.procs`);
      if (text !== null) return text.split('\n').filter(Boolean).map(Number);
    }
    return [];
  }

  private frozen(id: string): boolean {
    const cg = this.cgroupsPath(id);
    const v1 = readText(`/sys/fs/cgroup/freezer${cg}/freezer.state`);
    if (v1 !== null) return v1.trim() !== 'THAWED';
    return readText(`/sys/fs/cgroup${cg}/cgroup.freeze`)?.trim() === '1';
  }

  async stop(id: string, stateDir: string, timeoutSec: number, signal = 'SIGTERM'): Promise<ExitStatus> {
    const dir = path.resolve(stateDir);
    const already = this.readExit(dir);
    if (already) return already;
    const { promise: exit, cancel } = this.subscribeExit(id, dir);
    exit.catch(() => {});
    const orExited = async (e: unknown): Promise<void> => {
      // Not running any more: it exited in the meantime (its status is on the way) or never ran.
      if (this.readExit(dir) || this.alive(id, dir)) return;
      cancel();
      throw e;
    };
    await this.kill(id, signal).catch(orExited);
    if (timeoutSec >= 0) {
      const early = await Promise.race([exit, sleep(timeoutSec * 1000).then(() => null)]);
      if (early) return early;
      this.log.info({ id, timeoutSec, signal }, 'container did not stop in time; killing it');
      await this.kill(id, 'SIGKILL').catch(orExited);
    }
    return exit;
  }

  async pause(id: string): Promise<void> {
    await this.runc(['pause', id]);
  }

  async resume(id: string): Promise<void> {
    await this.runc(['resume', id]);
  }

  // ---------------------------------------------------------------------------- restart

  async adopt(id: string, stateDir: string): Promise<{ running: true; pid: number } | { running: false; status: ExitStatus }> {
    const dir = path.resolve(stateDir);
    const done = this.readExit(dir);
    if (done) return { running: false, status: done };
    const st = await this.state(id);
    if (st && st.status !== 'stopped' && st.pid > 0) {
      this.clock.track(dir);
      return { running: true, pid: st.pid };
    }
    // runc has no live container: the shim is recording its exit right now, or the status is lost.
    if (processMatches(readPidFile(path.join(dir, F.shimPid)), [SHIM, id])) {
      const { promise, cancel } = this.subscribeExit(id, dir);
      const got = await Promise.race([promise.catch(() => null), sleep(5000).then(() => null)]);
      cancel();
      if (got) return { running: false, status: got };
    }
    return {
      running: false,
      status: { exitCode: 255, finishedAt: nowRfc3339Nano(), oomKilled: false, error: 'container is gone and no exit status was recorded' },
    };
  }

  // ---------------------------------------------------------------------------- exec

  exec(id: string, opts: { args: string[]; env?: string[]; cwd?: string; user?: string; tty?: boolean; stdin?: boolean; detach?: boolean }): ChildProcess {
    if (!ID_RE.test(id)) throw new Error(`invalid container id ${JSON.stringify(id)}`);
    if (!opts.args.length) throw new Error('no command given');
    const detach = !!opts.detach;
    const tty = !!opts.tty && !detach; // a detached process has nobody to hold its terminal
    // With --log elsewhere, runc prints its own failure as plain text on stderr ("exec failed: ..."),
    // rather than a logrus line; that is what the caller streams to the user.
    const args = ['--root', this.root, '--log', '/dev/null', 'exec'];
    if (tty) args.push('--tty');
    if (detach) args.push('--detach');
    if (opts.cwd) args.push('--cwd', opts.cwd);
    const env = [...(opts.env ?? [])];
    if (tty && !env.some((e) => e.startsWith('TERM='))) env.push('TERM=xterm');
    for (const e of env) args.push('--env', e);
    if (opts.user) {
      const pid = this.initPid(id);
      const u = resolveUserIn(pid ? `/proc/${pid}/root` : '/nonexistent', opts.user);
      args.push('--user', `${u.uid}:${u.gid}`);
      for (const g of u.additionalGids) args.push('--additional-gids', String(g));
    }
    args.push(id, ...opts.args);
    if (!tty) {
      return spawn(this.runcPath, args, { stdio: detach ? 'ignore' : [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    }
    // runc relays a terminal only from a controlling terminal of its own: script(1) gives it one. Its
    // stdin must not reach EOF early (script would type an EOF into the terminal), so without stdin the
    // pipe stays ours, open until the process ends.
    const cmd = ['exec', shellQuote(this.runcPath), ...args.map(shellQuote)].join(' ');
    const child: ChildProcess = spawn('script', ['-q', '-e', '-E', 'never', '-c', cmd, '/dev/null'], { stdio: 'pipe', env: { ...process.env, SHELL: '/bin/sh' } });
    if (!opts.stdin) {
      const keep = child.stdin;
      child.stdin = null;
      keep?.on('error', () => {});
      child.once('exit', () => keep?.destroy());
    }
    return child;
  }

  // ---------------------------------------------------------------------------- stdin

  private stdinState(dir: string): StdinState {
    let s = this.stdin.get(dir);
    if (!s) this.stdin.set(dir, (s = { holder: null, once: false, running: false, attached: false }));
    return s;
  }

  /** The holder goes once the container runs and (StdinOnce) an attacher has come. */
  private settleHolder(dir: string): void {
    const s = this.stdin.get(dir);
    if (!s || s.holder === null || !s.running) return;
    if (s.once && !s.attached) return;
    fs.closeSync(s.holder);
    s.holder = null;
  }

  private closeStdin(dir: string): void {
    const s = this.stdin.get(dir);
    if (s?.holder !== null && s?.holder !== undefined) fs.closeSync(s.holder);
    this.stdin.delete(dir);
  }

  /**
   * A writer on the container's stdin FIFO (containers with openStdin). Usable before the container
   * starts (what is written waits in the FIFO) and never blocks the daemon: the FIFO is opened read-write
   * (so the open cannot block) and driven non-blocking by libuv.
   */
  openStdin(stateDir: string): Writable {
    const dir = path.resolve(stateDir);
    const fifo = path.join(dir, F.fifo);
    fs.mkdirSync(dir, { recursive: true });
    ensureFifo(fifo);
    const fd = fs.openSync(fifo, fs.constants.O_RDWR);
    const sock = new net.Socket({ fd, readable: false, writable: true });
    const s = this.stdinState(dir);
    // An attacher before the start (the docker CLI writes a piped stdin and half-closes before it even
    // sends start): a FIFO's buffer dies with its last open fd, so hold one until the container reads.
    if (s.holder === null && !s.running) s.holder = fs.openSync(fifo, fs.constants.O_RDWR);
    s.attached = true;
    this.settleHolder(dir);
    return sock;
  }

  // ---------------------------------------------------------------------------- cleanup

  async cleanup(id: string, stateDir: string): Promise<void> {
    const dir = path.resolve(stateDir);
    this.clock.untrack(dir);
    if (fs.existsSync(path.join(this.root, id))) {
      await this.runc(['delete', '-f', id]).catch((e: Error) => {
        if (!/does not exist/.test(e.message)) throw e;
      });
    }
    this.closeStdin(dir);
    unmount(path.join(dir, F.rootfs));
  }

  async remove(id: string, stateDir: string): Promise<void> {
    const dir = path.resolve(stateDir);
    await this.cleanup(id, dir);
    // Never recurse through a mounted rootfs: that would write whiteouts at best.
    if (isMountPoint(path.join(dir, F.rootfs))) throw new Error(`${path.join(dir, F.rootfs)} is still mounted`);
    fs.rmSync(dir, { recursive: true, force: true });
  }

  logPaths(stateDir: string): { stdout: string; stderr: string } {
    const dir = path.resolve(stateDir);
    return { stdout: path.join(dir, F.stdout), stderr: path.join(dir, F.stderr) };
  }
}

/**
 * The init `--init` runs (dockerd's default init-path, `docker-init`, a static tini), looked up as dockerd
 * does: PATH, then docker's libexec directories; a static tini under its own name will do as well.
 */
export function findInit(): string {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/local/libexec/docker', '/usr/libexec/docker', '/usr/local/lib/docker', '/usr/lib/docker', '/usr/bin', '/usr/sbin'];
  for (const name of ['docker-init', 'tini-static']) {
    for (const d of dirs) {
      if (!d.startsWith('/')) continue;
      try {
        fs.accessSync(path.join(d, name), fs.constants.X_OK);
        return fs.realpathSync(path.join(d, name));
      } catch { /* next */ }
    }
  }
  throw new RuncError('exec: "docker-init": executable file not found in $PATH');
}

/** An absolute path for `name`: PATH, then the sbin directories a daemon's PATH may lack; else `name`. */
function findExecutable(name: string): string {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/local/bin', '/usr/bin'];
  for (const d of dirs) {
    if (!d.startsWith('/')) continue;
    try {
      fs.accessSync(path.join(d, name), fs.constants.X_OK);
      return path.join(d, name);
    } catch { /* next */ }
  }
  return name;
}

/** runc kill's signal argument: "SIGTERM", "TERM", "15" and 15 all work; the SIG prefix is dropped. */
export function normalizeSignal(signal: string | number): string {
  if (typeof signal === 'number') return String(signal);
  const s = signal.trim().toUpperCase();
  if (/^[0-9]+$/.test(s)) return s;
  return s.startsWith('SIG') ? s.slice(3) : s;
}
