// Push: an image's layers (top first, up to 5 at once as dockerd) each checked with HEAD, mounted from
// another repository of the same registry that has it, or uploaded; then the config and the manifest
// (Docker schema2, indented as dockerd writes it). Progress as dockerd's JSON messages; errors after the
// first line go out mid-stream (the caller writes them).
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { LoomError } from '../../util/errors.ts';
import type { Credentials } from './auth.ts';
import { MT } from './manifest.ts';
import type { ProgressStream } from './progress.ts';
import { parseRepoRef, type RepoRef } from './refname.ts';
import type { RegistryService } from './service.ts';
import type { Repository } from './client.ts';

/** What push needs from the image store (src/images/store.ts ImageStore's contract). */
export interface PushStore {
  configBytes(id: string): Buffer;
  layersForPush(id: string): { diffId: string; size: number }[];
  pushBlob(diffId: string): Promise<{ digest: string; size: number; mediaType: string }>;
  openBlob(digest: string): Readable;
  /** the image's references (normalized), for cross-repository mount candidates */
  refsOf(id: string): string[];
}

export const PUSH_CONCURRENCY = 5; // dockerd's max-concurrent-uploads default

export interface PushResult { tag: string; digest: string; size: number }

/** Repositories of the same registry the image came from or went to: where its blobs may be mounted from. */
function mountSources(store: PushStore, id: string, target: RepoRef): string[] {
  const out = new Set<string>();
  for (const r of store.refsOf(id)) {
    try {
      const p = parseRepoRef(r);
      if (p.domain === target.domain && p.path !== target.path) out.add(p.path);
    } catch { /* not a registry reference */ }
  }
  return [...out].slice(0, 3);
}

/** `signal`: the client went away; the push stops before its next layer and before the manifest. */
export async function pushImage(svc: RegistryService, store: PushStore, imageId: string, ref: RepoRef & { tag: string }, creds: Credentials, out: ProgressStream, signal?: AbortSignal): Promise<PushResult> {
  const client = await svc.open(ref.domain, creds);
  try {
    const repo = client.repo(ref.path, ['pull', 'push']);
    const layers = store.layersForPush(imageId);
    const sources = mountSources(store, imageId, ref);
    const ids = layers.map((l) => l.diffId.slice(7, 19));
    const order = layers.map((_, i) => i).reverse(); // dockerd lists the top layer first
    for (const i of order) out.status('Preparing', ids[i]!);
    order.slice(PUSH_CONCURRENCY).forEach((i) => out.status('Waiting', ids[i]!));
    const descs: { mediaType: string; size: number; digest: string }[] = new Array(layers.length);
    let cursor = 0;
    let failed: unknown;
    const worker = async () => {
      while (!failed && cursor < order.length) {
        if (signal?.aborted) {
          failed ??= new LoomError(499, 'push cancelled');
          break;
        }
        const i = order[cursor++]!;
        try {
          descs[i] = await pushLayer(repo, store, layers[i]!.diffId, ids[i]!, sources, out);
        } catch (e) {
          failed ??= e;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(PUSH_CONCURRENCY, order.length) }, worker));
    if (signal?.aborted) failed ??= new LoomError(499, 'push cancelled');
    if (failed) throw failed;

    const config = store.configBytes(imageId);
    const configDesc = { mediaType: MT.dockerConfig, size: config.length, digest: `sha256:${createHash('sha256').update(config).digest('hex')}` };
    if (await repo.blobExists(configDesc.digest) === undefined) {
      await repo.uploadBlob(configDesc, () => Readable.from([config]), { monolithic: true });
    }
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.dockerManifest, config: configDesc, layers: descs }, null, 3));
    const digest = await repo.putManifest(ref.tag, manifest, MT.dockerManifest);
    out.message(`${ref.tag}: digest: ${digest} size: ${manifest.length}`);
    out.aux({ Tag: ref.tag, Digest: digest, Size: manifest.length });
    return { tag: ref.tag, digest, size: manifest.length };
  } finally {
    client.close();
  }
}

async function pushLayer(repo: Repository, store: PushStore, diffId: string, id: string, sources: string[], out: ProgressStream) {
  const blob = await store.pushBlob(diffId);
  const desc = { mediaType: blob.mediaType, size: blob.size, digest: blob.digest };
  if (await repo.blobExists(blob.digest) !== undefined) {
    out.status('Layer already exists', id);
    return desc;
  }
  for (const from of sources) {
    if (await repo.mountBlob(blob.digest, from)) {
      out.status(`Mounted from ${from}`, id);
      return desc;
    }
  }
  await repo.uploadBlob(blob, () => store.openBlob(blob.digest), { onProgress: (n) => out.progress('Pushing', id, n, blob.size) });
  out.status('Pushed', id);
  return desc;
}
