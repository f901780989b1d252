// When each piece of a container's output was written. The shim sends the container's stdout and stderr
// straight to two files (no copying process, see shim.sh), so nothing stamps lines as they are written.
// Instead the daemon watches the files of running containers (inotify on the state directory, plus a slow
// poll) and appends a record "SIZE NANOS" to STREAM.log.idx whenever a file has grown: every byte below SIZE
// was written by NANOS. A line's time is the time of the first record at or past its end (the time the
// daemon saw it, within milliseconds); output written while the daemon was down gets the file's mtime.
// That is what `logs -t`, `--since`, `--until` and `--tail` across both streams need.
import fs from 'node:fs';
import path from 'node:path';
import { liveStart, readLogPolicy, trimLog, type LogPolicy } from './logtrim.ts';

export const STREAMS = ['stdout', 'stderr'] as const;
export type StreamName = (typeof STREAMS)[number];

/** Nanoseconds since the epoch, as a bigint (microsecond precision from the clock). */
export function nowNanos(): bigint {
  const ms = performance.timeOrigin + performance.now();
  return BigInt(Math.floor(ms * 1000)) * 1000n;
}

const mtimeNanos = (st: fs.BigIntStats) => st.mtimeNs;

interface Track {
  dir: string;
  sizes: Record<StreamName, number>;
  watcher: fs.FSWatcher | null;
  pending: NodeJS.Timeout | null;
  /** --log-opt max-size/max-file (logtrim.ts); trimming stops for good if the filesystem cannot do it */
  policy: LogPolicy | null;
  trimFailed: boolean;
}

export class LogClock {
  private readonly tracks = new Map<string, Track>();
  private poll: NodeJS.Timeout | null = null;

  /** Starts recording for a container's state dir (idempotent). Growth since the last record gets the file's mtime. */
  track(dirIn: string): void {
    const dir = path.resolve(dirIn);
    if (this.tracks.has(dir)) return;
    const t: Track = { dir, sizes: { stdout: 0, stderr: 0 }, watcher: null, pending: null, policy: readLogPolicy(dir), trimFailed: false };
    for (const s of STREAMS) {
      const recs = readIndex(path.join(dir, `${s}.log`));
      t.sizes[s] = recs.length ? recs[recs.length - 1]!.size : 0;
    }
    this.sample(t, true);
    try {
      t.watcher = fs.watch(dir, { persistent: false }, (_ev, name) => {
        if (name === null || String(name) === 'stdout.log' || String(name) === 'stderr.log') this.soon(t);
      });
      t.watcher.on('error', () => {
        t.watcher?.close();
        t.watcher = null;
      });
    } catch { /* the poll alone */ }
    this.tracks.set(dir, t);
    if (!this.poll) {
      this.poll = setInterval(() => {
        for (const x of this.tracks.values()) this.sample(x, false);
      }, 500);
      this.poll.unref();
    }
  }

  /** Takes a last sample and stops watching (the container has exited). */
  untrack(dirIn: string): void {
    const dir = path.resolve(dirIn);
    const t = this.tracks.get(dir);
    if (!t) return;
    this.sample(t, false);
    if (t.pending) clearTimeout(t.pending);
    t.watcher?.close();
    this.tracks.delete(dir);
    if (!this.tracks.size && this.poll) {
      clearInterval(this.poll);
      this.poll = null;
    }
  }

  /** Records what has been written so far (followers call this before they stamp what they read). */
  sampleNow(dirIn: string): void {
    const t = this.tracks.get(path.resolve(dirIn));
    if (t) this.sample(t, false);
  }

  close(): void {
    for (const d of [...this.tracks.keys()]) this.untrack(d);
  }

  /** Inotify fires per write: sample at most every 10 ms (the precision of the times). */
  private soon(t: Track): void {
    if (t.pending) return;
    t.pending = setTimeout(() => {
      t.pending = null;
      this.sample(t, false);
    }, 10);
    t.pending.unref();
  }

  private sample(t: Track, useMtime: boolean): void {
    for (const s of STREAMS) {
      const file = path.join(t.dir, `${s}.log`);
      let st: fs.BigIntStats;
      try {
        st = fs.statSync(file, { bigint: true });
      } catch {
        continue;
      }
      const size = Number(st.size);
      if (size < t.sizes[s]) {
        // truncated (a failed start rolls the logs back): the records past the end no longer mean anything
        truncateIndex(file, size);
        t.sizes[s] = size;
        continue;
      }
      if (size === t.sizes[s]) continue;
      const at = useMtime ? mtimeNanos(st) : nowNanos();
      try {
        fs.appendFileSync(`${file}.idx`, `${size} ${at}\n`);
        t.sizes[s] = size;
      } catch { /* state dir gone */ }
      this.trim(t, file, size);
    }
  }

  /** Keeps the file within its size policy (the records of freed output go from the index too). */
  private trim(t: Track, file: string, size: number): void {
    if (!t.policy || t.trimFailed) return;
    try {
      const start = trimLog(file, size, t.policy);
      if (start === null) return;
      const keep = readIndex(file).filter((r) => r.size > start);
      fs.writeFileSync(`${file}.idx.tmp`, keep.map((r) => `${r.size} ${r.at}\n`).join(''));
      fs.renameSync(`${file}.idx.tmp`, `${file}.idx`);
    } catch {
      t.trimFailed = true; // no hole punching here (or the dir is gone): the logs are kept whole
    }
  }
}

export interface IndexRecord { size: number; at: bigint }

/** The records of `file` (STREAM.log), in order; sizes only grow. */
export function readIndex(file: string): IndexRecord[] {
  let text: string;
  try {
    text = fs.readFileSync(`${file}.idx`, 'utf8');
  } catch {
    return [];
  }
  const out: IndexRecord[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\d+) (\d+)$/.exec(line);
    if (!m) continue;
    const size = Number(m[1]);
    if (out.length && size <= out[out.length - 1]!.size) continue;
    out.push({ size, at: BigInt(m[2]!) });
  }
  return out;
}

function truncateIndex(file: string, size: number): void {
  const keep = readIndex(file).filter((r) => r.size <= size);
  try {
    fs.writeFileSync(`${file}.idx`, keep.map((r) => `${r.size} ${r.at}\n`).join(''));
  } catch { /* gone */ }
}

export interface LogLine { stream: StreamName; at: bigint; data: Buffer }

/**
 * The lines of one stream from byte `from` on, each with its time. A last line without a newline is
 * included when `partial` (the container has exited, or the caller wants everything there is).
 */
export function stampedLines(file: string, stream: StreamName, fromIn = 0, partial = true, at?: bigint): { lines: LogLine[]; end: number } {
  // output before the kept part (logtrim.ts) is gone; a reader that was there goes on from the start
  const from = Math.max(fromIn, liveStart(file));
  const buf = readTail(file, from);
  if (!buf.length) return { lines: [], end: from };
  // `at`: the caller has just sampled, so what is new was written by now (followers)
  const recs = at === undefined ? readIndex(file) : [];
  let fallback = at ?? nowNanos();
  if (at === undefined) {
    try {
      fallback = fs.statSync(file, { bigint: true }).mtimeNs;
    } catch { /* gone */ }
  }
  const lines: LogLine[] = [];
  let r = 0;
  let start = 0;
  while (start < buf.length) {
    const nl = buf.indexOf(10, start);
    if (nl < 0 && !partial) break;
    const end = nl < 0 ? buf.length : nl + 1;
    while (r < recs.length && recs[r]!.size < from + end) r++;
    lines.push({ stream, at: r < recs.length ? recs[r]!.at : fallback, data: buf.subarray(start, end) });
    start = end;
  }
  return { lines, end: from + start };
}

/** The bytes of `file` from `offset` to its end (empty when absent). */
export function readTail(file: string, offset: number): Buffer {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return Buffer.alloc(0);
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size <= offset) return Buffer.alloc(0);
    const buf = Buffer.alloc(size - offset);
    return buf.subarray(0, fs.readSync(fd, buf, 0, buf.length, offset));
  } finally {
    fs.closeSync(fd);
  }
}

/** Both streams' lines in the order they were written (stable: stdout first at equal times). */
export function mergeLines(a: LogLine[], b: LogLine[]): LogLine[] {
  const out: LogLine[] = [];
  let i = 0, j = 0;
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i]!.at <= b[j]!.at)) out.push(a[i++]!);
    else out.push(b[j++]!);
  }
  return out;
}

/** Docker's RFC3339NanoFixed (`2006-01-02T15:04:05.000000000Z07:00`), in UTC. */
export function rfc3339NanoFixed(ns: bigint): string {
  const ms = Number(ns / 1_000_000n);
  const frac = String(ns % 1_000_000_000n).padStart(9, '0');
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, `.${frac}Z`);
}
