// Images as the controller and the API see them: lookup by reference or ID, import, tag, delete with
// Docker's conflict rules, history; the layers, blobs and configs live in src/images/store.ts.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Store } from '../store/sqlite.ts';
import type { ImageRecord, ImageRunConfig } from './types.ts';
import { ImageStore, type ImageConfigJson } from '../images/store.ts';
import { applyChanges } from '../images/changes.ts';
import { familiar, familiarString, fromRepoTag, normalize, parseNormalized, referenceString, withDefaultTag } from '../images/reference.ts';
import { LoomError, conflict, notFound } from '../util/errors.ts';
import { nowIso } from './names.ts';

export const DOCKER_VERSION = '20.10.24';
const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** A container using an image, as delete's conflict checks need it. */
export interface ImageUser { id: string; running: boolean }
export type DeleteItem = { Untagged?: string; Deleted?: string };

/** Who uses which image, from container records, for delete's conflict checks. */
export function imageUsers(containers: { id: string; imageId: string; state: { Running?: boolean; Restarting?: boolean } }[]): (id: string) => ImageUser[] {
  return (id) => containers.filter((c) => c.imageId === id).map((c) => ({ id: c.id, running: !!c.state.Running || !!c.state.Restarting }));
}

export interface HistoryItem { Id: string; Created: number; CreatedBy: string; Tags: string[] | null; Size: number; Comment: string }

export class Images {
  readonly store: ImageStore;
  private readonly db: Store;

  constructor(db: Store, dataRoot: string) {
    this.db = db;
    this.store = new ImageStore(db, path.join(dataRoot, 'images'));
  }

  /**
   * At daemon start: references in the stored form, images of data roots from before layers migrated to
   * one-layer images, then what interrupted ingests left swept away.
   */
  async init(onMigrationError: (err: string, id: string) => void = () => {}): Promise<void> {
    for (const t of this.db.tags()) {
      let n: string;
      try {
        n = normalize(t.ref);
      } catch {
        continue;
      }
      if (n !== t.ref) this.db.tx(() => {
        this.db.untag(t.ref);
        this.db.tag(n, t.image_id);
      });
    }
    for (const img of this.store.images()) {
      if (img.layers) continue;
      try {
        await this.migrateLegacy(img);
      } catch (e) {
        // the image stays as it was (its containers still run from its rootfs); the next start tries again
        onMigrationError((e as Error).message, img.id);
      }
    }
    this.store.sweep();
    const containers = this.db.all<{ id: string; imageId: string }>('containers');
    this.collectDeleted((id) => containers.filter((c) => c.imageId === id).map((c) => ({ id: c.id, running: false })));
  }

  /** An image from before layers (one unpacked rootfs) becomes a one-layer image; its containers follow. */
  private async migrateLegacy(old: ImageRecord): Promise<void> {
    const rootfs = old.rootfs!;
    if (!fs.existsSync(rootfs)) {
      this.db.delete('images', old.id);
      return;
    }
    const blob = await this.store.tarDirectory(rootfs);
    const diffId = blob.digest;
    const size = old.size;
    const legacy = old.config as ImageRunConfig;
    const cfg = importConfig({ ...legacy, Env: legacy.Env ?? [DEFAULT_PATH] }, diffId, old.created, old.comment);
    const bytes = Buffer.from(JSON.stringify(cfg));
    const id = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    this.db.tx(() => {
      if (!this.store.hasLayer(diffId)) this.store.recordLegacyLayer(diffId, rootfs, size, { digest: diffId, size: blob.size, mediaType: 'application/vnd.oci.image.layer.v1.tar' });
      const refs = this.store.refsOf(old.id);
      const rec: ImageRecord = { id, name: refs[0] ?? id, created: old.created, size, comment: old.comment, config: cfg.config as ImageRunConfig, layers: [diffId], configJson: bytes.toString(), parent: '' };
      this.db.put('images', rec);
      for (const r of refs) this.db.tag(r, id);
      this.db.db.prepare("UPDATE containers SET doc = json_set(doc, '$.imageId', ?) WHERE json_extract(doc, '$.imageId') = ?").run(id, old.id);
      this.db.delete('images', old.id);
    });
    const l = this.store.layer(diffId)!;
    if (l.legacyFrom) this.store.finishLegacyMove(l);
    fs.rmSync(path.dirname(rootfs), { recursive: true, force: true });
  }

  list(): ImageRecord[] {
    return this.store.images().filter((i) => !i.deleted);
  }

  /** RepoTags as Docker shows them (`box:latest`), tags only. */
  tagsOf(id: string): string[] {
    return this.store.refsOf(id).filter((r) => !r.includes('@')).map(familiar);
  }

  /** RepoDigests as Docker shows them (`box@sha256:...`). */
  digestsOf(id: string): string[] {
    return this.store.refsOf(id).filter((r) => r.includes('@')).map(familiar);
  }

  /** Docker's GetImage: a full ID, a reference (tag defaults to latest, or a digest), a unique ID prefix. */
  find(ref: string): ImageRecord | undefined {
    if (!ref) return undefined;
    const full = /^(sha256:)?([a-f0-9]{64})$/.exec(ref);
    if (full) {
      const i = this.store.image(`sha256:${full[2]}`);
      if (i) return i; // a deleted (hidden) image still answers by ID: its containers run from it
    }
    let stored: string | undefined;
    try {
      stored = referenceString(withDefaultTag(parseNormalized(ref)));
    } catch { /* not a reference: maybe an ID prefix */ }
    if (stored) {
      const t = this.db.tags().find((x) => x.ref === stored);
      if (t) return this.store.image(t.image_id);
    }
    const m = /^(?:sha256:)?([a-f0-9]{1,64})$/.exec(ref);
    if (m) {
      const hits = this.list().filter((i) => i.id.slice(7).startsWith(m[1]!));
      if (hits.length === 1) return hits[0];
    }
    return undefined;
  }

  get(ref: string): ImageRecord {
    const i = this.find(ref);
    if (i && !i.deleted) return i;
    throw notFound(`No such image: ${displayRef(ref)}`);
  }

  lowerDirs(id: string): string[] {
    return this.store.lowerDirs(id);
  }

  /** `docker import`: a root filesystem tarball becomes a new one-layer image (a new ID per import). */
  async import(input: Readable, opts: { repo?: string; tag?: string; changes?: string[]; message?: string }): Promise<ImageRecord> {
    const ref = opts.repo ? referenceString(fromRepoTag(opts.repo, opts.tag)) : undefined;
    const run: ImageRunConfig = { Env: [DEFAULT_PATH], Cmd: null, Entrypoint: null, WorkingDir: '', Labels: null };
    applyChanges(run, opts.changes ?? []);
    let layer;
    try {
      layer = await this.store.ingestLayer(input);
    } catch (e) {
      if (e instanceof LoomError) throw e;
      throw new LoomError(400, `import failed: ${(e as Error).message}`);
    }
    try {
      const cfg = importConfig(run, layer.diffId, new Date().toISOString(), opts.message ?? '');
      return this.store.putImage(JSON.stringify(cfg), [{ diffId: layer.diffId }], ref ? [ref] : []);
    } finally {
      this.store.unpin([layer.diffId]);
    }
  }

  /** `docker tag`: the reference moves to this image (the one that had it may become dangling). */
  tag(imageId: string, repo: string, tag?: string): string {
    const r = fromRepoTag(repo, tag);
    if (r.digest) throw new LoomError(400, 'refusing to create a tag with a digest reference');
    const stored = referenceString(r);
    const img = this.store.image(imageId)!;
    this.db.tx(() => {
      this.db.tag(stored, imageId);
      this.store.setRecord({ ...img, lastTagTime: nowIso() });
    });
    return familiarString(r);
  }

  /** Docker's ImageDelete (daemon/images/image_delete.go): untag, conflicts, delete, parents pruned. */
  remove(refOrId: string, users: (id: string) => ImageUser[], force: boolean, prune = true): DeleteItem[] {
    const img = this.get(refOrId);
    const records: DeleteItem[] = [];
    let refs = this.store.refsOf(img.id);
    let byRef = false;
    try {
      byRef = refs.includes(normalize(refOrId));
    } catch { /* an ID */ }
    const byId = !byRef;
    if (!byId) {
      const stored = storedOf(refOrId);
      const user = users(img.id)[0];
      if (!force && isSingleReference(refs) && user) {
        throw conflict(`conflict: unable to remove repository reference "${refOrId}" (must force) - container ${user.id.slice(0, 12)} is using its referenced image ${img.id.slice(7, 19)}`);
      }
      this.db.untag(stored);
      records.push({ Untagged: familiar(stored) });
      refs = this.store.refsOf(img.id);
      // a tag gone, and only digests of its repository left: those go too
      if (!stored.includes('@')) {
        const name = nameOf(stored);
        if (!refs.some((r) => !r.includes('@') && nameOf(r) === name)) {
          for (const r of refs.filter((x) => x.includes('@') && nameOf(x) === name)) {
            this.db.untag(r);
            records.push({ Untagged: familiar(r) });
          }
          refs = this.store.refsOf(img.id);
        }
      }
      if (refs.length) return records;
      this.deleteHelper(img.id, users, records, force, prune, true);
      return records;
    }
    if (isSingleReference(refs)) {
      const c = this.conflictOf(img.id, users, { hard: true, soft: !force, activeRef: false });
      if (c) throw conflict(c.message);
      for (const r of refs) {
        this.db.untag(r);
        records.push({ Untagged: familiar(r) });
      }
    }
    this.deleteHelper(img.id, users, records, force, prune, false);
    return records;
  }

  private deleteHelper(id: string, users: (id: string) => ImageUser[], records: DeleteItem[], force: boolean, prune: boolean, quiet: boolean): void {
    const c = this.conflictOf(id, users, { hard: true, soft: !force, activeRef: !force });
    if (c) {
      if (quiet && (!this.isDangling(id) || c.used)) return;
      throw conflict(c.message);
    }
    const img = this.store.image(id)!;
    for (const r of this.store.refsOf(id)) {
      this.db.untag(r);
      records.push({ Untagged: familiar(r) });
    }
    if (users(id).length) {
      // forced past a stopped container: Docker deletes the image but the container keeps its layers;
      // here the record stays, hidden, until no container uses it
      this.store.setRecord({ ...img, deleted: true });
      records.push({ Deleted: id });
    } else {
      const removed = new Set(this.store.deleteImage(id));
      records.push({ Deleted: id });
      // as moby: the layers that went, by chain ID, top first
      const layers = img.layers ?? [];
      const chains = chainIds(layers);
      for (let i = chains.length - 1; i >= 0; i--) if (removed.has(layers[i]!)) records.push({ Deleted: chains[i]! });
    }
    if (prune && img.parent && this.store.image(img.parent)) this.deleteHelper(img.parent, users, records, false, true, true);
  }

  private isDangling(id: string): boolean {
    return this.store.refsOf(id).length === 0 && !this.children(id).length;
  }

  children(id: string): ImageRecord[] {
    return this.list().filter((i) => i.parent === id);
  }

  private conflictOf(id: string, users: (id: string) => ImageUser[], mask: { hard: boolean; soft: boolean; activeRef: boolean }): { message: string; used: boolean } | undefined {
    const short = id.slice(7, 19);
    const msg = (hard: boolean, m: string) => `conflict: unable to delete ${short} (${hard ? 'cannot be forced' : 'must be forced'}) - ${m}`;
    if (mask.hard && this.children(id).length) return { message: msg(true, 'image has dependent child images'), used: false };
    const us = users(id);
    const running = us.find((u) => u.running);
    if (mask.hard && running) return { message: msg(true, `image is being used by running container ${running.id.slice(0, 12)}`), used: true };
    if (mask.soft && mask.activeRef && this.store.refsOf(id).length) return { message: msg(false, 'image is referenced in multiple repositories'), used: false };
    const stopped = us.find((u) => !u.running);
    if (mask.soft && stopped) return { message: msg(false, `image is being used by stopped container ${stopped.id.slice(0, 12)}`), used: true };
    return undefined;
  }

  /** Hidden (force-deleted) images no container uses any more are removed for good. */
  collectDeleted(users: (id: string) => ImageUser[]): void {
    for (const i of this.store.images()) if (i.deleted && !users(i.id).length) this.store.deleteImage(i.id);
  }

  /** `docker history`: newest first; the image's ID on the top entry, `<missing>` below (as Docker). */
  history(img: ImageRecord): HistoryItem[] {
    const cfg = JSON.parse(img.configJson ?? '{}') as ImageConfigJson;
    const out: HistoryItem[] = [];
    let li = 0;
    for (const h of cfg.history ?? []) {
      let size = 0;
      if (!h.empty_layer) {
        const d = img.layers?.[li++];
        size = d ? this.store.layer(d)?.size ?? 0 : 0;
      }
      out.unshift({ Id: '<missing>', Created: Math.floor(Date.parse(h.created ?? '') / 1000) || 0, CreatedBy: h.created_by ?? '', Tags: null, Size: size, Comment: h.comment ?? '' });
    }
    let cur: ImageRecord | undefined = img;
    for (const h of out) {
      if (!cur) break;
      h.Id = cur.id;
      const tags = this.tagsOf(cur.id);
      h.Tags = tags.length ? tags : null;
      cur = cur.parent ? this.store.image(cur.parent) : undefined;
    }
    return out;
  }
}

/** The config JSON Docker's import writes: the run config, one layer, one history entry. */
export function importConfig(run: ImageRunConfig, diffId: string, created: string, comment: string): ImageConfigJson {
  return {
    ...(comment ? { comment } : {}),
    created,
    docker_version: DOCKER_VERSION,
    config: run,
    architecture: 'amd64',
    os: 'linux',
    rootfs: { type: 'layers', diff_ids: [diffId] },
    history: [{ created, ...(comment ? { comment } : {}) }],
  };
}

/** The layers' chain IDs (moby's layer.CreateChainID): the first is its diff ID, then sha256("<parent> <diff>"). */
export function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev ? `sha256:${createHash('sha256').update(`${prev} ${d}`).digest('hex')}` : d);
  }
  return out;
}

function storedOf(ref: string): string {
  return normalize(ref);
}

function nameOf(stored: string): string {
  const r = parseNormalized(stored);
  return `${r.domain}/${r.path}`;
}

/** The reference as "No such image" names it: a familiar name with its tag, an ID as given. */
function displayRef(ref: string): string {
  if (/^(sha256:)?[a-f0-9]{1,64}$/.test(ref) && !ref.includes(':') && ref.length >= 12) return ref;
  if (ref.startsWith('sha256:')) return ref;
  try {
    return familiarString(withDefaultTag(parseNormalized(ref)));
  } catch {
    return ref;
  }
}

/** moby's isSingleReference: at most one tag, and any digests of that same repository. */
function isSingleReference(refs: string[]): boolean {
  if (refs.length <= 1) return refs.length === 1;
  let single: string | undefined;
  const canonical = new Set<string>();
  for (const r of refs) {
    if (r.includes('@')) canonical.add(nameOf(r));
    else if (single === undefined) single = r;
    else return false;
  }
  single ??= refs[0]!;
  return canonical.size === 1 && canonical.has(nameOf(single));
}
