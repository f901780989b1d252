// Size limits for container logs (`--log-opt max-size=10k --log-opt max-file=3`, as Docker's json-file).
// The container writes its output straight into STREAM.log (an O_APPEND fd runc hands it; no copying
// process, see shim.sh), so the file cannot be renamed away and reopened as Docker's driver does, and
// copy-then-truncate would lose what is written in between. Instead the daemon frees the file's head:
// fallocate(PUNCH_HOLE) returns the blocks of old output to the filesystem while every offset stays valid,
// so followers (`logs -f`, attach) never lose their place and nothing new is lost. The file keeps its
// logical size (sparse); STREAM.log.start records where the kept output begins (at a line start).
// What is kept: about max-size × max-file bytes, trimmed back to max-size × (max-file − 1) whenever the
// kept part grows past that, as Docker keeps max-file − 1 full files and the current one.
// Needs a filesystem with hole punching (ext4, xfs, btrfs, tmpfs).
import fs from 'node:fs';
import path from 'node:path';
import koffi from 'koffi';
import { errnoError } from '../kernel/netns.ts';
import { invalidParameter } from '../util/errors.ts';

const libc = koffi.load('libc.so.6');
const c_fallocate = libc.func('int fallocate(int fd, int mode, int64_t offset, int64_t len)');
const FALLOC_FL_KEEP_SIZE = 0x01;
const FALLOC_FL_PUNCH_HOLE = 0x02;
const BLOCK = 4096;

export interface LogPolicy { maxSize: number; maxFile: number }

const POLICY_FILE = 'logopts.json';

/** go-units' FromHumanSize (decimal: 10k = 10,000), which json-file reads max-size with. */
function humanSize(v: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?\s*$/i.exec(v);
  if (!m) return null;
  const mult = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12, p: 1e15 }[m[2]!.toLowerCase() as '' | 'k'];
  return Math.floor(Number(m[1]) * mult);
}

/** The policy of a json-file LogConfig (null without max-size), refused with the driver's words. */
export function parseLogPolicy(config: Record<string, string | null | undefined>): LogPolicy | null {
  let maxSize = -1;
  const size = config['max-size'];
  if (size !== undefined && size !== null) {
    const n = humanSize(size);
    if (n === null) throw invalidParameter(`invalid size: '${size}'`);
    if (n <= 0) throw invalidParameter('max-size must be a positive number');
    maxSize = n;
  }
  let maxFile = 1;
  const files = config['max-file'];
  if (files !== undefined && files !== null) {
    if (!/^[+-]?\d+$/.test(files)) throw invalidParameter(`strconv.Atoi: parsing ${JSON.stringify(files)}: invalid syntax`);
    maxFile = Number(files);
    if (maxFile < 1) throw invalidParameter('max-file cannot be less than 1');
  }
  return maxSize > 0 ? { maxSize, maxFile } : null;
}

export function writeLogPolicy(dir: string, policy: LogPolicy | null): void {
  const f = path.join(dir, POLICY_FILE);
  if (!policy) fs.rmSync(f, { force: true });
  else fs.writeFileSync(f, JSON.stringify(policy));
}

export function readLogPolicy(dir: string): LogPolicy | null {
  try {
    const p = JSON.parse(fs.readFileSync(path.join(dir, POLICY_FILE), 'utf8'));
    return p.maxSize > 0 && p.maxFile >= 1 ? { maxSize: p.maxSize, maxFile: p.maxFile } : null;
  } catch {
    return null;
  }
}

/** Where the kept output of a log file begins (0 when it was never trimmed). */
export function liveStart(file: string): number {
  try {
    const n = Number(fs.readFileSync(`${file}.start`, 'utf8').trim());
    return Number.isSafeInteger(n) && n > 0 ? n : 0;
  } catch {
    return 0;
  }
}

/**
 * Trims a log file of `size` bytes to the policy: returns the new start, or null when nothing was due.
 * Throws (an errno error) when the filesystem cannot punch holes.
 */
export function trimLog(file: string, size: number, policy: LogPolicy): number | null {
  const start = liveStart(file);
  if (size - start <= policy.maxSize * policy.maxFile) return null;
  const target = size - policy.maxSize * (policy.maxFile - 1);
  const fd = fs.openSync(file, 'r+');
  try {
    // the kept part begins at a line: the first line that starts at or after the target
    let newStart = target;
    const window = Buffer.alloc(Math.min(64 << 10, size - target + 1));
    const n = fs.readSync(fd, window, 0, window.length, target - 1);
    const nl = window.subarray(0, n).indexOf(10);
    if (nl >= 0) newStart = target - 1 + nl + 1;
    const punch = Math.floor(newStart / BLOCK) * BLOCK;
    if (punch > 0 && c_fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, punch) !== 0) {
      throw errnoError(`free the head of ${file}`, koffi.errno());
    }
    fs.writeFileSync(`${file}.start.tmp`, String(newStart));
    fs.renameSync(`${file}.start.tmp`, `${file}.start`);
    return newStart;
  } finally {
    fs.closeSync(fd);
  }
}
