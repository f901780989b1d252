// The image store: content-addressed blobs, layers unpacked once by diff ID, image configs by image ID,
// and the references table. Everything the registry client, save/load and import need goes through
// this API; nothing outside src/images/ touches the directories.
//
// ## Contract (for the registry client, save/load, import, the builder)
//
// Digests are always `sha256:<64 hex>`. References are stored normalized (reference.ts `normalize`:
// `docker.io/library/busybox:latest`, `localhost:5000/box@sha256:...`).
//
// Blobs (compressed or not, kept for push):
//   hasBlob(digest)                      → boolean
//   ingestBlob(stream, digest?)          → {digest, size}: written to a temp file, hashed while
//                                          streaming, renamed into blobs/sha256/<hex> only when the digest
//                                          matches (a mismatch throws and stores nothing)
//   openBlob(digest)                     → a Readable of the blob's bytes
//   (a blob no layer record lists is removed at the next daemon start: keep configs and manifests in the
//    image record / your own state, not as loose blobs)
// Layers (unpacked once, shared by every image that lists the diff ID):
//   hasLayer(diffId)                     → boolean (check before downloading: a present layer is skipped)
//   ingestLayer(stream, {digest?, diffId?, mediaType?}) → LayerRecord: one pass over a layer blob
//                                          (gzip, zstd, xz, bzip2 or plain tar): kept as a blob, unpacked
//                                          into a temp dir, both digests checked against the expected
//                                          ones, then renamed into place; on any failure nothing stays.
//                                          The layer is pinned (not garbage-collected, e.g. by an rmi
//                                          of another image that shared it) until unpin([diffId]): call
//                                          it once per ingest after putImage, success or not (finally).
//   unpackBlob(digest, mediaType?)       → LayerRecord from a blob already stored (pinned likewise)
//   unpin(diffIds)                       ends the pins of ingests; a layer no image lists then goes
//   layerTar(diffId)                     → a Readable of the uncompressed layer tar (exactly diffId's bytes)
//   pushBlob(diffId)                     → {digest, size, mediaType}: a gzip blob of the layer for push;
//                                          an existing compressed blob is reused, else one is produced from
//                                          layerTar, stored and remembered
//   addLayerBlob(diffId, {digest, size, mediaType})  remember that a stored blob is this layer (e.g. after
//                                          a push made or found one)
// Images:
//   putImage(configBytes, layers[{diffId, blobDigest?, mediaType?, size?}], refs, {repoDigest?, parent?})
//                                        → ImageRecord: the config's rootfs.diff_ids must equal the layers
//                                          (all present); image ID = sha256(configBytes); the record, its
//                                          references and repo digest are written in one transaction
//   image(id) / images() / configBytes(id) / refsOf(id)
//   layersForPush(id)                    → [{diffId, size}] bottom first; pair with pushBlob()
//   lowerDirs(id)                        → the layer directories for overlayfs, top layer first
//   deleteImage(id) / gcLayers()         → the record goes, then every layer no image lists and no ingest pins
// Concurrency: ingests of the same layer may run at once (the second finds the first's and keeps only its
// blob); everything that changes records is synchronous, so no two changes interleave.
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import type { StatementSync } from 'node:sqlite';
import type { Store } from '../store/sqlite.ts';
import type { ImageRecord, ImageRunConfig } from '../core/types.ts';
import { LoomError, invalidParameter, notFound } from '../util/errors.ts';
import { extractLayer } from './layer.ts';
import { Digest, decompressor, peek, sniffCompression } from '../runtime/images.ts';
import { normalize } from './reference.ts';

export const MEDIA = {
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
};

export interface LayerBlob {
  digest: string;
  size: number;
  mediaType: string;
}

export interface LayerRecord {
  diffId: string;
  link: string; // short name under l/ (overlayfs' option length)
  size: number; // unpacked bytes
  blobs: LayerBlob[]; // stored blobs whose uncompressed bytes are this layer's tar (digest == diffId: plain)
  created: string;
  /** set while migrating a legacy image: the rootfs directory still to be moved into place */
  legacyFrom?: string;
}

export interface PutLayer {
  diffId: string;
  blobDigest?: string;
  mediaType?: string;
  size?: number;
}

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
const hex = (digest: string) => {
  if (!DIGEST_RE.test(digest)) throw invalidParameter(`invalid digest: ${digest}`);
  return digest.slice(7);
};

export class ImageStore {
  readonly root: string;
  private readonly db: Store;
  private readonly pinned = new Map<string, number>();
  private readonly st: Record<string, StatementSync>;

  constructor(db: Store, root: string) {
    this.db = db;
    this.root = root;
    for (const d of ['blobs/sha256', 'layers', 'l', 'tmp']) fs.mkdirSync(path.join(root, d), { recursive: true });
    db.db.exec('CREATE TABLE IF NOT EXISTS image_layers (diff_id TEXT PRIMARY KEY, doc TEXT NOT NULL)');
    this.st = {
      getLayer: db.db.prepare('SELECT doc FROM image_layers WHERE diff_id = ?'),
      putLayer: db.db.prepare('INSERT INTO image_layers (diff_id, doc) VALUES (?, ?) ON CONFLICT(diff_id) DO UPDATE SET doc = excluded.doc'),
      delLayer: db.db.prepare('DELETE FROM image_layers WHERE diff_id = ?'),
      allLayers: db.db.prepare('SELECT doc FROM image_layers'),
    };
  }

  private tmpPath(): string {
    return path.join(this.root, 'tmp', `${process.pid}-${randomBytes(8).toString('hex')}`);
  }

  // ------------------------------------------------------------------ blobs

  blobPath(digest: string): string {
    return path.join(this.root, 'blobs/sha256', hex(digest));
  }

  hasBlob(digest: string): boolean {
    return DIGEST_RE.test(digest) && fs.existsSync(this.blobPath(digest));
  }

  openBlob(digest: string): Readable {
    if (!this.hasBlob(digest)) throw notFound(`blob unknown: ${digest}`);
    return fs.createReadStream(this.blobPath(digest));
  }

  blobSize(digest: string): number {
    return fs.statSync(this.blobPath(digest)).size;
  }

  async ingestBlob(input: NodeJS.ReadableStream, expected?: string): Promise<{ digest: string; size: number }> {
    if (expected) hex(expected);
    const tmp = this.tmpPath();
    const h = new Digest();
    try {
      await pipeline(input, h, fs.createWriteStream(tmp, { flags: 'wx' }));
      const digest = `sha256:${h.hash.digest('hex')}`;
      if (expected && digest !== expected) throw invalidParameter(`digest mismatch: expected ${expected}, got ${digest}`);
      fs.renameSync(tmp, this.blobPath(digest));
      return { digest, size: h.bytes };
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }

  // ------------------------------------------------------------------ layers

  layer(diffId: string): LayerRecord | undefined {
    const r = this.st.getLayer!.get(diffId) as { doc: string } | undefined;
    return r ? (JSON.parse(r.doc) as LayerRecord) : undefined;
  }

  hasLayer(diffId: string): boolean {
    return this.layer(diffId) !== undefined;
  }

  layers(): LayerRecord[] {
    return (this.st.allLayers!.all() as { doc: string }[]).map((r) => JSON.parse(r.doc) as LayerRecord);
  }

  private saveLayer(l: LayerRecord): void {
    this.st.putLayer!.run(l.diffId, JSON.stringify(l));
  }

  layerDir(diffId: string): string {
    return path.join(this.root, 'layers', hex(diffId), 'diff');
  }

  private pin(diffId: string): void {
    this.pinned.set(diffId, (this.pinned.get(diffId) ?? 0) + 1);
  }

  unpin(diffIds: string[]): void {
    const free: string[] = [];
    for (const d of diffIds) {
      const n = (this.pinned.get(d) ?? 0) - 1;
      if (n > 0) this.pinned.set(d, n);
      else {
        this.pinned.delete(d);
        free.push(d);
      }
    }
    if (free.length) this.gcLayers(free);
  }

  /**
   * A layer from a stream, in one pass: blob kept, tree unpacked, digests checked, then both renamed into
   * place. An existing layer is kept (the new copy is dropped) but the blob is remembered for it.
   */
  async ingestLayer(input: NodeJS.ReadableStream, want: { digest?: string; diffId?: string; mediaType?: string } = {}): Promise<LayerRecord> {
    if (want.digest) hex(want.digest);
    if (want.diffId) hex(want.diffId);
    const tmp = this.tmpPath();
    const blobTmp = `${tmp}.blob`;
    try {
      const r = await extractLayer(input, path.join(tmp, 'diff'), blobTmp);
      if (want.digest && r.blobDigest !== want.digest) throw invalidParameter(`digest mismatch: expected ${want.digest}, got ${r.blobDigest}`);
      if (want.diffId && r.diffId !== want.diffId) throw invalidParameter(`layer diff ID mismatch: expected ${want.diffId}, got ${r.diffId}`);
      const blob: LayerBlob = {
        digest: r.blobDigest,
        size: r.blobSize,
        mediaType: want.mediaType ?? (r.compression === 'gzip' ? MEDIA.dockerLayer : r.compression === 'zstd' ? MEDIA.ociLayerZstd : MEDIA.ociLayer),
      };
      // bzip2/xz (an `import` of a .tar.xz) are kept as they came, under a type no registry is sent:
      // pushBlob makes a gzip blob from them when asked
      if (r.compression === 'bzip2' || r.compression === 'xz') blob.mediaType = `application/x-${r.compression}`;
      if (!this.hasBlob(blob.digest)) fs.renameSync(blobTmp, this.blobPath(blob.digest));
      return this.commitLayer(r.diffId, path.join(tmp, 'diff'), r.size, blob);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
      fs.rmSync(blobTmp, { force: true });
    }
  }

  /** Layer from a stored blob (a pull that downloaded first). */
  async unpackBlob(digest: string, mediaType?: string): Promise<LayerRecord> {
    const tmp = this.tmpPath();
    try {
      const r = await extractLayer(this.openBlob(digest), path.join(tmp, 'diff'));
      if (r.blobDigest !== digest) throw invalidParameter(`digest mismatch: expected ${digest}, got ${r.blobDigest}`);
      const blob = { digest, size: r.blobSize, mediaType: mediaType ?? (r.compression === 'gzip' ? MEDIA.dockerLayer : MEDIA.ociLayer) };
      return this.commitLayer(r.diffId, path.join(tmp, 'diff'), r.size, blob);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }

  private commitLayer(diffId: string, unpacked: string, size: number, blob: LayerBlob): LayerRecord {
    const existing = this.layer(diffId);
    if (existing) {
      if (!existing.blobs.some((b) => b.digest === blob.digest)) {
        existing.blobs.push(blob);
        this.saveLayer(existing);
      }
      this.pin(diffId);
      return existing;
    }
    const dir = path.join(this.root, 'layers', hex(diffId));
    fs.mkdirSync(dir, { recursive: true });
    const link = this.newLink();
    // rename first, record second: a crash in between leaves a directory without a record, swept at start
    fs.renameSync(unpacked, path.join(dir, 'diff'));
    fs.symlinkSync(`../layers/${hex(diffId)}/diff`, path.join(this.root, 'l', link));
    const rec: LayerRecord = { diffId, link, size, blobs: [blob], created: new Date().toISOString() };
    this.saveLayer(rec);
    this.pin(diffId);
    return rec;
  }

  private newLink(): string {
    for (;;) {
      const l = randomBytes(8).toString('base64url').replace(/[-_]/g, 'x').slice(0, 10).toUpperCase();
      if (!fs.existsSync(path.join(this.root, 'l', l))) return l;
    }
  }

  addLayerBlob(diffId: string, blob: LayerBlob): void {
    const l = this.layer(diffId);
    if (!l) throw notFound(`layer unknown: ${diffId}`);
    if (!this.hasBlob(blob.digest)) throw notFound(`blob unknown: ${blob.digest}`);
    if (!l.blobs.some((b) => b.digest === blob.digest)) {
      l.blobs.push(blob);
      this.saveLayer(l);
    }
  }

  /** The uncompressed tar of a layer: exactly the bytes its diff ID is the hash of. */
  layerTar(diffId: string): Readable {
    const l = this.layer(diffId);
    if (!l) throw notFound(`layer unknown: ${diffId}`);
    const plain = l.blobs.find((b) => b.digest === diffId && this.hasBlob(b.digest));
    if (plain) return this.openBlob(plain.digest);
    const any = l.blobs.find((b) => this.hasBlob(b.digest));
    if (!any) throw new LoomError(500, `layer ${diffId} has no stored tar`);
    const out = new PassThrough();
    (async () => {
      const { head, stream } = await peek(this.openBlob(any.digest), 6);
      await pipeline(stream, decompressor(sniffCompression(head), []), out);
    })().catch((e) => out.destroy(e));
    return out;
  }

  /** A gzip blob of the layer for a registry: an existing one, or one made now and remembered. */
  async pushBlob(diffId: string): Promise<LayerBlob> {
    const l = this.layer(diffId);
    if (!l) throw notFound(`layer unknown: ${diffId}`);
    const gz = l.blobs.find((b) => b.digest !== diffId && this.hasBlob(b.digest) && /gzip|zstd/.test(b.mediaType));
    if (gz) return gz;
    const { digest, size } = await this.ingestBlob(this.layerTar(diffId).pipe(zlib.createGzip()));
    const blob = { digest, size, mediaType: MEDIA.dockerLayer };
    this.addLayerBlob(diffId, blob);
    return blob;
  }

  // ------------------------------------------------------------------ images

  image(id: string): ImageRecord | undefined {
    return this.db.get<ImageRecord>('images', id);
  }

  images(): ImageRecord[] {
    return this.db.all<ImageRecord>('images');
  }

  configBytes(id: string): Buffer {
    const i = this.image(id);
    if (!i) throw notFound(`No such image: ${id}`);
    return Buffer.from(i.configJson);
  }

  refsOf(id: string): string[] {
    return this.db.tags().filter((t) => t.image_id === id).map((t) => t.ref);
  }

  layersForPush(id: string): { diffId: string; size: number }[] {
    const i = this.image(id);
    if (!i) throw notFound(`No such image: ${id}`);
    return i.layers.map((d) => ({ diffId: d, size: this.layer(d)?.size ?? 0 }));
  }

  /** overlayfs lower directories (short links), top layer first. */
  lowerDirs(id: string): string[] {
    const i = this.image(id);
    if (!i) throw notFound(`No such image: ${id}`);
    if (!i.layers && i.rootfs) return [i.rootfs]; // an older data root's image not migrated (yet)
    return this.lowerDirsOfLayers(i.layers);
  }

  /** The short links of layers given bottom first, top first (what a builder mounts for a step). */
  lowerDirsOfLayers(diffIds: string[]): string[] {
    return [...diffIds].reverse().map((d) => {
      const l = this.layer(d);
      if (!l) throw new LoomError(500, `layer ${d} is missing`);
      return path.join(this.root, 'l', l.link);
    });
  }

  /**
   * Stores an image: config bytes (ID = their sha256), layers (all already present, in the config's order),
   * references (normalized or not; a reference on another image moves here) and the repo digest, in one
   * transaction. Returns the record; `moved` lists images that lost a reference to it.
   */
  putImage(configBytes: Buffer | string, layers: PutLayer[], refs: string[] = [], opts: { repoDigest?: string; parent?: string } = {}): ImageRecord {
    const bytes = Buffer.isBuffer(configBytes) ? configBytes : Buffer.from(configBytes);
    let cfg: ImageConfigJson;
    try {
      cfg = JSON.parse(bytes.toString('utf8'));
    } catch (e) {
      throw invalidParameter(`invalid image config: ${(e as Error).message}`);
    }
    const diffIds = cfg.rootfs?.diff_ids ?? [];
    if (cfg.rootfs?.type !== 'layers') throw invalidParameter('invalid image config: rootfs.type must be "layers"');
    if (diffIds.length !== layers.length || diffIds.some((d, i) => d !== layers[i]!.diffId)) {
      throw invalidParameter(`layers do not match the image config's rootfs.diff_ids`);
    }
    for (const l of layers) if (!this.hasLayer(l.diffId)) throw invalidParameter(`layer ${l.diffId} is not in the store`);
    const id = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    const normRefs = refs.map((r) => normalize(r));
    if (opts.repoDigest) normRefs.push(normalize(opts.repoDigest));
    const prev = this.image(id);
    const rec: ImageRecord = {
      id,
      name: normRefs[0] ?? prev?.name ?? id,
      created: cfg.created ?? prev?.created ?? new Date(0).toISOString(),
      size: layers.reduce((n, l) => n + (this.layer(l.diffId)?.size ?? 0), 0),
      comment: cfg.comment ?? '',
      config: runConfigOf(cfg),
      layers: diffIds,
      configJson: bytes.toString('utf8'),
      parent: opts.parent ?? prev?.parent ?? '',
      ...(normRefs.length ? { lastTagTime: new Date().toISOString() } : prev?.lastTagTime ? { lastTagTime: prev.lastTagTime } : {}),
    };
    this.db.tx(() => {
      this.db.put('images', rec);
      for (const r of normRefs) this.db.tag(r, id);
      for (const l of layers) {
        if (!l.blobDigest || !this.hasBlob(l.blobDigest)) continue;
        const lr = this.layer(l.diffId)!;
        if (!lr.blobs.some((b) => b.digest === l.blobDigest)) {
          lr.blobs.push({ digest: l.blobDigest, size: l.size ?? this.blobSize(l.blobDigest), mediaType: l.mediaType ?? MEDIA.dockerLayer });
          this.saveLayer(lr);
        }
      }
    });
    return rec;
  }

  setRecord(rec: ImageRecord): void {
    this.db.put('images', rec);
  }

  /**
   * Deletes the image record (references cascade) and every layer no other image or pull needs; returns
   * the diff IDs of the layers removed.
   */
  deleteImage(id: string): string[] {
    const img = this.image(id);
    if (!img) return [];
    this.db.tx(() => {
      for (const r of this.refsOf(id)) this.db.untag(r);
      this.db.delete('images', id);
    });
    if (!img.layers && img.rootfs) fs.rmSync(path.dirname(img.rootfs), { recursive: true, force: true }); // never migrated
    return this.gcLayers(img.layers ?? []);
  }

  /** Layers (among `candidates`, or all) that no image lists and no pull holds are removed. */
  gcLayers(candidates?: string[]): string[] {
    const removed: string[] = [];
    const used = new Set<string>();
    for (const i of this.images()) for (const d of i.layers ?? []) used.add(d);
    const list = candidates ?? this.layers().map((l) => l.diffId);
    for (const d of list) {
      if (used.has(d) || this.pinned.has(d)) continue;
      const l = this.layer(d);
      if (!l) continue;
      this.st.delLayer!.run(d);
      fs.rmSync(path.join(this.root, 'l', l.link), { force: true });
      for (const b of l.blobs) if (!this.blobInUse(b.digest)) fs.rmSync(this.blobPath(b.digest), { force: true });
      fs.rmSync(path.join(this.root, 'layers', hex(d)), { recursive: true, force: true });
      removed.push(d);
    }
    return removed;
  }

  private blobInUse(digest: string): boolean {
    return this.layers().some((l) => l.blobs.some((b) => b.digest === digest));
  }

  /**
   * At daemon start: temp files of interrupted ingests go, half-moved legacy layers are finished,
   * directories and links without a record go, layers no image lists go, blobs no layer has go.
   */
  sweep(): void {
    fs.rmSync(path.join(this.root, 'tmp'), { recursive: true, force: true });
    fs.mkdirSync(path.join(this.root, 'tmp'));
    const records = new Map(this.layers().map((l) => [l.diffId.slice(7), l]));
    for (const l of records.values()) {
      if (l.legacyFrom) this.finishLegacyMove(l);
    }
    for (const h of fs.readdirSync(path.join(this.root, 'layers'))) {
      if (!records.has(h)) fs.rmSync(path.join(this.root, 'layers', h), { recursive: true, force: true });
    }
    const links = new Set([...records.values()].map((l) => l.link));
    for (const l of fs.readdirSync(path.join(this.root, 'l'))) {
      if (!links.has(l)) fs.rmSync(path.join(this.root, 'l', l), { force: true });
    }
    for (const l of records.values()) {
      if (!fs.existsSync(path.join(this.root, 'layers', l.diffId.slice(7), 'diff'))) this.st.delLayer!.run(l.diffId);
    }
    this.gcLayers();
    const blobs = new Set(this.layers().flatMap((l) => l.blobs.map((b) => b.digest.slice(7))));
    for (const b of fs.readdirSync(path.join(this.root, 'blobs/sha256'))) {
      if (!blobs.has(b)) fs.rmSync(path.join(this.root, 'blobs/sha256', b), { force: true });
    }
  }

  finishLegacyMove(l: LayerRecord): void {
    const dir = path.join(this.root, 'layers', l.diffId.slice(7));
    fs.mkdirSync(dir, { recursive: true });
    if (l.legacyFrom && fs.existsSync(l.legacyFrom) && !fs.existsSync(path.join(dir, 'diff'))) fs.renameSync(l.legacyFrom, path.join(dir, 'diff'));
    const link = path.join(this.root, 'l', l.link);
    if (!fs.existsSync(link)) fs.symlinkSync(`../layers/${l.diffId.slice(7)}/diff`, link);
    delete l.legacyFrom;
    this.saveLayer(l);
  }

  /** A layer record for a directory already unpacked elsewhere (legacy migration), moved in by sweep. */
  recordLegacyLayer(diffId: string, from: string, size: number, blob: LayerBlob): LayerRecord {
    const l: LayerRecord = { diffId, link: this.newLink(), size, blobs: [blob], created: new Date().toISOString(), legacyFrom: from };
    this.saveLayer(l);
    return l;
  }

  /** The tar of a directory, as a blob (legacy migration): GNU tar with numeric owners and xattrs. */
  async tarDirectory(dir: string): Promise<{ digest: string; size: number }> {
    const tar = spawn('tar', ['-C', dir, '--numeric-owner', '--xattrs', '--xattrs-include=*', '--sort=name', '-cf', '-', '.'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    tar.stderr.on('data', (d: Buffer) => (err += d));
    const done = new Promise<number>((r) => tar.on('close', (c) => r(c ?? 1)));
    const res = await this.ingestBlob(tar.stdout);
    if ((await done) !== 0) {
      throw new Error(`tar of ${dir} failed: ${err.trim()}`);
    }
    return res;
  }
}

/** The parts of Docker's image config JSON loom reads. */
export interface ImageConfigJson {
  architecture?: string;
  os?: string;
  created?: string;
  author?: string;
  comment?: string;
  docker_version?: string;
  container?: string;
  container_config?: Record<string, unknown>;
  config?: Partial<ImageRunConfig> | null;
  rootfs?: { type: string; diff_ids: string[] };
  history?: { created?: string; created_by?: string; comment?: string; author?: string; empty_layer?: boolean }[];
  [k: string]: unknown;
}

export function runConfigOf(cfg: ImageConfigJson): ImageRunConfig {
  const c = cfg.config ?? {};
  return {
    ...c,
    Env: c.Env ?? null,
    Cmd: c.Cmd ?? null,
    Entrypoint: c.Entrypoint ?? null,
    WorkingDir: c.WorkingDir ?? '',
    Labels: c.Labels ?? null,
  };
}
