// `docker save` / `docker load`: Docker's image archive both ways.
//
// save writes the layout of Docker 25+, which is also an OCI image layout and which Docker 20.10 loads:
//   manifest.json            [{Config: "blobs/sha256/<id>", RepoTags: [...], Layers: ["blobs/sha256/<diffid>", ...]}]
//   repositories             {"<familiar name>": {"<tag>": "<id hex>"}}
//   oci-layout, index.json   the OCI layout: one manifest per image (annotated with each tag)
//   blobs/sha256/<hex>       configs, manifests, uncompressed layer tars (digest = diff ID)
// load reads that, Docker 20.10's legacy layout (`<id>.json`, `<layer>/layer.tar` named by manifest.json)
// and a plain OCI layout (index.json only), with gzip or plain layers.
//
// Both go through GNU tar and a staging directory (load: the archive is unpacked into a temp directory
// first, as dockerd does; save: a directory of symlinks to the store's blobs is archived with -h), so
// paths, long names and link handling are tar's, not hand-written.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ImageRecord } from '../core/types.ts';
import { fatalTarErrors } from '../runtime/images.ts';
import { invalidParameter, LoomError } from '../util/errors.ts';
import { familiarName, familiarString, normalize, parseNormalized } from './reference.ts';
import type { ImageStore, ImageConfigJson } from './store.ts';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';

export interface SaveItem { image: ImageRecord; refs: string[] } // refs: stored tag references to include

function tmpDir(store: ImageStore, kind: string): string {
  const d = path.join(store.root, 'tmp', `${kind}-${process.pid}-${randomBytes(6).toString('hex')}`);
  fs.mkdirSync(d, { recursive: true });
  return d;
}

async function runTar(args: string[], opts: { input?: Readable; output?: Writable }): Promise<void> {
  const tar = spawn('tar', args, { stdio: [opts.input ? 'pipe' : 'ignore', opts.output ? 'pipe' : 'ignore', 'pipe'] });
  let err = '';
  tar.stderr!.on('data', (d: Buffer) => (err += d));
  const done = new Promise<number>((resolve, reject) => {
    tar.on('error', reject);
    tar.on('close', (c) => resolve(c ?? 1));
  });
  try {
    const io: Promise<unknown>[] = [];
    if (opts.input) {
      // not pipeline(): it would destroy the source (the HTTP request, and with it the response) when tar
      // stops reading at the archive's end marker; the rest is drained instead and tar's status decides
      const input = opts.input;
      const stdin = tar.stdin!;
      stdin.on('error', () => {});
      input.pipe(stdin);
      tar.on('close', () => {
        input.unpipe(stdin);
        input.resume();
      });
      io.push(new Promise<void>((resolve, reject) => {
        if (input.readableEnded) resolve();
        input.once('end', resolve);
        input.once('error', reject);
      }));
    }
    if (opts.output) io.push(pipeline(tar.stdout!, opts.output, { end: false }));
    await Promise.all(io);
  } catch (e) {
    tar.kill('SIGKILL');
    await done.catch(() => {});
    throw e;
  }
  const code = await done;
  if (code !== 0) {
    const fatal = fatalTarErrors(err);
    if (code !== 2 || fatal.length) throw new Error(fatal.join('; ') || `tar exited with status ${code}`);
  }
}

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** Writes the archive of `items` to `out` (not ended). */
export async function saveImages(store: ImageStore, items: SaveItem[], out: Writable): Promise<void> {
  const stage = tmpDir(store, 'save');
  try {
    const blobs = path.join(stage, 'blobs/sha256');
    fs.mkdirSync(blobs, { recursive: true });
    const manifest: { Config: string; RepoTags: string[] | null; Layers: string[] }[] = [];
    const repositories: Record<string, Record<string, string>> = {};
    const index: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[] = [];
    for (const { image, refs } of items) {
      const cfgHex = image.id.slice(7);
      fs.writeFileSync(path.join(blobs, cfgHex), image.configJson);
      const layers: { mediaType: string; digest: string; size: number }[] = [];
      for (const d of image.layers) {
        const file = path.join(blobs, d.slice(7));
        if (!fs.existsSync(file)) {
          if (store.hasBlob(d)) fs.symlinkSync(store.blobPath(d), file);
          else await pipeline(store.layerTar(d), fs.createWriteStream(file)); // only a compressed blob kept
        }
        layers.push({ mediaType: OCI_LAYER, digest: d, size: fs.statSync(file).size });
      }
      const m = JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: OCI_CONFIG, digest: image.id, size: Buffer.byteLength(image.configJson) },
        layers,
      });
      const mHex = sha(m);
      fs.writeFileSync(path.join(blobs, mHex), m);
      const tags = refs.filter((r) => !r.includes('@')).map((r) => parseNormalized(r));
      manifest.push({ Config: `blobs/sha256/${cfgHex}`, RepoTags: tags.length ? tags.map(familiarString) : null, Layers: image.layers.map((d) => `blobs/sha256/${d.slice(7)}`) });
      for (const t of tags) (repositories[familiarName(t)] ??= {})[t.tag!] = cfgHex;
      if (!tags.length) index.push({ mediaType: OCI_MANIFEST, digest: `sha256:${mHex}`, size: Buffer.byteLength(m) });
      for (const t of tags) {
        index.push({ mediaType: OCI_MANIFEST, digest: `sha256:${mHex}`, size: Buffer.byteLength(m), annotations: { 'io.containerd.image.name': `${t.domain}/${t.path}:${t.tag}`, 'org.opencontainers.image.ref.name': t.tag! } });
      }
    }
    fs.writeFileSync(path.join(stage, 'manifest.json'), JSON.stringify(manifest));
    fs.writeFileSync(path.join(stage, 'repositories'), JSON.stringify(repositories));
    fs.writeFileSync(path.join(stage, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    fs.writeFileSync(path.join(stage, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: index }));
    await runTar(['-c', '-h', '-f', '-', '-C', stage, '--owner=0', '--group=0', '--numeric-owner', '--mode=a+r', '--sort=name',
      'blobs', 'index.json', 'manifest.json', 'oci-layout', 'repositories'], { output: out });
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}

export interface LoadEvents {
  /** a line for the client ("Loaded image: x:t", "The image x:t already exists, ...") */
  message(line: string): void;
}

/** Reads an archive from `input` into the store; the loaded images' IDs in archive order. */
export async function loadImages(store: ImageStore, input: Readable, ev: LoadEvents, tagOwner: (stored: string) => string | undefined): Promise<string[]> {
  const dir = tmpDir(store, 'load');
  const loaded: string[] = [];
  try {
    try {
      await runTar(['-x', '-f', '-', '-C', dir, '--no-same-owner', '--no-same-permissions'], { input });
    } catch (e) {
      throw invalidParameter(`invalid archive: ${(e as Error).message}`);
    }
    const inside = (rel: string): string => {
      const p = path.resolve(dir, rel);
      let real: string;
      try {
        real = fs.realpathSync(p);
      } catch {
        throw invalidParameter(`invalid archive: ${rel} is missing`);
      }
      if (!real.startsWith(dir + path.sep)) throw invalidParameter(`invalid archive: ${rel} is outside the archive`);
      return real;
    };
    let entries: { Config: string; RepoTags?: string[] | null; Layers: string[] }[];
    if (fs.existsSync(path.join(dir, 'manifest.json'))) {
      entries = JSON.parse(fs.readFileSync(inside('manifest.json'), 'utf8'));
    } else if (fs.existsSync(path.join(dir, 'index.json'))) {
      entries = ociEntries(inside);
    } else {
      throw invalidParameter('invalid archive: no manifest.json (only archives of docker save, Docker 1.10 and later, and OCI layouts are loaded)');
    }
    if (!Array.isArray(entries)) throw invalidParameter('invalid archive: manifest.json is not a list');
    for (const e of entries) {
      const cfgBytes = fs.readFileSync(inside(e.Config));
      let cfg: ImageConfigJson;
      try {
        cfg = JSON.parse(cfgBytes.toString('utf8'));
      } catch {
        throw invalidParameter(`invalid archive: ${e.Config} is not JSON`);
      }
      const diffIds = cfg.rootfs?.diff_ids ?? [];
      if (diffIds.length !== e.Layers.length) throw invalidParameter(`invalid manifest, layers length mismatch: expected ${diffIds.length}, got ${e.Layers.length}`);
      const pinned: string[] = [];
      try {
        for (const [i, l] of e.Layers.entries()) {
          const want = diffIds[i]!;
          if (store.hasLayer(want)) continue;
          await store.ingestLayer(fs.createReadStream(inside(l)), { diffId: want });
          pinned.push(want);
        }
        const tags = (e.RepoTags ?? []).map((t) => normalize(t));
        const id = `sha256:${sha(cfgBytes)}`;
        for (const t of tags) {
          const old = tagOwner(t);
          if (old && old !== id) ev.message(`The image ${familiarString(parseNormalized(t))} already exists, renaming the old one with ID ${old} to empty string`);
        }
        const img = store.putImage(cfgBytes, diffIds.map((d) => ({ diffId: d })), tags);
        loaded.push(img.id);
        if (tags.length) for (const t of tags) ev.message(`Loaded image: ${familiarString(parseNormalized(t))}`);
        else ev.message(`Loaded image ID: ${img.id}`);
      } finally {
        store.unpin(pinned);
      }
    }
    return loaded;
  } catch (e) {
    if (e instanceof LoomError) throw e;
    throw invalidParameter(`invalid archive: ${(e as Error).message}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** manifest.json-style entries from an OCI layout's index.json (nested indexes: linux/amd64). */
function ociEntries(inside: (rel: string) => string): { Config: string; RepoTags: string[]; Layers: string[] }[] {
  const blob = (d: string) => `blobs/${d.replace(':', '/')}`;
  const readJson = (rel: string) => JSON.parse(fs.readFileSync(inside(rel), 'utf8'));
  const out: { Config: string; RepoTags: string[]; Layers: string[] }[] = [];
  const visit = (desc: { mediaType?: string; digest: string; annotations?: Record<string, string>; platform?: { os?: string; architecture?: string } }, name?: string) => {
    const doc = readJson(blob(desc.digest));
    // Docker 25+ names images with containerd's annotation; skopeo and others with a full reference
    // in ref.name (Docker's own ref.name is the bare tag)
    const refName = desc.annotations?.['org.opencontainers.image.ref.name'];
    const n = desc.annotations?.['io.containerd.image.name'] ?? (refName && /[:/]/.test(refName) ? refName : undefined) ?? name;
    if (doc.manifests) {
      const m = doc.manifests.find((x: { platform?: { os?: string; architecture?: string } }) => !x.platform || (x.platform.os === 'linux' && x.platform.architecture === 'amd64'));
      if (!m) throw invalidParameter('invalid archive: no linux/amd64 image in the index');
      visit(m, n);
      return;
    }
    const cfg = blob(doc.config.digest);
    let e = out.find((x) => x.Config === cfg);
    if (!e) out.push((e = { Config: cfg, RepoTags: [], Layers: doc.layers.map((l: { digest: string }) => blob(l.digest)) }));
    if (n && !e.RepoTags.includes(n)) e.RepoTags.push(n);
  };
  for (const m of readJson('index.json').manifests ?? []) visit(m);
  return out;
}
