// A container's filesystem from the daemon's side, for cp (the archive API), export, diff and commit: its
// merged root (the runc overlay while it runs, mounted for the operation while it is stopped), paths
// resolved in the container's scope as moby's ResolvePath/StatPath do, Docker's path stat header, and
// its changes read from the overlay upper directory.
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { isMountPoint, mountOverlay, unmount } from '../../runtime/mounts.ts';
import { resolveInScope, insideRoot } from './scope.ts';
import { packTree } from './layer.ts';

export interface ContainerFsInfo {
  stateDir: string;
  running: () => boolean;
  lowerDirs: string[];
}

/** Mounts made here, per root, with the operations still using them (concurrent cp of one stopped container). */
const held = new Map<string, number>();

/** Runs fn with the container's merged root mounted; a mount made for it is undone after the last user. */
export async function withRootfs<T>(c: ContainerFsInfo, fn: (root: string) => Promise<T>): Promise<T> {
  const root = path.join(c.stateDir, 'rootfs');
  if (held.has(root)) held.set(root, held.get(root)! + 1);
  else if (!isMountPoint(root)) {
    mountOverlay(c.lowerDirs, path.join(c.stateDir, 'upper'), path.join(c.stateDir, 'work'), root);
    held.set(root, 1);
  }
  try {
    return await fn(root);
  } finally {
    const n = held.get(root);
    if (n !== undefined) {
      if (n > 1) held.set(root, n - 1);
      else {
        held.delete(root);
        // a container started meanwhile uses this mount now: it stays
        if (!c.running()) unmount(root);
      }
    }
  }
}

/** Go's os.FileMode bits of an lstat, as Docker's stat header carries them. */
export function goFileMode(st: fs.Stats): number {
  let m = st.mode & 0o777;
  if (st.isDirectory()) m |= 2 ** 31;
  if (st.isSymbolicLink()) m |= 2 ** 27;
  if (st.isFIFO()) m |= 2 ** 25;
  if (st.isSocket()) m |= 2 ** 24;
  if (st.isBlockDevice()) m |= 2 ** 26;
  if (st.isCharacterDevice()) m |= 2 ** 26 | 2 ** 21;
  if (st.mode & 0o4000) m |= 2 ** 23;
  if (st.mode & 0o2000) m |= 2 ** 22;
  if (st.mode & 0o1000) m |= 2 ** 20;
  return m >>> 0;
}

export interface PathStat {
  name: string;
  size: number;
  mode: number;
  mtime: string;
  linkTarget: string;
}

/** moby's ResolvePath: the directory part resolved in scope, the last element kept (a trailing / or /. follows it). */
export function resolvePath(root: string, p: string): { resolved: string; abs: string } {
  let abs = path.posix.join('/', p);
  if ((p.endsWith('/') || p.endsWith('/.')) && !abs.endsWith('/')) abs += p.endsWith('/.') ? '/.' : '/';
  if (p.endsWith('/.') && !abs.endsWith('/.')) abs = `${abs.replace(/\/$/, '')}/.`;
  const slash = abs.lastIndexOf('/');
  const dir = abs.slice(0, slash + 1);
  const base = abs.slice(slash + 1);
  const rdir = resolveInScope(root, dir);
  return { resolved: base ? path.join(rdir, base) : rdir, abs };
}

export class NotFoundInContainer extends Error {}

/** moby's StatPath: lstat of the resolved path; a symlink's target resolved in scope as the container sees it. */
export function statPath(root: string, resolved: string, abs: string): PathStat {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(resolved);
  } catch {
    throw new NotFoundInContainer(abs);
  }
  let linkTarget = '';
  if (st.isSymbolicLink()) {
    linkTarget = insideRoot(root, resolveInScope(root, insideRoot(root, resolved)));
  }
  const name = path.posix.basename(abs.replace(/\/\.?$/, '')) || '/';
  return { name, size: st.size, mode: goFileMode(st), mtime: st.mtime.toISOString(), linkTarget };
}

export function statHeader(s: PathStat): string {
  return Buffer.from(JSON.stringify(s)).toString('base64');
}

/**
 * The tar of a path for GET archive: entries named from the requested name (a link followed with a
 * trailing `/` still shows under its own name), the directory's contents under it.
 */
export function archivePath(root: string, resolved: string, abs: string): Readable {
  // resolved is in scope (its directory part resolved, a trailing / or /. resolved the last element)
  const target = resolved.replace(/\/\.$/, '');
  const st = fs.lstatSync(target);
  const name = abs.endsWith('/.') ? '.' : path.posix.basename(abs.replace(/\/$/, '')) || '.';
  // `path/.` copies the contents (the docker CLI asks for it); the entries are still rebased under name
  if (st.isDirectory()) return packTree(target, { prefix: `${name}/`, rootEntry: name });
  return packTree(path.dirname(target), { only: path.basename(target), rename: name });
}

export type ChangeKind = 0 | 1 | 2;

const MOUNT_POINTS = new Set(['etc/hosts', 'etc/resolv.conf', 'etc/hostname', 'dev', 'proc', 'sys', 'dev/pts', 'dev/shm', 'dev/mqueue', '.dockerenv']);

/** Mount points runc makes (empty placeholders in the upper dir): not the container's changes. */
export function isMountPlaceholder(upper: string, rel: string): boolean {
  if (!MOUNT_POINTS.has(rel)) return false;
  try {
    const st = fs.lstatSync(path.join(upper, rel));
    if (st.isDirectory()) return fs.readdirSync(path.join(upper, rel)).every((n) => isMountPlaceholder(upper, `${rel}/${n}`));
    return st.isFile() && st.size === 0;
  } catch {
    return false;
  }
}

/** `docker diff`: what the upper directory holds, as Docker reports it (0 changed, 1 added, 2 deleted). */
export function containerChanges(upper: string, lowers: string[]): { Path: string; Kind: ChangeKind }[] {
  const out: { Path: string; Kind: ChangeKind }[] = [];
  const inLower = (rel: string) => lowers.some((l) => {
    try {
      fs.lstatSync(path.join(l, rel));
      return true;
    } catch {
      return false;
    }
  });
  const walk = (rel: string) => {
    let names: string[];
    try {
      names = fs.readdirSync(path.join(upper, rel)).sort();
    } catch {
      return;
    }
    for (const n of names) {
      const r = rel ? `${rel}/${n}` : n;
      if (isMountPlaceholder(upper, r)) continue;
      const st = fs.lstatSync(path.join(upper, r));
      if (st.isCharacterDevice() && st.rdev === 0) {
        out.push({ Path: `/${r}`, Kind: 2 });
        continue;
      }
      const lower = inLower(r);
      // a directory copied up only to hold runc's mount points (/etc for /etc/hosts) is no change
      if (st.isDirectory() && lower && fs.readdirSync(path.join(upper, r)).every((n) => isMountPlaceholder(upper, `${r}/${n}`))
        && fs.readdirSync(path.join(upper, r)).length > 0) continue;
      out.push({ Path: `/${r}`, Kind: lower ? 0 : 1 });
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  return out.sort((a, b) => (a.Path < b.Path ? -1 : a.Path > b.Path ? 1 : 0));
}
