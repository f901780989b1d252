// Network namespaces by path, like `ip netns`, done in process through libc (koffi) so that creating a
// container's namespace costs a few syscalls instead of a process spawn.
//
// Threading: setns()/unshare(CLONE_NEWNET) act on the calling *thread* only. Every call here runs
// synchronously on Node's main thread, and every switch is undone before control returns to the event
// loop, so no callback, timer or promise continuation ever runs in a foreign namespace. Work handed to
// libuv's thread pool (async fs, dns.lookup, crypto) never sees the switch at all: anything that must
// happen inside a namespace (opening a socket, opening /proc/sys/net/...) has to be a synchronous call
// made inside withNetns().
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');
const c_unshare = libc.func('int unshare(int flags)');
const c_setns = libc.func('int setns(int fd, int nstype)');
const c_mount = libc.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)');
const c_umount2 = libc.func('int umount2(const char *target, int flags)');
const c_strerror = libc.func('const char *strerror(int errnum)');

const CLONE_NEWNET = 0x40000000;
const MS_NOSUID = 0x2, MS_NODEV = 0x4, MS_NOEXEC = 0x8;
const MS_BIND = 0x1000;
const MS_REC = 0x4000;
const MS_SHARED = 1 << 20;
const MNT_DETACH = 2;
const NSFS_MAGIC = 0x6e736673;
const { EINVAL, ENOENT, EEXIST } = os.constants.errno;

export type ErrnoError = Error & { code: string; errno: number };

const messages = new Map<number, string>();
// errno → name. Node's table lacks a few Linux codes the kernel's netlink answers use (EXFULL: a bridge
// already has its 1023 ports); where it has two names for one number the later, Linux's own, wins.
const errnoNames = new Map<number, string>([
  ...Object.entries(os.constants.errno).map(([k, v]) => [v, k] as [number, string]),
  [15, 'ENOTBLK'], [54, 'EXFULL'], [94, 'ESOCKTNOSUPPORT'], [96, 'EPFNOSUPPORT'], [108, 'ESHUTDOWN'],
  [112, 'EHOSTDOWN'], [121, 'EREMOTEIO'], [126, 'ENOKEY'], [132, 'ERFKILL'],
]);

/**
 * An Error carrying the errno name as `.code` (EEXIST, ENODEV, ...) and a message naming the operation and
 * its object, worded like the C library ("create veth veth1a2b3c: File exists"); libuv's own wording
 * ("file already exists") would differ from what ip(8) prints. Shared with rtnl.ts.
 */
export function errnoError(op: string, errno: number): ErrnoError {
  let text = messages.get(errno);
  if (text === undefined) {
    text = String(c_strerror(errno));
    messages.set(errno, text);
  }
  const err = new Error(`${op}: ${text}`) as ErrnoError;
  err.code = errnoNames.get(errno) ?? `ERRNO${errno}`;
  err.errno = errno;
  return err;
}
const sysError = errnoError;

function check(ret: number, op: string): void {
  if (ret !== 0) throw sysError(op, koffi.errno());
}

// The daemon's own namespace, held open for its whole life: the way back after every switch. It is the
// namespace of the main thread when this module is first loaded. (libuv opens every file O_CLOEXEC, so
// none of these fds leak into spawned processes such as runc.)
const homeFd = fs.openSync('/proc/thread-self/ns/net', fs.constants.O_RDONLY);

// Namespaces entered by nested withNetns() calls; the top is where the thread is now. Restoring to the
// previous entry (not always home) keeps nesting correct.
const stack: number[] = [];

function setnsOrDie(fd: number, what: string): void {
  if (c_setns(fd, CLONE_NEWNET) === 0) return;
  // The main thread would now run the daemon in the wrong namespace; nothing sane can continue.
  const e = sysError(`return to ${what} network namespace`, koffi.errno());
  process.stderr.write(`loom: fatal: ${e.message}\n`);
  process.abort();
}

// Parent directories already turned into shared mount points by this process, and among them those that
// were not mount points before (made one here; only those may removeNetnsDir unmount).
const sharedDirs = new Set<string>();
const boundDirs = new Set<string>();

/**
 * Makes `dir` a mount point with shared propagation, as `ip netns add` does for /run/netns: runc puts a
 * container's mount namespace as an rslave of the host's, so a later unmount of the namespace file
 * propagates into it, and the namespace can really be freed when loom deletes it.
 *
 * A directory that is not a mount point yet becomes one: a small tmpfs when it is empty, else (as ip(8)
 * does) a bind of itself. The tmpfs matters where the directory lives on a disk filesystem: every
 * namespace needs a fresh file to be mounted on, and on ext4 creating one slows down as files come and
 * go (1.6 ms vs 0.6 ms per createNetns at 1000 namespaces on this machine, whose /run is ext4).
 */
function ensureSharedDir(dir: string): void {
  if (sharedDirs.has(dir)) return;
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  if (c_mount('none', dir, null, MS_SHARED | MS_REC, null) !== 0) {
    const errno = koffi.errno();
    // EINVAL: not a mount point yet; make it one, then retry.
    if (errno !== EINVAL) throw sysError(`make ${dir} a shared mount`, errno);
    if (fs.readdirSync(dir).length === 0) {
      check(c_mount('loom-netns', dir, 'tmpfs', MS_NOSUID | MS_NODEV | MS_NOEXEC, 'mode=0755'), `mount a tmpfs on ${dir}`);
    } else {
      check(c_mount(dir, dir, 'none', MS_BIND | MS_REC, null), `bind ${dir} onto itself`);
    }
    boundDirs.add(dir);
    check(c_mount('none', dir, null, MS_SHARED | MS_REC, null), `make ${dir} a shared mount`);
  }
  sharedDirs.add(dir);
}

/** Creates the empty file a namespace gets bind-mounted on; EEXIST when something is there already. */
function createMountPoint(p: string): void {
  ensureSharedDir(path.dirname(path.resolve(p)));
  try {
    fs.closeSync(fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o444));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw errnoError(`create network namespace ${p}`, err.errno ? -err.errno : EEXIST);
  }
}

/** A new network namespace bind-mounted at `p` (parent directories are created). EEXIST if `p` exists. */
export function createNetns(p: string): void {
  createMountPoint(p);
  let ok = false;
  try {
    check(c_unshare(CLONE_NEWNET), `create network namespace ${p}`);
    try {
      // /proc/thread-self, not /proc/self: the latter is the thread-group leader, which is only the same
      // thing as long as we run on the main thread.
      check(c_mount('/proc/thread-self/ns/net', p, 'none', MS_BIND, null), `create network namespace ${p}`);
      ok = true;
    } finally {
      setnsOrDie(stack.length ? stack[stack.length - 1] : homeFd, 'the previous');
    }
  } finally {
    if (!ok) try { fs.unlinkSync(p); } catch { /* already gone */ }
  }
}

/** Unmounts and removes a namespace file; fine when it is absent or not mounted. */
export function deleteNetns(p: string): void {
  // A path may carry stacked mounts (a crash between bind and cleanup); peel them all off.
  for (let i = 0; i < 16; i++) {
    if (c_umount2(p, MNT_DETACH) === 0) continue;
    const errno = koffi.errno();
    if (errno === EINVAL || errno === ENOENT) break; // not a mount point (any more) / no such file
    throw sysError(`unmount network namespace ${p}`, errno);
  }
  try {
    fs.unlinkSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/** Bind-mounts an existing namespace (e.g. /proc/PID/ns/net) at `p`. EEXIST if `p` exists. */
export function bindNetns(source: string, p: string): void {
  createMountPoint(p);
  try {
    check(c_mount(source, p, 'none', MS_BIND, null), `bind network namespace ${source} at ${p}`);
  } catch (e) {
    try { fs.unlinkSync(p); } catch { /* already gone */ }
    throw e;
  }
}

/**
 * Renames a named namespace. MS_MOVE is refused when the source's parent mount is shared, which ours
 * always is (see ensureSharedDir), so this binds at the new path and then drops the old one.
 */
export function moveNetns(from: string, to: string): void {
  if (!netnsExists(from)) throw errnoError(`move network namespace ${from} to ${to}`, EINVAL);
  bindNetns(from, to);
  deleteNetns(from);
}

/** True when `p` is a mounted namespace file (nsfs). */
export function netnsExists(p: string): boolean {
  try {
    return fs.statfsSync(p).type === NSFS_MAGIC;
  } catch {
    return false;
  }
}

/**
 * Runs `fn` with the main thread inside the namespace at `p`, and always switches back. `fn` must be
 * synchronous: whatever it leaves for later (promise continuations, callbacks) runs back in the
 * original namespace. Sockets created inside stay bound to `p`'s namespace for their whole life.
 */
export function withNetns<T>(p: string, fn: () => T): T {
  const fd = openNetnsFd(p);
  const back = stack.length ? stack[stack.length - 1] : homeFd;
  try {
    check(c_setns(fd, CLONE_NEWNET), `enter network namespace ${p}`);
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
  stack.push(fd);
  try {
    return fn();
  } finally {
    stack.pop();
    setnsOrDie(back, 'the previous');
    fs.closeSync(fd);
  }
}

/** An O_RDONLY|O_CLOEXEC fd of the namespace at `p` (e.g. for IFLA_NET_NS_FD); the caller closes it. */
export function openNetnsFd(p: string): number {
  try {
    return fs.openSync(p, fs.constants.O_RDONLY);
  } catch (e) {
    throw errnoError(`open network namespace ${p}`, -((e as NodeJS.ErrnoException).errno ?? -ENOENT));
  }
}

/** True when both paths refer to the same namespace (same nsfs inode). */
export function sameNetns(a: string, b: string): boolean {
  const sa = fs.statSync(a), sb = fs.statSync(b);
  return sa.dev === sb.dev && sa.ino === sb.ino;
}

/**
 * Undoes what createNetns did to a directory of namespaces: drops the mount it put there and removes the
 * directory if empty. For tests and benchmarks that keep their namespaces in a private directory; not
 * meant for /run/netns, which `ip netns` shares the same way and leaves mounted. Only a mount made by
 * this process is dropped: a directory that was a mount point already is left alone.
 */
export function removeNetnsDir(d: string): void {
  const dir = path.resolve(d);
  sharedDirs.delete(dir);
  if (boundDirs.delete(dir) && c_umount2(dir, MNT_DETACH) !== 0) {
    const errno = koffi.errno();
    if (errno !== EINVAL && errno !== ENOENT) throw sysError(`unmount ${dir}`, errno);
  }
  try {
    fs.rmdirSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTEMPTY') throw e;
  }
}
