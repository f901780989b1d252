// Containers: create, lifecycle, inspect, logs, attach, stats, top, resize, prune.
import { execFile } from 'node:child_process';
import type { Daemon } from '../../daemon.ts';
import { route, STREAMED, bool, filters, int, json, noContent } from '../router.ts';
import { frame, hijack } from '../router.ts';
import { LoomError, invalidParameter, messageOf } from '../../util/errors.ts';
import { inspectContainer, listContainer } from '../render.ts';
import { followLogs, logQuery, readLogs, serveLogs } from '../logs.ts';
import { listContainers } from '../psfilter.ts';
import { sample as statsSample } from '../../runtime/stats.ts';
import type { ContainerRecord } from '../../core/types.ts';
import { pruneFilter } from '../../core/networks.ts';
import { readTail } from '../../runtime/logclock.ts';
import { validateBody } from '../schemas.ts';
import { checkCreateConfig, mergeLogConfig } from '../configcheck.ts';
import { parseLogPolicy, writeLogPolicy } from '../../runtime/logtrim.ts';

const ZERO_READ = '0001-01-01T00:00:00Z';
const netLookup = (d: Daemon) => (n: string) => d.networks.find(n);

route('GET', '/containers/json', (d, { query }) => {
  const nets = netLookup(d);
  const summary = (c: ContainerRecord) => listContainer(c, d.images.find(c.imageId), nets);
  const cs = listContainers(d.containers.list(), {
    all: bool(query, 'all'), limit: int(query, 'limit', -1), filters: filters(query), summary,
    imageId: (r) => d.images.find(r)?.id,
  });
  return cs.map(summary);
});

route('POST', '/containers/create', async (d, { query, body, res }) => {
  const b = validateBody('containerCreate', await body());
  checkCreateConfig(b);
  // the daemon's --log-opt defaults are part of the container's config, as dockerd keeps them
  const logConfig = mergeLogConfig(b.HostConfig?.LogConfig, d.opts.logOpts ?? {});
  if (b.HostConfig && typeof b.HostConfig === 'object') b.HostConfig.LogConfig = logConfig;
  else b.HostConfig = { LogConfig: logConfig };
  const c = d.containers.create(b, query.get('name') ?? undefined);
  writeLogPolicy(c.stateDir, parseLogPolicy(logConfig.Config));
  // Docker's verifyPlatformContainerSettings: host networking has no ports of its own to publish
  const warnings = c.networkMode === 'host' && Object.keys(c.hostConfig.PortBindings ?? {}).length ? ['Published ports are discarded when using host network mode'] : [];
  json(res, 201, { Id: c.id, Warnings: warnings });
  return STREAMED;
});

route('GET', '/containers/{id}/json', (d, { params }) => {
  const c = d.containers.get(params.id!);
  const img = d.images.find(c.imageId);
  // GraphDriver.Data.LowerDir: the image's layer directories, top first
  return inspectContainer(c, img?.layers ? { ...img, rootfs: img.layers.map((l) => d.images.store.layerDir(l)).reverse().join(':') } : img, netLookup(d));
});

route('POST', '/containers/{id}/start', async (d, { params, res }) => {
  await d.containers.start(params.id!);
  noContent(res);
  return STREAMED;
});

/** `t` (or the older `timeout`) of stop/restart: strconv.Atoi in moby, so "abc" is a 400 naming it. */
function stopTimeout(query: URLSearchParams): number | undefined {
  const k = query.get('t') !== null ? 't' : 'timeout';
  const t = int(query, k, NaN);
  return Number.isNaN(t) ? undefined : t;
}

route('POST', '/containers/{id}/stop', async (d, { params, query, res }) => {
  const t = stopTimeout(query);
  await d.containers.stop(params.id!, t, query.get('signal') ?? undefined);
  noContent(res);
  return STREAMED;
});

route('POST', '/containers/{id}/restart', async (d, { params, query, res }) => {
  const t = stopTimeout(query);
  await d.containers.restart(params.id!, t, query.get('signal') ?? undefined);
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
  await d.containers.remove(params.id!, bool(query, 'force'), bool(query, 'v'));
  noContent(res);
  return STREAMED;
});

route('POST', '/containers/{id}/rename', async (d, { params, query, res }) => {
  await d.containers.rename(params.id!, query.get('name') ?? '');
  noContent(res);
  return STREAMED;
});

route('POST', '/containers/{id}/update', async (d, { params, body }) => d.containers.update(params.id!, validateBody('containerUpdate', await body())));

/**
 * `docker top`: `ps` with the client's arguments on the host, its rows filtered to the container's
 * processes by the PID column, the last column (the command) kept whole, as moby's parsePSOutput.
 */
async function topOf(pids: number[], psArgs: string): Promise<{ Titles: string[]; Processes: string[][] }> {
  const ps = (args: string[]) => new Promise<string[]>((resolve, reject) => {
    execFile('ps', args, { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      // ps refusing its arguments is the client's mistake (moby answers it as an invalid parameter)
      if (err) reject(new LoomError(typeof err.code === 'number' ? 400 : 500, `Error running ps: ${String(stderr || err.message).trim()}`));
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
export function windowSize(query: URLSearchParams): { rows: number; cols: number } {
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
  const { offsets, ended } = d.containers.attachOffsets(c);
  if (ended) {
    // the run this client started is over: its output, then the end (as its exit would give)
    if (!bool(query, 'logs')) { // with logs=1 it went out already
      const out = bool(query, 'stdout') ? readTail(paths.stdout, offsets.stdout) : Buffer.alloc(0);
      const err = bool(query, 'stderr') ? readTail(paths.stderr, offsets.stderr) : Buffer.alloc(0);
      if (out.length) write(1, out);
      if (err.length) write(2, err);
    }
    sock.end();
    return STREAMED;
  }
  await followLogs(d, c.id, { stdout: bool(query, 'stdout') ? paths.stdout : undefined, stderr: bool(query, 'stderr') ? paths.stderr : undefined }, offsets, write, sock, true);
  sock.end();
  return STREAMED;
});
