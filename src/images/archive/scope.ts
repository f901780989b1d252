// Paths inside a root a container (or a build context) controls, resolved as moby's
// symlink.FollowSymlinkInScope does: every symlink on the way is followed as if `root` were `/` (an
// absolute target starts again at root, `..` stops at root), so no link can lead a read or a write of
// loom's outside the root. The result is a host path under root (or root itself).
import fs from 'node:fs';
import path from 'node:path';

const MAX_LINKS = 255;

export class ScopeError extends Error {}

/**
 * Resolves `p` (absolute or relative, taken inside `root`) with its symlinks followed in scope.
 * `followLast` false keeps the last component as it is (a link itself, as docker cp copies links).
 */
export function resolveInScope(root: string, p: string, followLast = true): string {
  const base = path.resolve(root);
  let todo = path.posix.normalize(`/${p}`).split('/').filter((s) => s && s !== '.');
  if (!followLast && todo.length) {
    const last = todo.pop()!;
    const dir = walk(base, todo);
    if (last === '..') return dir === base ? base : path.dirname(dir);
    return path.join(dir, last);
  }
  return walk(base, todo);
}

function walk(base: string, parts: string[]): string {
  let cur = base; // always a resolved path inside base
  let links = 0;
  const todo = [...parts];
  while (todo.length) {
    const part = todo.shift()!;
    if (part === '.' || part === '') continue;
    if (part === '..') {
      if (cur !== base) cur = path.dirname(cur);
      continue;
    }
    const next = path.join(cur, part);
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(next);
    } catch {
      st = undefined; // missing: the rest is taken as written (it may be created)
    }
    if (st?.isSymbolicLink()) {
      if (++links > MAX_LINKS) throw new ScopeError(`too many links in ${next}`);
      const target = fs.readlinkSync(next);
      const tparts = target.split('/').filter((s) => s && s !== '.');
      if (target.startsWith('/')) cur = base;
      todo.unshift(...tparts);
      continue;
    }
    cur = next;
  }
  return cur;
}

/** The path of `abs` inside root, as the container sees it (`/` for root). */
export function insideRoot(root: string, abs: string): string {
  const rel = path.relative(path.resolve(root), abs);
  if (rel.startsWith('..') || path.isAbsolute(rel)) throw new ScopeError(`${abs} is outside ${root}`);
  return `/${rel}`;
}
