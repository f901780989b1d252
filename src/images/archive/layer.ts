// Layers as tar streams, in the format images carry (the OCI image spec's changesets): a directory tree
// packed into a tar, an overlayfs upper directory packed with its whiteouts translated (a 0:0 character
// device becomes an empty `.wh.<name>` entry, a directory with the opaque xattr gets a `.wh..wh..opq`
// entry), and a layer tar applied onto a root filesystem (whiteouts delete, everything else is created
// afresh: an existing file is unlinked first, so trees that share inodes by hard links stay untouched).
// tar-stream does the tar format; the tree walking and the whiteout rules are Docker's and are here.
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import koffi from 'koffi';
import { resolveInScope } from './scope.ts';

const libc = koffi.load('libc.so.6');
const c_lgetxattr = libc.func('long lgetxattr(const char *path, const char *name, _Out_ uint8_t *value, size_t size)');

const WH_PREFIX = '.wh.';
const WH_OPAQUE = '.wh..wh..opq';

function isOpaque(dir: string): boolean {
  const buf = Buffer.alloc(4);
  for (const name of ['trusted.overlay.opaque', 'user.overlay.opaque']) {
    const n = Number(c_lgetxattr(dir, name, buf, buf.length));
    if (n > 0 && buf[0] === 0x79 /* y */) return true;
  }
  return false;
}

export interface PackOptions {
  /** translate overlayfs whiteouts and opaque directories (an upper directory) */
  overlay?: boolean;
  /** leave out the header of these directories (they exist below and keep their metadata) */
  skipDirHeader?: (rel: string) => boolean;
  /** a prefix for every name in the tar (`app/`) */
  prefix?: string;
  /** leave these paths (and what is under them) out */
  exclude?: (rel: string) => boolean;
  /** a header for the root directory itself, with this name (the archive API's `dir/` entry) */
  rootEntry?: string;
  /** pack only this entry of root (and what is under it) */
  only?: string;
  /** ...under this name */
  rename?: string;
}

type Header = Partial<tarStream.Header> & Pick<tarStream.Header, 'name'>;

/** Packs the tree under `root` (sorted, hard links as links) into a tar stream. */
export function packTree(root: string, opts: PackOptions = {}): Readable {
  const pack = tarStream.pack();
  const inodes = new Map<string, string>();
  const entry = (h: Header, body?: Buffer) => new Promise<void>((resolve, reject) => {
    pack.entry(h, body ?? Buffer.alloc(0), (e) => (e ? reject(e) : resolve()));
  });
  const fileEntry = async (h: Header, file: string) => {
    await new Promise<void>((resolve, reject) => {
      const sink = pack.entry(h, (e) => (e ? reject(e) : resolve()));
      const src = fs.createReadStream(file);
      src.on('error', (e) => { sink.destroy(e); reject(e); });
      src.on('data', (c) => { if (!sink.write(c as Buffer)) { src.pause(); sink.once('drain', () => src.resume()); } });
      src.on('end', () => sink.end(null as unknown as Buffer));
    });
  };
  const meta = (name: string, st: fs.Stats): Header => ({
    name, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime, size: 0,
  });
  const walk = async (rel: string) => {
    const dir = path.join(root, rel);
    const names = rel === '' && opts.only !== undefined ? [opts.only] : fs.readdirSync(dir).sort();
    for (const n of names) {
      const r = rel ? `${rel}/${n}` : n;
      const p = path.join(root, r);
      if (opts.exclude?.(r)) continue;
      const st = fs.lstatSync(p);
      const shown = opts.only !== undefined && opts.rename !== undefined ? `${opts.rename}${r.slice(opts.only.length)}` : r;
      const name = `${opts.prefix ?? ''}${shown}`;
      if (st.isDirectory()) {
        if (!opts.skipDirHeader?.(r)) await entry({ ...meta(`${name}/`, st), type: 'directory' });
        if (opts.overlay && isOpaque(p)) await entry({ name: `${name}/${WH_OPAQUE}`, type: 'file', mode: 0o644, size: 0, mtime: st.mtime, uid: 0, gid: 0 });
        await walk(r);
      } else if (st.isCharacterDevice() && opts.overlay && st.rdev === 0) {
        const wh = path.posix.join(path.posix.dirname(name), `${WH_PREFIX}${path.posix.basename(name)}`);
        await entry({ name: wh, type: 'file', mode: 0o644, size: 0, mtime: st.mtime, uid: 0, gid: 0 });
      } else if (st.isSymbolicLink()) {
        await entry({ ...meta(name, st), type: 'symlink', linkname: fs.readlinkSync(p) });
      } else if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? inodes.get(key) : undefined;
        if (first) {
          await entry({ ...meta(name, st), type: 'link', linkname: first });
          continue;
        }
        if (st.nlink > 1) inodes.set(key, name);
        await fileEntry({ ...meta(name, st), type: 'file', size: st.size }, p);
      } else if (st.isFIFO()) {
        await entry({ ...meta(name, st), type: 'fifo' });
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        await entry({ ...meta(name, st), type: st.isBlockDevice() ? 'block-device' : 'character-device', devmajor: Math.floor(st.rdev / 256) & 0xfff, devminor: (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00) });
      }
      // sockets are not carried in layers (as in Docker)
    }
  };
  const start = async () => {
    if (opts.rootEntry !== undefined) await entry({ ...meta(`${opts.rootEntry}/`, fs.lstatSync(root)), type: 'directory' });
    await walk('');
  };
  start().then(() => pack.finalize(), (e: Error) => pack.destroy(e));
  return Readable.from(pack as unknown as AsyncIterable<Buffer>);
}

/** A safe relative name of a tar member: no absolute path, no `..` out of the root. */
export function cleanMemberName(name: string): string | null {
  const rel = path.posix.normalize(name.replace(/^\/+/, ''));
  if (rel === '..' || rel.startsWith('../')) return null;
  const n = rel.replace(/\/$/, '');
  if (n === '' || n === '.') return null;
  return n;
}

/** Throws when a directory on the way to `rel` under root is a symlink (a layer may not write through one). */
function ensureParents(root: string, rel: string): string {
  const parts = rel.split('/');
  let cur = root;
  for (const part of parts.slice(0, -1)) {
    cur = path.join(cur, part);
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(cur);
    } catch {
      fs.mkdirSync(cur, { mode: 0o755 });
      continue;
    }
    if (st.isSymbolicLink()) throw new Error(`cannot apply ${rel}: ${path.relative(root, cur)} is a symlink`);
    if (!st.isDirectory()) {
      fs.rmSync(cur, { force: true });
      fs.mkdirSync(cur, { mode: 0o755 });
    }
  }
  return path.join(root, rel);
}

function removeAny(p: string): void {
  fs.rmSync(p, { recursive: true, force: true });
}

export interface ApplyResult {
  /** sha256 of the tar bytes (the layer's diff id) */
  diffId: string;
  size: number;
}

export interface ApplyOptions {
  /** `.wh.` entries delete (a layer); off for a plain archive (cp) */
  whiteouts?: boolean;
  /** owner of everything extracted (cp without -a: the container's root), else the archive's */
  owner?: { uid: number; gid: number };
  /** refuse to replace a directory with a non-directory or the reverse (PUT archive's noOverwriteDirNonDir) */
  noOverwriteDirNonDir?: boolean;
  /** the root links resolve against when extracting below it (a container's root for PUT archive) */
  scopeRoot?: string;
}

/**
 * Applies a tar stream onto `root`; returns its diff id. Nothing is written through a symlink: a member
 * whose parent directory is a link is refused, a hard link's target is resolved inside root.
 */
export async function applyLayer(input: Readable, root: string, opts: ApplyOptions = { whiteouts: true }): Promise<ApplyResult> {
  const hash = createHash('sha256');
  let size = 0;
  const extract = tarStream.extract();
  const dirTimes: [string, Date][] = [];
  const isRoot = process.getuid?.() === 0;
  const done = (async () => {
    for await (const entry of extract) {
      const h = entry.header;
      const rel = cleanMemberName(h.name);
      try {
        if (!rel) {
          if (/^\/*\.?\/?$/.test(h.name)) continue; // the archive's root entry
          throw new Error(`${JSON.stringify(h.name)} is outside of the destination`);
        }
        const base = path.posix.basename(rel);
        if (opts.whiteouts && base === WH_OPAQUE) {
          const dir = ensureParents(root, rel).slice(0, -(WH_OPAQUE.length + 1));
          for (const n of fs.existsSync(dir) ? fs.readdirSync(dir) : []) removeAny(path.join(dir, n));
          continue;
        }
        if (opts.whiteouts && base.startsWith(WH_PREFIX)) {
          const target = ensureParents(root, path.posix.join(path.posix.dirname(rel), base.slice(WH_PREFIX.length)));
          removeAny(target);
          continue;
        }
        const dest = ensureParents(root, rel);
        const own = () => {
          if (isRoot) fs.lchownSync(dest, opts.owner?.uid ?? h.uid ?? 0, opts.owner?.gid ?? h.gid ?? 0);
        };
        let st: fs.Stats | undefined;
        try { st = fs.lstatSync(dest); } catch { st = undefined; }
        if (opts.noOverwriteDirNonDir && st) {
          const isDir = h.type === 'directory';
          if (st.isDirectory() && !isDir) throw new Error(`cannot overwrite directory "/${rel}" with non-directory "/${rel}"`);
          if (!st.isDirectory() && isDir) throw new Error(`cannot overwrite non-directory "/${rel}" with directory "/${rel}"`);
        }
        if (h.type === 'directory') {
          if (st && !st.isDirectory()) removeAny(dest);
          if (!st || !st.isDirectory()) fs.mkdirSync(dest, { mode: 0o755 });
          own();
          fs.chmodSync(dest, (h.mode ?? 0o755) & 0o7777);
          if (h.mtime) dirTimes.push([dest, h.mtime]);
          continue;
        }
        removeAny(dest);
        if (h.type === 'file' || h.type === 'contiguous-file') {
          await new Promise<void>((resolve, reject) => {
            const out = fs.createWriteStream(dest, { mode: 0o600 });
            out.on('error', reject);
            out.on('finish', resolve);
            entry.on('error', reject);
            entry.pipe(out);
          });
          own();
          fs.chmodSync(dest, (h.mode ?? 0o644) & 0o7777);
          if (h.mtime) fs.utimesSync(dest, h.mtime, h.mtime);
          continue;
        }
        if (h.type === 'symlink') {
          fs.symlinkSync(h.linkname ?? '', dest);
          own();
          if (h.mtime) fs.lutimesSync(dest, h.mtime, h.mtime);
        } else if (h.type === 'link') {
          const target = cleanMemberName(h.linkname ?? '');
          if (!target) throw new Error(`bad hard link target ${h.linkname}`);
          const scope = opts.scopeRoot ?? root;
          const src = resolveInScope(scope, path.relative(scope, path.join(root, target)), false);
          if (fs.lstatSync(src).isDirectory()) throw new Error(`hard link to a directory: ${h.linkname}`);
          fs.linkSync(src, dest);
        } else if (h.type === 'fifo') {
          const { ensureFifo } = await import('../../runtime/mounts.ts');
          ensureFifo(dest);
          own();
          fs.chmodSync(dest, (h.mode ?? 0o644) & 0o7777);
        }
        // device nodes are skipped (runc provides /dev; an unprivileged daemon could not create them)
      } finally {
        entry.resume();
      }
    }
  })();
  const counted = input.on('data', (c: Buffer) => { hash.update(c); size += c.length; });
  counted.pipe(extract as unknown as NodeJS.WritableStream);
  input.on('error', (e) => extract.destroy(e));
  await done;
  for (const [d, t] of dirTimes.reverse()) fs.utimesSync(d, t, t);
  return { diffId: `sha256:${hash.digest('hex')}`, size };
}
