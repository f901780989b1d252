// The Docker Engine API (the subset loom implements) over a unix socket, with node:http.
// Streams (attach, exec, logs) use Docker's framing: an 8-byte header [stream, 0, 0, 0, size32be] per
// chunk when the container has no TTY, raw bytes otherwise. attach and exec start hijack the connection
// (HTTP 101 Upgrade: tcp), as the docker CLI expects.
import http from 'node:http';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import type net from 'node:net';
import type { Daemon } from '../daemon.ts';
import { LoomError, invalidParameter, messageOf, notFound, statusOf } from '../util/errors.ts';
import { inspectContainer, inspectImage, inspectNetwork, listContainer, listImage } from './render.ts';
import { followLogs, logQuery, readLogs, serveLogs } from './logs.ts';
import { listContainers } from './psfilter.ts';
import { ExecFailureSniffer } from '../runtime/execfail.ts';
import { sample as statsSample } from '../runtime/stats.ts';

const ZERO_READ = '0001-01-01T00:00:00Z';
import type { ContainerRecord } from '../core/types.ts';
import { filterNetworks, pruneFilter } from '../core/networks.ts';

export const API_VERSION = '1.50';
export const MIN_API_VERSION = '1.24';
export const LOOM_VERSION = '0.1.0';

type Params = Record<string, string>;
interface Ctx {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  params: Params;
  query: URLSearchParams;
  body: () => Promise<any>;
  /** set for requests that arrived as HTTP Upgrade (hijack) */
  socket?: net.Socket;
  head?: Buffer;
}
type Handler = (d: Daemon, ctx: Ctx) => Promise<unknown> | unknown;

const routes: { method: string; re: RegExp; keys: string[]; fn: Handler }[] = [];
function route(method: string, pattern: string, fn: Handler): void {
  const keys: string[] = [];
  const re = new RegExp('^' + pattern.replace(/\{(\w+)(\*)?\}/g, (_, k, star) => {
    keys.push(k);
    return star ? '(.+)' : '([^/]+)';
  }) + '$');
  routes.push({ method, re, keys, fn });
}

const bool = (q: URLSearchParams, k: string) => ['1', 'true', 'True'].includes(q.get(k) ?? '');
function filters(q: URLSearchParams): Record<string, string[]> {
  const raw = q.get('filters');
  if (!raw) return {};
  let f: Record<string, string[] | Record<string, boolean>>;
  try {
    f = JSON.parse(raw);
  } catch {
    throw invalidParameter(`invalid filter: ${raw}`);
  }
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(f)) out[k] = Array.isArray(v) ? v : Object.keys(v).filter((x) => v[x]);
  return out;
}

function json(res: http.ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value) + '\n';
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function noContent(res: http.ServerResponse, status = 204): void {
  res.writeHead(status);
  res.end();
}

export function frame(stream: 0 | 1 | 2, data: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h[0] = stream;
  h.writeUInt32BE(data.length, 4);
  return Buffer.concat([h, data]);
}

// ---------------------------------------------------------------------------- system

route('GET', '/_ping', (_d, { res }) => {
  res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-cache, no-store, must-revalidate', Pragma: 'no-cache' });
  res.end('OK');
});
route('HEAD', '/_ping', (_d, { res }) => {
  res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': '0' });
  res.end();
});

route('GET', '/version', (d) => versionInfo(d));

function versionInfo(_d: Daemon) {
  return {
    Platform: { Name: 'loom' },
    Components: [{ Name: 'Engine', Version: LOOM_VERSION, Details: { ApiVersion: API_VERSION, MinAPIVersion: MIN_API_VERSION, Os: 'linux', Arch: 'amd64', KernelVersion: os.release() } }],
    Version: LOOM_VERSION,
    ApiVersion: API_VERSION,
    MinAPIVersion: MIN_API_VERSION,
    GitCommit: 'loom',
    GoVersion: `node ${process.version}`,
    Os: 'linux',
    Arch: 'amd64',
    KernelVersion: os.release(),
    BuildTime: '2026-11-22T00:00:00.000000000+00:00',
  };
}

route('GET', '/info', (d) => {
  const cs = d.containers.list();
  const running = cs.filter((c) => c.state.Running && !c.state.Paused).length;
  const paused = cs.filter((c) => c.state.Paused).length;
  return {
    ID: d.id,
    Containers: cs.length,
    ContainersRunning: running,
    ContainersPaused: paused,
    ContainersStopped: cs.length - running - paused,
    Images: d.images.list().length,
    Driver: 'overlay2',
    DriverStatus: [['Backing Filesystem', 'overlay']],
    Plugins: { Volume: [], Network: d.networks.driverNames(), Authorization: null, Log: ['json-file'] },
    MemoryLimit: false, SwapLimit: false, CpuCfsPeriod: false, CpuCfsQuota: false, CPUShares: false, CPUSet: false, PidsLimit: false,
    IPv4Forwarding: true, BridgeNfIptables: false, BridgeNfIp6tables: false, Debug: d.opts.logLevel === 'debug',
    NFd: 0, OomKillDisable: false, NGoroutines: 0, SystemTime: new Date().toISOString(), LoggingDriver: 'json-file',
    CgroupDriver: 'cgroupfs', CgroupVersion: '1', NEventsListener: 0, KernelVersion: os.release(),
    OperatingSystem: 'loom on Linux', OSVersion: '', OSType: 'linux', Architecture: 'x86_64', IndexServerAddress: '',
    RegistryConfig: { IndexConfigs: {}, InsecureRegistryCIDRs: [], Mirrors: [] },
    NCPU: os.cpus().length, MemTotal: os.totalmem(), GenericResources: null, DockerRootDir: d.opts.dataRoot,
    HttpProxy: '', HttpsProxy: '', NoProxy: '', Name: os.hostname(), Labels: [], ExperimentalBuild: false,
    ServerVersion: LOOM_VERSION, Runtimes: { runc: { path: 'runc' } }, DefaultRuntime: 'runc',
    Swarm: { NodeID: '', NodeAddr: '', LocalNodeState: 'inactive', ControlAvailable: false, Error: '', RemoteManagers: null },
    // dockerd's pre-swarm cluster fields (API < 1.40), there when the daemon runs with --cluster-store
    ...(d.opts.clusterStore ? { ClusterStore: d.opts.clusterStore, ClusterAdvertise: d.opts.clusterAdvertise ?? '' } : {}),
    LiveRestoreEnabled: true, Isolation: '', InitBinary: '', ContainerdCommit: { ID: '' }, RuncCommit: { ID: '' }, InitCommit: { ID: '' },
    SecurityOptions: [], Warnings: null,
    DefaultAddressPools: d.opts.pools.map((p) => ({ Base: p.base, Size: p.size })),
  };
});

route('GET', '/events', (d, { req, res, query }) => {
  const f = filters(query);
  const since = query.get('since');
  const until = query.get('until');
  const untilSec = until ? Number(until) : undefined;
  const match = (e: { Type: string; Action: string; Actor: { ID: string; Attributes: Record<string, string> } }) =>
    (!f.type || f.type.includes(e.Type)) &&
    (!f.event || f.event.some((x) => e.Action === x || e.Action.startsWith(`${x}:`))) &&
    (!f.container || (e.Type === 'container' && f.container.some((x) => e.Actor.ID.startsWith(x) || e.Actor.Attributes.name === x))) &&
    (!f.network || (e.Type === 'network' && f.network.some((x) => e.Actor.ID.startsWith(x) || e.Actor.Attributes.name === x)));
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.flushHeaders();
  if (since) for (const e of d.events.since(Number(since))) if (match(e) && (!untilSec || e.time <= untilSec)) res.write(JSON.stringify(e) + '\n');
  if (untilSec !== undefined && untilSec * 1000 <= Date.now()) {
    res.end();
    return STREAMED;
  }
  const off = d.events.subscribe((e) => {
    if (match(e)) res.write(JSON.stringify(e) + '\n');
  });
  let timer: NodeJS.Timeout | undefined;
  if (untilSec !== undefined) timer = setTimeout(() => res.end(), untilSec * 1000 - Date.now());
  req.socket.on('close', () => {
    off();
    if (timer) clearTimeout(timer);
  });
  return STREAMED;
});

// ---------------------------------------------------------------------------- containers

const netLookup = (d: Daemon) => (n: string) => d.networks.find(n);

route('GET', '/containers/json', (d, { query }) => {
  const nets = netLookup(d);
  const summary = (c: ContainerRecord) => listContainer(c, d.images.find(c.imageId), nets);
  const cs = listContainers(d.containers.list(), {
    all: bool(query, 'all'), limit: Number(query.get('limit') ?? -1), filters: filters(query), summary,
    imageId: (r) => d.images.find(r)?.id,
  });
  return cs.map(summary);
});

route('POST', '/containers/create', async (d, { query, body, res }) => {
  const b = await body();
  const c = d.containers.create(b ?? {}, query.get('name') ?? undefined);
  // Docker's verifyPlatformContainerSettings: host networking has no ports of its own to publish
  const warnings = c.networkMode === 'host' && Object.keys(c.hostConfig.PortBindings ?? {}).length ? ['Published ports are discarded when using host network mode'] : [];
  json(res, 201, { Id: c.id, Warnings: warnings });
  return STREAMED;
});

route('GET', '/containers/{id}/json', (d, { params }) => {
  const c = d.containers.get(params.id!);
  return inspectContainer(c, d.images.find(c.imageId), netLookup(d));
});

route('POST', '/containers/{id}/start', async (d, { params, res }) => {
  await d.containers.start(params.id!);
  noContent(res);
  return STREAMED;
});

route('POST', '/containers/{id}/stop', async (d, { params, query, res }) => {
  const t = query.get('t') ?? query.get('timeout');
  await d.containers.stop(params.id!, t !== null ? Number(t) : undefined, query.get('signal') ?? undefined);
  noContent(res);
  return STREAMED;
});

route('POST', '/containers/{id}/restart', async (d, { params, query, res }) => {
  const t = query.get('t') ?? query.get('timeout');
  await d.containers.restart(params.id!, t !== null ? Number(t) : undefined, query.get('signal') ?? undefined);
  noContent(res);
  return STREAMED;
});

route('POST', '/containers/{id}/kill', async (d, { params, query, res }) => {
  await d.containers.kill(params.id!, query.get('signal') || 'SIGKILL');
  noContent(res);
  return STREAMED;
});

route('POST', '/containers/{id}/pause', async (d, { params, res }) => {
  await d.containers.pause(params.id!);
  noContent(res);
  return STREAMED;
});

route('POST', '/containers/{id}/unpause', async (d, { params, res }) => {
  await d.containers.unpause(params.id!);
  noContent(res);
  return STREAMED;
});

route('POST', '/containers/{id}/wait', async (d, { params, query, res }) => {
  const cond = (query.get('condition') || 'not-running') as 'not-running' | 'next-exit' | 'removed';
  if (!['not-running', 'next-exit', 'removed'].includes(cond)) throw invalidParameter(`invalid condition: ${cond}`);
  const p = d.containers.wait(params.id!, cond);
  // Headers go out at once so the client knows the wait is registered before it starts the container.
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.flushHeaders();
  const r = await p;
  res.end(JSON.stringify(r) + '\n');
  return STREAMED;
});

route('DELETE', '/containers/{id}', async (d, { params, query, res }) => {
  await d.containers.remove(params.id!, bool(query, 'force'));
  noContent(res);
  return STREAMED;
});

route('POST', '/containers/{id}/rename', async (d, { params, query, res }) => {
  await d.containers.rename(params.id!, query.get('name') ?? '');
  noContent(res);
  return STREAMED;
});

route('POST', '/containers/{id}/update', async (d, { params, body }) => d.containers.update(params.id!, (await body()) ?? {}));

/**
 * `docker top`: `ps` with the client's arguments on the host, its rows filtered to the container's
 * processes by the PID column, the last column (the command) kept whole, as moby's parsePSOutput.
 */
async function topOf(pids: number[], psArgs: string): Promise<{ Titles: string[]; Processes: string[][] }> {
  const ps = (args: string[]) => new Promise<string[]>((resolve, reject) => {
    execFile('ps', args, { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new LoomError(500, `Error running ps: ${String(stderr || err.message).trim()}`));
      else resolve(stdout.split('\n').filter((l) => l.trim()));
    });
  });
  const args = psArgs.split(/\s+/).filter(Boolean);
  let lines = await ps(args);
  let titles = (lines[0] ?? '').trim().split(/\s+/);
  let pidCol = titles.indexOf('PID');
  if (pidCol < 0 && /(^|\s)-?o(\s|$)|(^|\s)-o\S|--format/.test(psArgs)) {
    // custom columns without PID (`top c -o comm`): as moby, ps selects the container's processes itself
    lines = pids.length ? await ps([...args, '-q', pids.join(',')]) : lines.slice(0, 1);
    titles = (lines[0] ?? '').trim().split(/\s+/);
    pidCol = -1;
  } else if (pidCol < 0) {
    throw new LoomError(500, 'Couldn\'t find PID field in ps output');
  }
  const want = new Set(pids);
  const processes: string[][] = [];
  for (const line of lines.slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (pidCol >= 0 && !want.has(Number(fields[pidCol]))) continue;
    processes.push([...fields.slice(0, titles.length - 1), fields.slice(titles.length - 1).join(' ')]);
  }
  return { Titles: titles, Processes: processes };
}

/** h and w of a resize, as moby parses them (strconv.Atoi: 400 with its words). */
function windowSize(query: URLSearchParams): { rows: number; cols: number } {
  const dim = (k: string) => {
    const v = query.get(k) ?? '';
    if (!/^[+-]?\d+$/.test(v)) throw invalidParameter(`strconv.Atoi: parsing ${JSON.stringify(v)}: invalid syntax`);
    const n = Number(v);
    if (n < 0 || n > 65535) throw invalidParameter(`invalid terminal size ${k}=${v}`);
    return n;
  };
  return { rows: dim('h'), cols: dim('w') };
}

route('POST', '/containers/prune', async (d, { query }) => {
  const keep = pruneFilter(filters(query));
  const deleted: string[] = [];
  for (const c of d.containers.list()) {
    if (c.state.Running || c.state.Paused || c.state.Restarting) continue;
    if (!keep({ created: c.created, labels: c.config.Labels ?? {} })) continue;
    try {
      await d.containers.remove(c.id, false);
      deleted.push(c.id);
    } catch (e) {
      // started again, or removed, since the list: as Docker's prune, it is skipped
      if (!(e instanceof LoomError) || (e.status !== 409 && e.status !== 404)) throw e;
    }
  }
  return { ContainersDeleted: deleted.length ? deleted : null, SpaceReclaimed: 0 };
});

route('GET', '/containers/{id}/stats', async (d, { params, query, req, res }) => {
  const c0 = d.containers.get(params.id!);
  const stream = query.get('stream') === null ? true : bool(query, 'stream');
  const oneShot = bool(query, 'one-shot');
  const take = (pre?: ReturnType<typeof statsSample>) => {
    const c = d.containers.find(c0.id);
    return statsSample(c0.id, c?.name ?? c0.name, d.containers.runc.cgroupsPath(c0.id), c?.state.Running ? c.state.Pid : 0, pre);
  };
  res.writeHead(200, { 'Content-Type': 'application/json' });
  let last = take();
  if (!stream) {
    // as moby: without one-shot, wait for a second sample so that the CPU share can be computed
    if (!oneShot && last.read !== ZERO_READ) {
      await new Promise((r) => setTimeout(r, 1000));
      last = take(last);
    }
    res.end(JSON.stringify(last) + '\n');
    return STREAMED;
  }
  res.write(JSON.stringify(last) + '\n');
  let closed = false;
  req.on('close', () => (closed = true));
  res.on('close', () => (closed = true));
  while (!closed && last.read !== ZERO_READ) {
    await new Promise((r) => setTimeout(r, 1000));
    if (closed) break;
    last = take(last);
    res.write(JSON.stringify(last) + '\n');
  }
  res.end();
  return STREAMED;
});

route('GET', '/containers/{id}/top', async (d, { params, query }) => {
  const c = d.containers.get(params.id!);
  if (!c.state.Running) throw new LoomError(409, `container ${c.id} is not running`);
  return topOf(d.containers.runc.pids(c.id), query.get('ps_args') || '-ef');
});

route('POST', '/containers/{id}/resize', (d, { params, query, res }) => {
  const { rows, cols } = windowSize(query);
  d.containers.resize(params.id!, rows, cols);
  noContent(res, 200);
  return STREAMED;
});

route('GET', '/containers/{id}/logs', async (d, { params, query, req, res }) => {
  const lq = logQuery(query, (k) => bool(query, k));
  const c = d.containers.get(params.id!);
  const tty = c.config.Tty;
  res.writeHead(200, { 'Content-Type': tty ? 'application/vnd.docker.raw-stream' : 'application/vnd.docker.multiplexed-stream' });
  res.flushHeaders();
  const paths = d.containers.runc.logPaths(c.stateDir);
  const write = (stream: 1 | 2, data: Buffer) => res.write(tty ? data : frame(stream, data));
  await serveLogs(d, c.id, { ...paths, dir: c.stateDir }, lq, write, req.socket);
  res.end();
  return STREAMED;
});

route('POST', '/containers/{id}/attach', async (d, ctx) => {
  const c = d.containers.get(ctx.params.id!);
  const { query } = ctx;
  const sock = hijack(ctx, c.config.Tty);
  const paths = d.containers.runc.logPaths(c.stateDir);
  const write = (stream: 1 | 2, data: Buffer) => {
    if (!sock.destroyed) sock.write(c.config.Tty ? data : frame(stream, data));
  };
  if (bool(query, 'stdin') && c.config.OpenStdin) {
    try {
      const stdin = d.containers.runc.openStdin(c.stateDir);
      stdin.on('error', () => {});
      sock.pipe(stdin);
    } catch (e) {
      d.log.warn({ id: c.id, err: messageOf(e) }, 'cannot open container stdin');
    }
  }
  if (bool(query, 'logs')) readLogs({ stdout: bool(query, 'stdout') ? paths.stdout : undefined, stderr: bool(query, 'stderr') ? paths.stderr : undefined }, write);
  if (!bool(query, 'stream')) {
    sock.end();
    return STREAMED;
  }
  // Stream from the current end of the logs until the container's process ends.
  const offsets = { stdout: fileSize(paths.stdout), stderr: fileSize(paths.stderr) };
  await followLogs(d, c.id, { stdout: bool(query, 'stdout') ? paths.stdout : undefined, stderr: bool(query, 'stderr') ? paths.stderr : undefined }, offsets, write, sock, true);
  sock.end();
  return STREAMED;
});

function fileSize(p: string): number {
  try {
    return fs.statSync(p).size;
  } catch {
    return 0;
  }
}

/** Takes over the connection as Docker does for attach/exec: 101 when the client asked to upgrade. */
function hijack(ctx: Ctx, tty: boolean): net.Socket {
  const type = tty ? 'application/vnd.docker.raw-stream' : 'application/vnd.docker.multiplexed-stream';
  if (ctx.socket) {
    ctx.socket.write(`HTTP/1.1 101 UPGRADED\r\nContent-Type: ${type}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`);
    if (ctx.head?.length) ctx.socket.unshift(ctx.head);
    return ctx.socket;
  }
  const sock = ctx.req.socket;
  ctx.res.detachSocket?.(sock);
  sock.write(`HTTP/1.1 200 OK\r\nContent-Type: ${type}\r\n\r\n`);
  return sock;
}

// ---------------------------------------------------------------------------- exec

route('POST', '/containers/{id}/exec', async (d, { params, body, res }) => {
  const id = d.containers.execCreate(params.id!, (await body()) ?? {});
  json(res, 201, { Id: id });
  return STREAMED;
});

route('POST', '/exec/{id}/start', async (d, ctx) => {
  const ex = d.containers.getExec(ctx.params.id!);
  const b = (await ctx.body()) ?? {};
  if (ex.ExitCode !== null) throw new LoomError(409, `exec command ${ex.ID} has already run`);
  if (ex.Running) throw new LoomError(409, `exec command ${ex.ID} is already running`);
  const c = d.containers.get(ex.containerId);
  if (!c.state.Running) throw new LoomError(409, `container ${c.id} is not running`);
  const tty = b.Tty ?? ex.Tty;
  const child = d.containers.runc.exec(c.id, { args: ex.Cmd, env: ex.Env, cwd: ex.WorkingDir || undefined, user: ex.User || undefined, tty, stdin: ex.AttachStdin, detach: !!b.Detach });
  ex.Running = true;
  ex.Pid = child.pid ?? 0;
  let sock: net.Socket | undefined;
  const out = (stream: 1 | 2, chunk: Buffer) => { if (sock && !sock.destroyed) sock.write(tty ? chunk : frame(stream, chunk)); };
  // runc's own "exec failed: ..." becomes Docker's message on stdout and exit code (126/127)
  const sniff = new ExecFailureSniffer((chunk) => out(tty ? 1 : 2, chunk));
  const finished = new Promise<void>((resolve) => {
    child.on('close', (code: number | null, signal: NodeJS.Signals | null) => {
      ex.Running = false;
      ex.ExitCode = code ?? (signal ? 128 + (os.constants.signals[signal as keyof typeof os.constants.signals] ?? 0) : 255);
      const failed = sniff.finish(ex.ExitCode);
      if (failed) {
        ex.ExitCode = failed.exitCode;
        out(1, Buffer.from(`${failed.message}\r\n`));
      }
      d.events.publish('container', 'exec_die', c.id, { name: c.name, execID: ex.ID, exitCode: String(ex.ExitCode) });
      resolve();
    });
    child.on('error', () => {
      ex.Running = false;
      ex.ExitCode = 126;
      resolve();
    });
  });
  d.events.publish('container', `exec_start: ${ex.Cmd.join(' ')}`, c.id, { name: c.name, execID: ex.ID });
  if (b.Detach) {
    child.stdout?.resume();
    child.stderr?.resume();
    noContent(ctx.res, 200);
    return STREAMED;
  }
  sock = hijack(ctx, tty);
  child.stdout?.on('data', (chunk: Buffer) => (tty ? sniff.feed(chunk) : out(1, chunk)));
  child.stderr?.on('data', (chunk: Buffer) => sniff.feed(chunk));
  if (ex.AttachStdin && child.stdin) {
    sock.pipe(child.stdin);
    child.stdin.on('error', () => {});
  } else child.stdin?.end();
  sock.on('error', () => {});
  await finished;
  sock.end();
  return STREAMED;
});

route('GET', '/exec/{id}/json', (d, { params }) => {
  const ex = d.containers.getExec(params.id!);
  return {
    ID: ex.ID, Running: ex.Running, ExitCode: ex.ExitCode, ProcessConfig: { tty: ex.Tty, entrypoint: ex.Cmd[0], arguments: ex.Cmd.slice(1), privileged: ex.Privileged, user: ex.User },
    OpenStdin: ex.AttachStdin, OpenStderr: ex.AttachStderr, OpenStdout: ex.AttachStdout, CanRemove: false, ContainerID: ex.containerId, DetachKeys: '', Pid: ex.Pid,
  };
});

route('POST', '/exec/{id}/resize', async (d, { params, query, res }) => {
  const { rows, cols } = windowSize(query);
  await d.containers.resizeExec(params.id!, rows, cols);
  noContent(res, 200);
  return STREAMED;
});

// ---------------------------------------------------------------------------- images

route('POST', '/images/create', async (d, { query, req, res }) => {
  const src = query.get('fromSrc');
  if (!src) {
    const from = query.get('fromImage') ?? '';
    const tag = query.get('tag') || 'latest';
    // A "pull" of an image that is here already succeeds as Docker's does when it is up to date: the docker
    // CLI pulls after any 404 from create (an unknown network, say) and then retries the create.
    const local = d.images.find(`${from.replace(/^docker\.io\/(library\/)?/, '')}:${tag}`);
    if (local) {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(`${JSON.stringify({ status: `Pulling from library/${from}`, id: tag })}\n${JSON.stringify({ status: `Status: Image is up to date for ${from}:${tag}` })}\n`);
      return STREAMED;
    }
    throw notFound(`pull access denied for ${from}: loom has no registry access; import a root filesystem with 'loom import' instead`);
  }
  if (src !== '-') throw invalidParameter(`importing from a URL is not supported: ${src}`);
  const img = await d.images.import(req, { repo: query.get('repo') ?? undefined, tag: query.get('tag') ?? undefined, changes: query.getAll('changes'), message: query.get('message') ?? undefined });
  d.events.publish('image', 'import', img.id, { name: img.name });
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ status: img.id }) + '\n');
  return STREAMED;
});

route('GET', '/images/json', (d, { query }) => {
  const f = filters(query);
  return d.images.list().map((i) => listImage(i, d.images.tagsOf(i.id)))
    .filter((i) => !f.reference || f.reference.some((r) => i.RepoTags.some((t) => t === r || t.startsWith(`${r}:`))))
    .reverse();
});

route('GET', '/images/{name*}/json', (d, { params }) => {
  const i = d.images.get(params.name!);
  return inspectImage(i, d.images.tagsOf(i.id));
});

route('POST', '/images/{name*}/tag', (d, { params, query, res }) => {
  const i = d.images.get(params.name!);
  const repo = query.get('repo');
  if (!repo) throw invalidParameter('repository name must have at least one component');
  d.images.tag(i.id, `${repo}:${query.get('tag') || 'latest'}`);
  noContent(res, 201);
  return STREAMED;
});

/** `image prune`: dangling images (no tag) by default, with dangling=false every image no container uses. */
route('POST', '/images/prune', (d, { query }) => {
  const { dangling, ...rest } = filters(query);
  const danglingOnly = !(dangling ?? []).some((v) => v === 'false' || v === '0');
  const keep = pruneFilter(rest);
  const deleted: { Untagged?: string; Deleted?: string }[] = [];
  let reclaimed = 0;
  for (const img of d.images.list()) {
    if (danglingOnly && d.images.tagsOf(img.id).length) continue;
    if (d.containers.usesImage(img.id) || !keep({ created: img.created, labels: img.config.Labels ?? {} })) continue;
    deleted.push(...d.images.remove(img.id, () => undefined, true));
    reclaimed += img.size;
  }
  return { ImagesDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed };
});

/** `system prune` asks for the build cache too: loom builds nothing, so there is none. */
route('POST', '/build/prune', () => ({ CachesDeleted: null, SpaceReclaimed: 0 }));

route('DELETE', '/images/{name*}', (d, { params, query }) => {
  return d.images.remove(params.name!, (id) => d.containers.usesImage(id), bool(query, 'force'));
});

// ---------------------------------------------------------------------------- networks

route('GET', '/networks', (d, { query }) => {
  // The list form carries no Containers (Docker stopped filling them in API 1.28).
  return filterNetworks(d.networks.list(), filters(query), (n) => d.containers.attachedTo(n.id).length)
    .map((n) => inspectNetwork(n, []));
});

route('GET', '/networks/{id}', (d, { params, query }) => {
  const n = d.networks.get(params.id!);
  return inspectNetwork(n, n.driver === 'host' || n.driver === 'null' ? d.containers.list() : d.containers.attachedTo(n.id), bool(query, 'verbose'));
});

route('POST', '/networks/create', async (d, { body, res }) => {
  const n = await d.networks.create((await body()) ?? {});
  d.events.publish('network', 'create', n.id, { name: n.name, type: n.driver });
  json(res, 201, { Id: n.id, Warning: '' });
  return STREAMED;
});

route('DELETE', '/networks/{id}', async (d, { params, res }) => {
  const n = d.networks.get(params.id!);
  await d.networks.remove(n, d.containers.attachedTo(n.id).map((c) => ({ name: c.name, endpointId: c.endpoints[n.name]?.id ?? '' })));
  d.events.publish('network', 'destroy', n.id, { name: n.name, type: n.driver });
  noContent(res);
  return STREAMED;
});

route('POST', '/networks/{id}/connect', async (d, { params, body, res }) => {
  const b = (await body()) ?? {};
  if (!b.Container) throw invalidParameter('a container name or id is required');
  await d.containers.connect(params.id!, b.Container, b.EndpointConfig ?? {});
  noContent(res, 200);
  return STREAMED;
});

route('POST', '/networks/{id}/disconnect', async (d, { params, body, res }) => {
  const b = (await body()) ?? {};
  if (!b.Container) throw invalidParameter('a container name or id is required');
  await d.containers.disconnect(params.id!, b.Container, !!b.Force);
  noContent(res, 200);
  return STREAMED;
});

route('POST', '/networks/prune', async (d, { query }) => {
  const keep = pruneFilter(filters(query));
  const deleted: string[] = [];
  for (const n of d.networks.list()) {
    if (['bridge', 'host', 'none'].includes(n.name) || !keep(n)) continue;
    // as Docker: networks without endpoints go, even when stopped containers still name them
    if (d.containers.attachedTo(n.id).length) continue;
    try {
      await d.networks.remove(n, []);
    } catch (e) {
      // as Docker's prune: a network that may not go (an overlay with endpoints on other hosts) is skipped
      if (e instanceof LoomError && e.status === 403) continue;
      throw e;
    }
    d.events.publish('network', 'destroy', n.id, { name: n.name, type: n.driver });
    deleted.push(n.name);
  }
  return { NetworksDeleted: deleted };
});

// ---------------------------------------------------------------------------- dispatch

const STREAMED = Symbol('streamed');

async function readBody(req: http.IncomingMessage): Promise<any> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const s = Buffer.concat(chunks).toString('utf8');
  if (!s.trim()) return undefined;
  try {
    return JSON.parse(s);
  } catch {
    throw invalidParameter('invalid JSON in request body');
  }
}

/** A hijacked request's body arrives with the raw stream: take Content-Length bytes, keep the rest. */
async function readUpgradeBody(ctx: Ctx): Promise<any> {
  const len = Number(ctx.req.headers['content-length'] ?? 0);
  let buf = ctx.head ?? Buffer.alloc(0);
  while (buf.length < len) {
    const chunk = await new Promise<Buffer | null>((resolve) => {
      const onData = (b: Buffer) => { cleanup(); resolve(b); };
      const onEnd = () => { cleanup(); resolve(null); };
      const cleanup = () => { ctx.socket!.off('data', onData); ctx.socket!.off('end', onEnd); ctx.socket!.pause(); };
      ctx.socket!.on('data', onData);
      ctx.socket!.on('end', onEnd);
      ctx.socket!.resume();
    });
    if (!chunk) break;
    buf = Buffer.concat([buf, chunk]);
  }
  ctx.head = buf.subarray(len);
  const s = buf.subarray(0, len).toString('utf8');
  if (!s.trim()) return undefined;
  try {
    return JSON.parse(s);
  } catch {
    throw invalidParameter('invalid JSON in request body');
  }
}

async function dispatch(d: Daemon, req: http.IncomingMessage, res: http.ServerResponse, socket?: net.Socket, head?: Buffer): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://loom');
  let p = url.pathname;
  const vm = /^\/v(\d+\.\d+)(\/.*)$/.exec(p);
  if (vm) {
    if (Number(vm[1]) < Number(MIN_API_VERSION)) {
      return fail(res, socket, 400, `client version ${vm[1]} is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`);
    }
    p = vm[2]!;
  }
  const method = req.method === 'HEAD' && p !== '/_ping' ? 'GET' : req.method!;
  let found: { fn: Handler; params: Params } | undefined;
  let pathMatched = false;
  for (const r of routes) {
    const m = r.re.exec(p);
    if (!m) continue;
    pathMatched = true;
    if (r.method !== method) continue;
    const params: Params = {};
    r.keys.forEach((k, i) => (params[k] = decodeURIComponent(m[i + 1]!)));
    found = { fn: r.fn, params };
    break;
  }
  if (!found) return fail(res, socket, pathMatched ? 405 : 404, pathMatched ? 'method not allowed' : `page not found`);
  const ctx: Ctx = { req, res, params: found.params, query: url.searchParams, body: () => readBody(req), socket, head };
  if (socket) ctx.body = () => readUpgradeBody(ctx);
  const t0 = process.hrtime.bigint();
  try {
    const out = await found.fn(d, ctx);
    if (out !== STREAMED && !res.headersSent) json(res, 200, out);
    d.log.debug({ method: req.method, path: p, ms: Number(process.hrtime.bigint() - t0) / 1e6 }, 'api');
  } catch (e) {
    const status = statusOf(e);
    if (status >= 500) d.log.error({ method: req.method, path: p, err: messageOf(e), stack: (e as Error).stack }, 'api error');
    else d.log.debug({ method: req.method, path: p, status, err: messageOf(e) }, 'api refused');
    if (status === 304) {
      if (!res.headersSent) noContent(res, 304);
      return;
    }
    fail(res, socket, status, messageOf(e));
  }
}

function fail(res: http.ServerResponse, socket: net.Socket | undefined, status: number, message: string): void {
  const body = JSON.stringify({ message }) + '\n';
  if (socket) {
    socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'Error'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    return;
  }
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

export function createApiServer(d: Daemon): http.Server {
  const server = http.createServer({ keepAliveTimeout: 5000 }, (req, res) => {
    res.setHeader('Api-Version', API_VERSION);
    res.setHeader('Docker-Experimental', 'false');
    res.setHeader('Ostype', 'linux');
    res.setHeader('Server', `loom/${LOOM_VERSION} (linux)`);
    void dispatch(d, req, res);
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    socket.on('error', () => {});
    const res = new http.ServerResponse(req);
    void dispatch(d, req, res, socket, head);
  });
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  // Every connection, also hijacked ones (attach, exec, events) that closeAllConnections() does not know
  // about: a daemon that stops must not wait for clients that never hang up.
  const conns = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    conns.add(s);
    s.once('close', () => conns.delete(s));
  });
  const close = server.close.bind(server);
  server.close = ((cb?: (err?: Error) => void) => {
    close(cb);
    for (const s of conns) s.destroy();
    return server;
  }) as typeof server.close;
  return server;
}

export { STREAMED };
