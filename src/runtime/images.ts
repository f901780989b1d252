// Image import: a root filesystem tarball (plain, gzip, bzip2, xz or zstd, recognised by its magic
// bytes) streamed into GNU tar, while the uncompressed bytes are hashed: their sha256 is the image id.
// GNU tar does the extraction because it gets the hard parts right: hard links, sparse files, xattrs
// (file capabilities such as ping's cap_net_raw), PAX/GNU long names, and members that try to escape
// the destination (`..`, absolute names, symlinks pointing outside: those it creates last, as
// placeholders first).
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Duplex, PassThrough, Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';

export type Compression = 'none' | 'gzip' | 'bzip2' | 'xz' | 'zstd';

/** The compression of a stream from its first bytes (at least 6 for xz). */
export function sniffCompression(head: Uint8Array): Compression {
  const b = head;
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
  if (b.length >= 3 && b[0] === 0x42 && b[1] === 0x5a && b[2] === 0x68) return 'bzip2';
  if (b.length >= 6 && b[0] === 0xfd && b[1] === 0x37 && b[2] === 0x7a && b[3] === 0x58 && b[4] === 0x5a && b[5] === 0x00) return 'xz';
  if (b.length >= 4 && b[0] === 0x28 && b[1] === 0xb5 && b[2] === 0x2f && b[3] === 0xfd) return 'zstd';
  return 'none';
}

/** Takes the first `n` bytes of a stream (fewer if it is shorter) and gives back a stream of all of it. */
export async function peek(src: Readable, n: number): Promise<{ head: Buffer; stream: Readable }> {
  const chunks: Buffer[] = [];
  let have = 0;
  let ended = false;
  await new Promise<void>((resolve, reject) => {
    const onData = (c: Buffer | string) => {
      const b = typeof c === 'string' ? Buffer.from(c) : c;
      chunks.push(b);
      have += b.length;
      if (have >= n) done();
    };
    const onEnd = () => {
      ended = true;
      done();
    };
    const onError = (e: Error) => {
      cleanup();
      reject(e);
    };
    const cleanup = () => {
      src.off('data', onData);
      src.off('end', onEnd);
      src.off('error', onError);
    };
    const done = () => {
      cleanup();
      src.pause();
      resolve();
    };
    src.on('data', onData);
    src.once('end', onEnd);
    src.once('error', onError);
  });
  const head = Buffer.concat(chunks);
  const out = new PassThrough();
  out.write(head);
  if (ended) out.end();
  else {
    src.on('error', (e) => out.destroy(e));
    src.pipe(out);
    src.resume();
  }
  return { head: head.subarray(0, n), stream: out };
}

/** A decompressor stream; external tools for the formats zlib lacks (their failure surfaces as an error). */
export function decompressor(kind: Compression, procs: ChildProcess[]): Duplex {
  switch (kind) {
    case 'none':
      return new PassThrough();
    case 'gzip':
      return zlib.createGunzip();
    default: {
      if (kind === 'zstd' && typeof (zlib as { createZstdDecompress?: unknown }).createZstdDecompress === 'function') {
        return (zlib as unknown as { createZstdDecompress(): Duplex }).createZstdDecompress();
      }
      // bzip2, xz, and zstd on a Node without it
      const tool = kind === 'bzip2' ? 'bzip2' : kind === 'xz' ? 'xz' : 'zstd';
      const p = spawn(tool, ['-dc'], { stdio: ['pipe', 'pipe', 'pipe'] });
      procs.push(p);
      let err = '';
      p.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const d = Duplex.from({ writable: p.stdin, readable: p.stdout });
      p.on('error', (e) => d.destroy(new Error(`${tool}: ${e.message}`)));
      p.on('close', (code) => {
        if (code !== 0) d.destroy(new Error(`${tool}: ${err.trim() || `exit status ${code}`}`));
      });
      return d;
    }
  }
}

/** Counts and hashes what goes through. */
export class Digest extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}

/** Apparent size of a tree as Docker counts it: every non-directory once (hard links deduplicated). */
export async function treeSize(root: string): Promise<number> {
  const seen = new Set<string>();
  let size = 0;
  const walk = async (dir: string): Promise<void> => {
    const entries = await fs.promises.readdir(dir, { withFileTypes: true });
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        await walk(p);
        continue;
      }
      const st = await fs.promises.lstat(p, { bigint: true });
      if (st.size === 0n) continue;
      const key = `${st.dev}:${st.ino}`;
      if (seen.has(key)) continue;
      seen.add(key);
      size += Number(st.size);
    }
  };
  await walk(root);
  return size;
}

/** tar's complaints that do not fail an import: device nodes it may not create (unprivileged, nodev). */
export function fatalTarErrors(stderr: string): string[] {
  return stderr.split('\n').map((l) => l.trim()).filter((l) => l
    && !/Cannot mknod: Operation not permitted/.test(l)
    && !/Exiting with failure status due to previous errors/.test(l)
    && !/^tar: Ignoring unknown extended header keyword/.test(l));
}

/**
 * GNU tar extracting into `dest` what comes through `stream` → `taps` → the decompressor for `kind` → a
 * digest of the uncompressed bytes. tar's harmless complaints (device nodes it may not create) pass; the
 * digest (of every byte, the padding after the archive's end included) is returned once tar is done.
 * Processes it starts go into `procs`, so that the caller's clean-up can kill them.
 */
export async function untar(stream: Readable, kind: Compression, dest: string, procs: ChildProcess[], taps: Transform[] = []): Promise<Digest> {
  const isRoot = process.getuid?.() === 0;
  const tar = spawn('tar', [
    '-x', '-f', '-', '-C', dest, '--numeric-owner', '--preserve-permissions', '--xattrs', '--xattrs-include=*',
    ...(isRoot ? ['--same-owner'] : ['--no-same-owner']),
  ], { stdio: ['pipe', 'ignore', 'pipe'] });
  procs.push(tar);
  let tarErr = '';
  tar.stderr.on('data', (d: Buffer) => (tarErr += d.toString()));
  const tarDone = new Promise<number>((resolve, reject) => {
    tar.on('error', (e) => reject(new Error(`tar: ${e.message}`)));
    tar.on('close', (code) => resolve(code ?? 128));
  });
  // tar may stop reading at the archive's end marker, before the padding after it: the rest is still
  // hashed (it is part of the archive's bytes), just no longer written.
  const digest = new Digest();
  let tarGone = false;
  tar.stdin.on('error', () => (tarGone = true));
  const sink = async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) {
      if (tarGone || tar.stdin.destroyed) continue;
      if (!tar.stdin.write(chunk)) {
        await new Promise<void>((r) => {
          const go = () => {
            tar.stdin.off('drain', go);
            tar.stdin.off('close', go);
            r();
          };
          tar.stdin.on('drain', go);
          tar.stdin.on('close', go);
        });
      }
    }
    tar.stdin.end();
  };
  const fed = (pipeline as (...s: unknown[]) => Promise<void>)(stream, ...taps, decompressor(kind, procs), digest, sink);
  const [, code] = await Promise.all([fed.catch((e: Error) => {
    tar.kill('SIGKILL');
    throw kind === 'none' ? e : new Error(`${kind} decompression failed: ${e.message}`);
  }), tarDone]);
  if (code !== 0) {
    const fatal = fatalTarErrors(tarErr);
    if (code !== 2 || fatal.length) throw new Error(fatal.join('; ') || `tar exited with status ${code}`);
  }
  return digest;
}

/**
 * Unpacks a root filesystem tarball into `destDir` (created; an existing empty directory is fine), as
 * root with numeric owners; device nodes that cannot be created are skipped. Returns the sha256 of the
 * uncompressed tar (the image id is `sha256:<hex>`) and the unpacked size in bytes. On failure nothing is
 * left at destDir.
 */
export async function unpackImage(input: NodeJS.ReadableStream, destDir: string): Promise<{ digest: string; size: number }> {
  const dest = path.resolve(destDir);
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  try {
    fs.mkdirSync(dest, { mode: 0o755 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || fs.readdirSync(dest).length) {
      throw new Error(`cannot unpack into ${dest}: ${(e as NodeJS.ErrnoException).code === 'EEXIST' ? 'not empty' : (e as Error).message}`);
    }
  }
  const procs: ChildProcess[] = [];
  try {
    const src = input instanceof Readable ? input : new Readable().wrap(input);
    const { head, stream } = await peek(src, 6);
    if (head.length === 0) throw new Error('empty input: not a tar archive');
    const kind = sniffCompression(head);

    const digest = await untar(stream, kind, dest, procs);
    if (digest.bytes === 0) throw new Error('empty input: not a tar archive');
    return { digest: digest.hash.digest('hex'), size: await treeSize(dest) };
  } catch (e) {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
    fs.rmSync(dest, { recursive: true, force: true });
    throw e;
  }
}
