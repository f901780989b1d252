// The container's root filesystem: an overlay of the image (lower, never written) and a per-container
// upper/work pair in its state directory, mounted in process through libc (a `mount` spawn would cost a
// few ms on the start path), plus mkfifo for the stdin FIFO.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import koffi from 'koffi';
import { errnoError } from '../kernel/netns.ts';

const libc = koffi.load('libc.so.6');
const c_mount = libc.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)');
const c_umount2 = libc.func('int umount2(const char *target, int flags)');
const c_mkfifo = libc.func('int mkfifo(const char *path, uint32_t mode)');

const MNT_DETACH = 2;
/** mount(2) copies at most one page of options */
const PAGE_LIMIT = 4096;
const { EINVAL, ENOENT, EBUSY, EEXIST } = os.constants.errno;

/** Mount points of this process's mount namespace (octal escapes of /proc/self/mountinfo decoded). */
export function mountPoints(): Set<string> {
  const out = new Set<string>();
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f.length > 4) out.add(f[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return out;
}

export function isMountPoint(p: string): boolean {
  return mountPoints().has(p);
}

/**
 * Mounts overlay(lowers, upper, work) at `target` unless something is mounted there already; `lowers`
 * top layer first. All paths must be absolute and free of the characters overlayfs uses as separators.
 * The options must fit in one page: when absolute lower paths would not, and they share a directory (the
 * image store's short links), the mount is made from inside that directory with relative names, as moby's
 * overlay2 driver does.
 */
export function mountOverlay(lowers: string | string[], upper: string, work: string, target: string): void {
  const list = [lowers].flat();
  for (const p of [...list, upper, work]) {
    if (!p.startsWith('/') || /[,:\\]/.test(p)) throw new Error(`overlay path not usable: ${p}`);
  }
  if (isMountPoint(target)) return;
  for (const d of [upper, work, target]) fs.mkdirSync(d, { recursive: true, mode: 0o755 });
  let opts = `lowerdir=${list.join(':')},upperdir=${upper},workdir=${work}`;
  let cwd: string | undefined;
  const dir = path.dirname(list[0]!);
  if (opts.length >= PAGE_LIMIT && list.every((l) => path.dirname(l) === dir)) {
    opts = `lowerdir=${list.map((l) => path.basename(l)).join(':')},upperdir=${upper},workdir=${work}`;
    cwd = process.cwd();
    process.chdir(dir);
  }
  let rc: number;
  try {
    if (opts.length >= PAGE_LIMIT) throw new Error(`overlay mount options too long for ${list.length} layers (${opts.length} bytes)`);
    rc = c_mount('overlay', target, 'overlay', 0, opts);
  } finally {
    if (cwd) process.chdir(cwd);
  }
  if (rc !== 0) throw errnoError(`mount overlay rootfs at ${target}`, koffi.errno());
}

/** Unmounts `target` (lazily if busy); fine when nothing is mounted there. */
export function unmount(target: string): void {
  if (c_umount2(target, 0) === 0) return;
  let errno = koffi.errno();
  if (errno === EINVAL || errno === ENOENT) return; // not a mount point (any more)
  if (errno === EBUSY) {
    if (c_umount2(target, MNT_DETACH) === 0) return;
    errno = koffi.errno();
  }
  throw errnoError(`unmount ${target}`, errno);
}

/** Creates a FIFO at `p` unless one is there. */
export function ensureFifo(p: string): void {
  try {
    if (fs.lstatSync(p).isFIFO()) return;
    fs.rmSync(p, { force: true });
  } catch { /* absent */ }
  if (c_mkfifo(p, 0o600) !== 0) {
    const errno = koffi.errno();
    if (errno !== EEXIST) throw errnoError(`mkfifo ${p}`, errno);
  }
}
