// COPY and ADD: the sources (context or another image's filesystem; Go filepath.Match globs; symlinks
// followed inside their root), laid out under a staging directory exactly as they will appear in the
// image (dest resolved against WORKDIR, a file to a file or into a directory, a directory's contents,
// ADD's local archives extracted, ADD's URLs downloaded), with --chown/--chmod applied. The staging
// tree then becomes the step's layer; its checksum is the step's cache key, as in the classic builder.
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { resolveInScope } from '../archive/scope.ts';
import { resolveUser } from '../../runtime/spec.ts';

export class BuildStepError extends Error {}

export interface CopySpec {
  cmd: 'COPY' | 'ADD';
  /** where sources are looked up: the context, or an image's root filesystem */
  srcRoot: string;
  fromContext: boolean;
  sources: string[];
  /** absolute destination inside the image (trailing `/` kept) */
  dest: string;
  /** the parent image's filesystem, to see what exists (null: scratch) */
  imageRoot: string | null;
  chown?: string;
  chmod?: string;
  staging: string;
}

export interface Staged {
  checksum: string;
  /** `file:<hex>` or `dir:<hex>` for the history, as Docker writes it */
  kind: 'file' | 'dir' | 'multi';
}

/** Go's filepath.Match pattern as a regular expression over one path (`*` stops at `/`). */
export function globRegex(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '\\' && i + 1 < pattern.length) re += escapeRe(pattern[++i]!);
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) throw new BuildStepError(`syntax error in pattern: ${pattern}`);
      let cls = pattern.slice(i + 1, end);
      if (cls.startsWith('^')) cls = `^${cls.slice(1)}`;
      re += `[${cls.replace(/\\/g, '\\\\').replace(/^\^/, '^')}]`;
      i = end;
    } else re += escapeRe(c);
  }
  return new RegExp(`^${re}$`);
}

function escapeRe(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

const hasGlob = (s: string) => /[*?[]/.test(s);

/** Expands a source (relative to root) to the paths it names; globs segment by segment. */
function expandSource(root: string, src: string): string[] {
  const segs = src.split('/').filter((s) => s && s !== '.');
  let cur: string[] = [''];
  for (const seg of segs) {
    const next: string[] = [];
    for (const rel of cur) {
      if (!hasGlob(seg)) {
        next.push(rel ? `${rel}/${seg}` : seg);
        continue;
      }
      const dir = resolveInScope(root, rel);
      let names: string[] = [];
      try {
        names = fs.readdirSync(dir).sort();
      } catch {
        names = [];
      }
      const re = globRegex(seg);
      for (const n of names) if (re.test(n)) next.push(rel ? `${rel}/${n}` : n);
    }
    cur = next;
  }
  return cur;
}

function readScoped(root: string | null, p: string): string | null {
  if (!root) return null;
  try {
    return fs.readFileSync(resolveInScope(root, p), 'utf8');
  } catch {
    return null;
  }
}

/** --chown=user[:group] with names looked up in the image (a lone user is also the group, as moby). */
export function resolveChown(spec: string, imageRoot: string | null): { uid: number; gid: number } {
  const s = spec.includes(':') ? spec : `${spec}:${spec}`;
  const [u, g] = s.split(':') as [string, string];
  try {
    const r = resolveUser(s, readScoped(imageRoot, '/etc/passwd'), readScoped(imageRoot, '/etc/group'));
    // a group name that is not there is an error for --chown (resolveUser would keep the user's group)
    if (!/^[0-9]+$/.test(g) && !(readScoped(imageRoot, '/etc/group') ?? '').split('\n').some((l) => l.split(':')[0] === g)) {
      throw new Error(`unable to find group ${g}: no matching entries in group file`);
    }
    void u;
    return { uid: r.uid, gid: r.gid };
  } catch (e) {
    throw new BuildStepError(`unable to convert uid/gid chown string to host mapping: ${(e as Error).message}`);
  }
}

export function parseChmod(s: string): number {
  if (!/^[0-7]{3,4}$/.test(s)) throw new BuildStepError(`invalid chmod parameter: ${s}`);
  return parseInt(s, 8);
}

function isDirInImage(imageRoot: string | null, p: string): boolean {
  if (!imageRoot) return false;
  try {
    return fs.statSync(resolveInScope(imageRoot, p)).isDirectory();
  } catch {
    return false;
  }
}

interface Owner { uid: number; gid: number; mode?: number }

/** Copies a tree (symlinks inside it as links) to dest with owner and mode set. */
function copyTree(src: string, dest: string, own: Owner): void {
  const st = fs.lstatSync(src);
  if (st.isDirectory()) {
    fs.mkdirSync(dest, { recursive: true });
    for (const n of fs.readdirSync(src)) copyTree(path.join(src, n), path.join(dest, n), own);
    fs.chmodSync(dest, own.mode ?? (st.mode & 0o7777));
    fs.lchownSync(dest, own.uid, own.gid);
    fs.utimesSync(dest, st.atime, st.mtime);
    return;
  }
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.rmSync(dest, { recursive: true, force: true });
  if (st.isSymbolicLink()) {
    fs.symlinkSync(fs.readlinkSync(src), dest);
    fs.lchownSync(dest, own.uid, own.gid);
    return;
  }
  if (!st.isFile()) return; // devices, fifos and sockets are not copied from a context
  fs.copyFileSync(src, dest);
  fs.chmodSync(dest, own.mode ?? (st.mode & 0o7777));
  fs.lchownSync(dest, own.uid, own.gid);
  fs.utimesSync(dest, st.atime, st.mtime);
}

function isArchive(file: string): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(512);
    const n = fs.readSync(fd, b, 0, 512, 0);
    if (n >= 2 && b[0] === 0x1f && b[1] === 0x8b) return true;
    if (n >= 3 && b.subarray(0, 3).toString('latin1') === 'BZh') return true;
    if (n >= 6 && b[0] === 0xfd && b.subarray(1, 6).toString('latin1') === '7zXZ\0') return true;
    return n >= 262 && b.subarray(257, 262).toString('latin1') === 'ustar';
  } finally {
    fs.closeSync(fd);
  }
}

function extractArchive(file: string, destDir: string, own: Owner | null): Promise<void> {
  fs.mkdirSync(destDir, { recursive: true });
  return new Promise((resolve, reject) => {
    const args = ['-x', '-f', file, '-C', destDir, '--numeric-owner', '-p', '--no-overwrite-dir'];
    const p = spawn('tar', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => {
      if (code !== 0) return reject(new BuildStepError(`failed to extract ${path.basename(file)}: ${err.trim() || `tar exited with ${code}`}`));
      if (own) chownTree(destDir, own);
      resolve();
    });
  });
}

function chownTree(p: string, own: Owner): void {
  const st = fs.lstatSync(p);
  fs.lchownSync(p, own.uid, own.gid);
  if (own.mode !== undefined && !st.isSymbolicLink()) fs.chmodSync(p, own.mode);
  if (st.isDirectory()) for (const n of fs.readdirSync(p)) chownTree(path.join(p, n), own);
}

async function download(url: string, dest: string): Promise<void> {
  let res: Response;
  try {
    res = await fetch(url, { redirect: 'follow' });
  } catch (e) {
    throw new BuildStepError(`error downloading '${url}': ${(e as Error & { cause?: Error }).cause?.message ?? (e as Error).message}`);
  }
  if (!res.ok) throw new BuildStepError(`failed to GET ${url} with status ${res.status} ${res.statusText}: ${(await res.text()).slice(0, 200)}`);
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.writeFileSync(dest, Buffer.from(await res.arrayBuffer()), { mode: 0o600 });
  fs.chmodSync(dest, 0o600);
  const lm = res.headers.get('last-modified');
  if (lm && !Number.isNaN(Date.parse(lm))) fs.utimesSync(dest, new Date(lm), new Date(lm));
}

/** Lays the sources out under spec.staging; throws BuildStepError with Docker's words. */
export async function stageCopy(spec: CopySpec): Promise<Staged> {
  const { cmd } = spec;
  const own: Owner = spec.chown ? resolveChown(spec.chown, spec.imageRoot) : { uid: 0, gid: 0 };
  if (spec.chmod) own.mode = parseChmod(spec.chmod);
  const destIsDir = spec.dest.endsWith('/') || spec.dest.endsWith('/.') || spec.sources.length > 1;
  if (spec.sources.length > 1 && !(spec.dest.endsWith('/') || spec.dest.endsWith('/.'))) {
    throw new BuildStepError(`When using ${cmd} with more than one source file, the destination must be a directory and end with a /`);
  }
  const destInImage = path.posix.normalize(spec.dest);
  const intoDir = destIsDir || isDirInImage(spec.imageRoot, destInImage);
  const stagedDest = path.join(spec.staging, destInImage);
  let files = 0;
  let dirs = 0;

  for (const src of spec.sources) {
    if (cmd === 'ADD' && /^https?:\/\//i.test(src)) {
      const name = path.posix.basename(new URL(src).pathname);
      if (intoDir && !name) throw new BuildStepError(`cannot determine filename from url: ${src}`);
      await download(src, intoDir ? path.join(stagedDest, name) : stagedDest);
      if (spec.chown) chownTree(intoDir ? path.join(stagedDest, name) : stagedDest, { uid: own.uid, gid: own.gid });
      files++;
      continue;
    }
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(src) || (cmd === 'COPY' && /^https?:/i.test(src))) {
      throw new BuildStepError(cmd === 'COPY' ? 'source can\'t be a URL for COPY' : `unsupported source URL: ${src}`);
    }
    const rel = path.posix.normalize(src.replace(/^\/+/, '') || '.');
    if (spec.fromContext && (rel === '..' || rel.startsWith('../'))) {
      throw new BuildStepError(`Forbidden path outside the build context: ${src} ()`);
    }
    const matches = hasGlob(rel) ? expandSource(spec.srcRoot, rel) : [rel];
    if (matches.length === 0) throw new BuildStepError(`${cmd} failed: no source files were specified`);
    for (const m of matches) {
      const abs = resolveInScope(spec.srcRoot, m);
      let st: fs.Stats;
      try {
        st = fs.statSync(abs);
      } catch {
        throw new BuildStepError(spec.fromContext
          ? `${cmd} failed: file not found in build context or excluded by .dockerignore: stat ${m}: file does not exist`
          : `${cmd} failed: stat ${m}: file does not exist`);
      }
      if (st.isDirectory()) {
        dirs++;
        copyTree(abs, stagedDest, own);
        continue;
      }
      files++;
      if (cmd === 'ADD' && spec.fromContext && isArchive(abs)) {
        await extractArchive(abs, stagedDest, spec.chown || spec.chmod ? own : null);
        continue;
      }
      copyTree(abs, intoDir ? path.join(stagedDest, path.basename(m)) : stagedDest, own);
    }
  }
  return { checksum: treeChecksum(spec.staging), kind: files + dirs > 1 ? 'multi' : dirs ? 'dir' : 'file' };
}

/**
 * A checksum of what COPY/ADD would take from their sources (names, types, modes, link targets, bytes),
 * without laying anything out: the cache key of the step. Undefined when a source is a URL (its content is
 * known only once downloaded). Throws the errors stageCopy would for missing or forbidden sources.
 */
export function sourceChecksum(cmd: 'COPY' | 'ADD', srcRoot: string, fromContext: boolean, sources: string[]): string | undefined {
  const h = createHash('sha256');
  for (const src of sources) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(src)) return undefined;
    const rel = path.posix.normalize(src.replace(/^\/+/, '') || '.');
    if (fromContext && (rel === '..' || rel.startsWith('../'))) throw new BuildStepError(`Forbidden path outside the build context: ${src} ()`);
    const matches = hasGlob(rel) ? expandSource(srcRoot, rel) : [rel];
    if (matches.length === 0) throw new BuildStepError(`${cmd} failed: no source files were specified`);
    for (const m of matches) {
      const abs = resolveInScope(srcRoot, m);
      let st: fs.Stats;
      try {
        st = fs.statSync(abs);
      } catch {
        throw new BuildStepError(fromContext
          ? `${cmd} failed: file not found in build context or excluded by .dockerignore: stat ${m}: file does not exist`
          : `${cmd} failed: stat ${m}: file does not exist`);
      }
      h.update(`\0src ${m}\0${st.isDirectory() ? 'dir' : 'file'}\0`);
      if (st.isDirectory()) h.update(treeChecksum(abs));
      else h.update(`${st.mode}\0${createHash('sha256').update(fs.readFileSync(abs)).digest('hex')}`);
    }
  }
  return h.digest('hex');
}

/** A content checksum of a staged tree: names, types, modes, owners, link targets and file bytes. */
export function treeChecksum(root: string): string {
  const h = createHash('sha256');
  const walk = (rel: string) => {
    for (const n of fs.readdirSync(path.join(root, rel)).sort()) {
      const r = rel ? `${rel}/${n}` : n;
      const p = path.join(root, r);
      const st = fs.lstatSync(p);
      h.update(`${r}\0${st.mode}\0${st.uid}:${st.gid}\0`);
      if (st.isSymbolicLink()) h.update(`->${fs.readlinkSync(p)}\0`);
      else if (st.isFile()) h.update(createHash('sha256').update(fs.readFileSync(p)).digest('hex'));
      else if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  return h.digest('hex');
}
