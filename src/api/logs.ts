// Container output lives in two files written by the runtime's shim (stdout, stderr), with a time index
// kept by the daemon (runtime/logclock.ts). `logs` reads them line by line, as Docker's json-file driver
// does: --tail counts lines of both streams, --since/--until select by time, -t prefixes Docker's fixed
// RFC 3339 nano time, -f follows until the container's process ends. `attach` streams raw bytes.
import type net from 'node:net';
import type { Daemon } from '../daemon.ts';
import { mergeLines, nowNanos, readTail, rfc3339NanoFixed, stampedLines, type LogLine } from '../runtime/logclock.ts';
import { invalidParameter } from '../util/errors.ts';
import { liveStart } from '../runtime/logtrim.ts';

export interface LogFiles {
  stdout?: string;
  stderr?: string;
  tail?: number;
}
export type Offsets = { stdout: number; stderr: number };
type Write = (stream: 1 | 2, data: Buffer) => void;

function readFrom(path: string | undefined, offset: number): Buffer {
  return path ? readTail(path, offset) : Buffer.alloc(0);
}

/** A reader's offset, moved to where the kept output begins if a size limit freed what was before it. */
const kept = (path: string | undefined, offset: number) => (path ? Math.max(offset, liveStart(path)) : offset);

/** Writes what the files hold now, raw (attach with logs=1); returns the offsets reached. */
export function readLogs(files: LogFiles, write: Write): Offsets {
  const from = { stdout: kept(files.stdout, 0), stderr: kept(files.stderr, 0) };
  const out = readFrom(files.stdout, from.stdout);
  const err = readFrom(files.stderr, from.stderr);
  if (out.length) write(1, out);
  if (err.length) write(2, err);
  return { stdout: from.stdout + out.length, stderr: from.stderr + err.length };
}

/** Streams growth of the files, raw, until the container's process ends (then drains) or the client goes away.
 *  An attach (`attach` true) to a container that is not running yet waits for it to start and end: that is
 *  how `run` and `start -a` attach first and start second. */
export function followLogs(d: Daemon, id: string, files: LogFiles, offsets: Offsets, write: Write, sock: net.Socket, attach = false): Promise<void> {
  return new Promise((resolve) => {
    let done = false;
    // An attacher that came before the start sees nothing until the process runs: a start that fails
    // leaves runc's error in the log files for an instant (then cuts it away), and that is no output.
    let live = !attach || !!d.containers.find(id)?.state.Running;
    const offStart = live ? () => {} : d.containers.onProcessStart(id, () => { live = true; });
    const pump = () => {
      if (!live) return;
      offsets.stdout = kept(files.stdout, offsets.stdout);
      offsets.stderr = kept(files.stderr, offsets.stderr);
      const o = readFrom(files.stdout, offsets.stdout);
      if (o.length) { offsets.stdout += o.length; write(1, o); }
      const e = readFrom(files.stderr, offsets.stderr);
      if (e.length) { offsets.stderr += e.length; write(2, e); }
    };
    const finish = () => {
      if (done) return;
      done = true;
      clearInterval(timer);
      off();
      offStart();
      pump();
      resolve();
    };
    const timer = setInterval(pump, 25);
    const off = d.containers.onProcessExit(id, finish);
    sock.on('close', finish);
    const c = d.containers.find(id);
    if (!c || (!c.state.Running && !attach)) finish();
  });
}

export interface LogQuery {
  stdout: boolean;
  stderr: boolean;
  follow: boolean;
  timestamps: boolean;
  details: boolean;
  /** lines from the end (both streams together); undefined: all */
  tail?: number;
  since?: bigint;
  until?: bigint;
}

/** moby's ParseTimestamps: "SECONDS[.NANOS]" → nanoseconds since the epoch. */
export function parseApiTimestamp(v: string, what: string): bigint {
  const m = /^(-?\d+)(?:\.(\d+))?$/.exec(v);
  if (!m) throw invalidParameter(`strconv.ParseInt: parsing "${v}": invalid syntax`);
  void what;
  const frac = ((m[2] ?? '') + '000000000').slice(0, 9);
  return BigInt(m[1]!) * 1_000_000_000n + BigInt(frac);
}

export function logQuery(q: URLSearchParams, bool: (k: string) => boolean): LogQuery {
  const stdout = bool('stdout');
  const stderr = bool('stderr');
  if (!stdout && !stderr) throw invalidParameter('Bad parameters: you must choose at least one stream');
  const tailS = q.get('tail') ?? '';
  // as Docker: anything that is not a number ("all", "") means every line; a negative number too
  const tailN = /^-?\d+$/.test(tailS) ? Number(tailS) : -1;
  const since = q.get('since');
  const until = q.get('until');
  return {
    stdout, stderr, follow: bool('follow'), timestamps: bool('timestamps'), details: bool('details'),
    ...(tailN >= 0 ? { tail: tailN } : {}),
    ...(since ? { since: parseApiTimestamp(since, 'since') } : {}),
    ...(until && until !== '0' ? { until: parseApiTimestamp(until, 'until') } : {}),
  };
}

/** A log line as Docker writes it out: [time ][details ]text. */
function render(l: LogLine, q: LogQuery): Buffer {
  if (!q.timestamps && !q.details) return l.data;
  const prefix = `${q.timestamps ? `${rfc3339NanoFixed(l.at)} ` : ''}${q.details ? ' ' : ''}`;
  return Buffer.concat([Buffer.from(prefix), l.data]);
}

/**
 * GET /containers/{id}/logs: what is there (tail, since, until), then with `follow` the lines as they come
 * until the container's process ends, `until` passes or the client goes away.
 */
export async function serveLogs(d: Daemon, id: string, files: { stdout: string; stderr: string; dir: string }, q: LogQuery, write: Write, sock: net.Socket): Promise<void> {
  const clock = d.containers.runc.clock;
  clock.sampleNow(files.dir);
  const running = () => !!d.containers.find(id)?.state.Running;
  const follow = q.follow && running();
  // complete lines only while the container may still finish the last one
  const out = stampedLines(files.stdout, 'stdout', 0, !follow);
  const err = stampedLines(files.stderr, 'stderr', 0, !follow);
  let lines = mergeLines(q.stdout ? out.lines : [], q.stderr ? err.lines : []);
  if (q.tail !== undefined) lines = q.tail === 0 ? [] : lines.slice(-q.tail);
  const emit = (ls: LogLine[]): boolean => {
    for (const l of ls) {
      if (q.since !== undefined && l.at < q.since) continue;
      if (q.until !== undefined && l.at > q.until) return false;
      write(l.stream === 'stdout' ? 1 : 2, render(l, q));
    }
    return true;
  };
  if (!emit(lines) || !follow) return;
  if (q.until !== undefined && q.until <= nowNanos()) return;
  const offsets = { stdout: out.end, stderr: err.end };
  await new Promise<void>((resolve) => {
    let done = false;
    const pump = (final: boolean): boolean => {
      clock.sampleNow(files.dir);
      const now = nowNanos();
      const o = stampedLines(files.stdout, 'stdout', offsets.stdout, final, now);
      const e = stampedLines(files.stderr, 'stderr', offsets.stderr, final, now);
      offsets.stdout = o.end;
      offsets.stderr = e.end;
      return emit(mergeLines(q.stdout ? o.lines : [], q.stderr ? e.lines : []));
    };
    const finish = (final: boolean) => {
      if (done) return;
      done = true;
      clearInterval(timer);
      if (untilTimer) clearTimeout(untilTimer);
      off();
      pump(final);
      resolve();
    };
    const timer = setInterval(() => {
      if (!pump(false)) finish(false);
    }, 25);
    // a delay past 2^31 ms would fire at once (node clamps it): such an end is as good as none
    const untilMs = q.until !== undefined ? Number((q.until - nowNanos()) / 1_000_000n) + 1 : undefined;
    const untilTimer = untilMs !== undefined && untilMs < 2 ** 31 - 1 ? setTimeout(() => finish(false), untilMs) : undefined;
    const off = d.containers.onProcessExit(id, () => finish(true));
    sock.on('close', () => finish(false));
    if (!running()) finish(true);
  });
}
