// Pull: a reference → its manifest (resolved before the response starts, so "manifest unknown" and the like
// are HTTP errors as with dockerd) → config → layers, up to 3 downloaded at once, each streamed straight into
// the store (hashed and unpacked in one pass; a layer already there is not downloaded), then the image is
// written in one transaction. Progress goes out as dockerd's JSON messages. A failure or a client that goes
// away stops every transfer and leaves nothing: the ingests' pins end (layers no image lists are then the
// store's to collect), and a daemon killed mid-way leaves only temp files the store sweeps at start.
import type { Readable } from 'node:stream';
import { LoomError } from '../../util/errors.ts';
import type { Credentials } from './auth.ts';
import { verifyError, type Repository, type RegistryClient, type ResolvedImage } from './client.ts';
import { pullError } from './errors.ts';
import type { ProgressStream } from './progress.ts';
import { familiarName, familiarString, fullName, type RepoRef } from './refname.ts';
import type { RegistryService } from './service.ts';

/** What pull needs from the image store (src/images/store.ts ImageStore's contract). */
export interface PullStore {
  image(id: string): object | undefined;
  hasLayer(diffId: string): boolean;
  ingestLayer(input: NodeJS.ReadableStream, want: { digest?: string; diffId?: string; mediaType?: string }): Promise<{ diffId: string }>;
  unpin(diffIds: string[]): void;
  putImage(configBytes: Buffer, layers: { diffId: string; blobDigest?: string; mediaType?: string; size?: number }[], refs: string[], opts: { repoDigest?: string }): { id: string };
}

export const PULL_CONCURRENCY = 3; // dockerd's max-concurrent-downloads default

export interface PreparedPull {
  ref: RepoRef;
  client: RegistryClient;
  repo: Repository;
  resolved: ResolvedImage;
}

/** The familiar form of what was pulled: `busybox:latest`, `localhost:5000/box@sha256:...`. */
const shown = (r: RepoRef) => familiarString(r);

/** Connects, authenticates and resolves the manifest; errors here are the request's (dockerd's order). */
export async function preparePull(svc: RegistryService, ref: RepoRef, creds: Credentials): Promise<PreparedPull> {
  const client = await svc.open(ref.domain, creds);
  const repo = client.repo(ref.path, ['pull']);
  try {
    const resolved = await repo.resolve(ref.digest ?? ref.tag ?? 'latest');
    return { ref, client, repo, resolved };
  } catch (e) {
    client.close();
    throw pullError(e, familiarName(ref), shown(ref));
  }
}

/** Every tag of a repository (pull -a). */
export async function listTags(svc: RegistryService, ref: RepoRef, creds: Credentials): Promise<string[]> {
  const client = await svc.open(ref.domain, creds);
  try {
    return await client.repo(ref.path, ['pull']).listTags();
  } catch (e) {
    throw pullError(e, familiarName(ref), familiarName(ref));
  } finally {
    client.close();
  }
}

const shortId = (digest: string) => digest.slice(7, 19);

/**
 * Downloads what is missing and stores the image. `previousId` is the image the reference named before (for
 * "Image is up to date"). `signal` aborts (the client went away). Returns the image ID.
 */
export async function runPull(p: PreparedPull, store: PullStore, out: ProgressStream, opts: { previousId?: string; signal?: AbortSignal; tagLine?: boolean } = {}): Promise<{ id: string; upToDate: boolean }> {
  const { ref, repo, resolved } = p;
  const m = resolved.manifest;
  // moby names the repository without its domain here: `Pulling from library/busybox`, `Pulling from box`
  out.message(`Pulling from ${ref.path}`, ref.digest ?? ref.tag ?? 'latest');
  const configBytes = await repo.getBlob(m.config);
  let config: { rootfs?: { type?: string; diff_ids?: string[] }; os?: string };
  try {
    config = JSON.parse(configBytes.toString('utf8'));
  } catch {
    throw new LoomError(500, `invalid image config ${m.config.digest}: not JSON`);
  }
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== m.layers.length) {
    throw new LoomError(500, `invalid image ${shown(ref)}: the manifest has ${m.layers.length} layers, its config ${diffIds.length} diff IDs`);
  }

  const layers = m.layers.map((d, i) => ({ desc: d, diffId: diffIds[i]!, id: shortId(d.digest) }));
  const seen = new Set<string>();
  const todo: typeof layers = [];
  // an image that is here already (its config's digest is its ID) needs no layer at all, as in moby
  const have = !!store.image(m.config.digest) && diffIds.every((d) => store.hasLayer(d));
  for (const l of have ? [] : layers) {
    if (store.hasLayer(l.diffId)) {
      out.status('Already exists', l.id);
    } else if (!seen.has(l.diffId)) {
      seen.add(l.diffId);
      out.status('Pulling fs layer', l.id);
      todo.push(l);
    }
  }
  todo.slice(PULL_CONCURRENCY).forEach((l) => out.status('Waiting', l.id));

  const ingested: string[] = [];
  const inflight = new Set<Readable>();
  let failed: unknown;
  const abort = () => {
    for (const s of inflight) s.destroy(new LoomError(499, 'pull cancelled'));
  };
  opts.signal?.addEventListener('abort', abort);
  // "Extracting"/"Pull complete" in layer order, as dockerd registers layers bottom up
  const done = new Map<string, true>();
  let next = 0;
  const announce = () => {
    while (next < todo.length && done.has(todo[next]!.diffId)) {
      const l = todo[next++]!;
      out.progress('Extracting', l.id, l.desc.size, l.desc.size);
      out.status('Pull complete', l.id);
    }
  };
  const one = async (l: (typeof todo)[number]) => {
    // hashed here as well as in the store: a corrupted layer must be reported as the digest mismatch it is
    // (moby verifies before it unpacks), not as whatever its decompression says first
    const blob = await repo.openBlob(l.desc, (n) => out.progress('Downloading', l.id, n, l.desc.size));
    inflight.add(blob);
    // the download's own error (a digest mismatch found at its end, a cut connection) is the one to report,
    // whatever the store's reading of the broken stream says; and it must never go unheard
    let downloadErr: unknown;
    blob.on('error', (e) => { downloadErr ??= e; });
    blob.once('end', () => {
      out.status('Verifying Checksum', l.id);
      out.status('Download complete', l.id);
    });
    try {
      const rec = await store.ingestLayer(blob, { digest: l.desc.digest, diffId: l.diffId, mediaType: l.desc.mediaType });
      ingested.push(rec.diffId);
    } catch (e) {
      if (downloadErr) throw downloadErr;
      if (blob.mismatched() || /^digest mismatch: expected /.test((e as Error).message)) throw verifyError(l.desc.digest);
      throw e;
    } finally {
      inflight.delete(blob);
    }
    done.set(l.diffId, true);
    announce();
  };
  let cursor = 0;
  const worker = async () => {
    while (!failed && cursor < todo.length && !opts.signal?.aborted) {
      const l = todo[cursor++]!;
      try {
        await one(l);
      } catch (e) {
        failed ??= e;
        abort();
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(PULL_CONCURRENCY, todo.length) }, worker));
    if (opts.signal?.aborted) failed ??= new LoomError(499, 'pull cancelled');
    if (failed) throw failed;
    const refs = ref.tag && !ref.digest ? [`${fullName(ref)}:${ref.tag}`] : [];
    const img = store.putImage(configBytes, layers.map((l) => ({ diffId: l.diffId, blobDigest: l.desc.digest, mediaType: l.desc.mediaType, size: l.desc.size })), refs, {
      repoDigest: `${fullName(ref)}@${resolved.digest}`,
    });
    const upToDate = opts.previousId === img.id;
    out.message(`Digest: ${resolved.digest}`);
    if (opts.tagLine !== false) out.message(`Status: ${upToDate ? 'Image is up to date' : 'Downloaded newer image'} for ${shown(ref)}`);
    return { id: img.id, upToDate };
  } finally {
    // the store's contract: an ingest's pin ends after putImage, success or not
    store.unpin(ingested);
    opts.signal?.removeEventListener('abort', abort);
  }
}
