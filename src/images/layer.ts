// One layer: a tar stream (compressed or not) unpacked into a directory in the form overlayfs reads as a
// lower layer, in one pass that also keeps the stream's bytes as a blob and computes both digests: the
// blob's (what a registry names it by) and the diff ID (sha256 of the uncompressed tar, what an image's
// config lists). GNU tar does the extraction (hard links, sparse files, xattrs such as file capabilities,
// PAX/GNU long names; members with `..` are refused, absolute names made relative, symlinks that point
// outside are created last so nothing is written through them); Docker's whiteouts are then converted to
// overlayfs' own: `.wh.NAME` → a 0:0 character device NAME, `.wh..wh..opq` → trusted.overlay.opaque=y on
// its directory.
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import koffi from 'koffi';
import { peek, sniffCompression, treeSize, untar, type Compression } from '../runtime/images.ts';

const libc = koffi.load('libc.so.6');
const c_mknod = libc.func('int mknod(const char *path, uint32_t mode, uint64_t dev)');
const c_lsetxattr = libc.func('int lsetxattr(const char *path, const char *name, const char *value, size_t size, int flags)');

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE = '.wh..wh..opq';

export interface ExtractResult {
  diffId: string; // sha256:<hex> of the uncompressed tar
  blobDigest: string; // sha256:<hex> of the bytes as they came
  blobSize: number;
  compression: Compression;
  size: number; // unpacked bytes, as Docker counts a layer's size
}

/** Hashes what goes through and writes it to a file descriptor (the blob being kept). */
class Tap extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  private readonly fd: number | undefined;
  constructor(fd: number | undefined) {
    super();
    this.fd = fd;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    if (this.fd !== undefined) {
      fs.write(this.fd, chunk, 0, chunk.length, null, (err) => cb(err, chunk));
    } else cb(null, chunk);
  }
}

/**
 * Unpacks a layer stream into `dest` (created, must not exist) and writes its bytes to `blobPath` when
 * given. On failure neither is left behind. The caller renames both into place once it has checked
 * the digests.
 */
export async function extractLayer(input: NodeJS.ReadableStream, dest: string, blobPath?: string): Promise<ExtractResult> {
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.mkdirSync(dest, { mode: 0o755 });
  const procs: ChildProcess[] = [];
  let fd: number | undefined;
  try {
    if (blobPath) fd = fs.openSync(blobPath, 'wx', 0o644);
    const src = input instanceof Readable ? input : new Readable().wrap(input);
    const { head, stream } = await peek(src, 6);
    if (head.length === 0) throw new Error('empty input: not a tar archive');
    const compression = sniffCompression(head);
    const raw = new Tap(fd);
    const digest = await untar(stream, compression, dest, procs, [raw]);
    if (digest.bytes === 0) throw new Error('empty input: not a tar archive');
    if (fd !== undefined) {
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      fd = undefined;
    }
    await convertWhiteouts(dest);
    return {
      diffId: `sha256:${digest.hash.digest('hex')}`,
      blobDigest: `sha256:${raw.hash.digest('hex')}`,
      blobSize: raw.bytes,
      compression,
      size: await treeSize(dest),
    };
  } catch (e) {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
    if (fd !== undefined) fs.closeSync(fd);
    if (blobPath) fs.rmSync(blobPath, { force: true });
    fs.rmSync(dest, { recursive: true, force: true });
    throw e;
  }
}

/** Docker's AUFS-style whiteouts → overlayfs whiteouts, in place (never following symlinks). */
export async function convertWhiteouts(root: string): Promise<void> {
  const walk = async (dir: string): Promise<void> => {
    const entries = await fs.promises.readdir(dir, { withFileTypes: true });
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.name === OPAQUE) {
        fs.rmSync(p, { force: true });
        setXattr(dir, 'trusted.overlay.opaque', 'y');
      } else if (e.name.startsWith(WHITEOUT_PREFIX + WHITEOUT_PREFIX)) {
        fs.rmSync(p, { recursive: true, force: true }); // AUFS metadata (.wh..wh.plnk, .wh..wh.aufs)
      } else if (e.name.startsWith(WHITEOUT_PREFIX)) {
        const target = path.join(dir, e.name.slice(WHITEOUT_PREFIX.length));
        fs.rmSync(p, { recursive: true, force: true });
        fs.rmSync(target, { recursive: true, force: true });
        if (c_mknod(target, fs.constants.S_IFCHR, 0) !== 0) throw new Error(`whiteout ${target}: mknod failed (errno ${koffi.errno()})`);
      } else if (e.isDirectory()) {
        await walk(p);
      }
    }
  };
  await walk(root);
}

function setXattr(p: string, name: string, value: string): void {
  const v = Buffer.from(value);
  if (c_lsetxattr(p, name, v as unknown as string, v.length, 0) !== 0) throw new Error(`setxattr ${name} on ${p} failed (errno ${koffi.errno()})`);
}
