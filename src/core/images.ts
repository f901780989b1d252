// Images: imported root filesystems, unpacked once under <data-root>/images/<hex>/rootfs, tagged repo:tag.
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Store } from '../store/sqlite.ts';
import type { ImageRecord } from './types.ts';
import { unpackImage } from '../runtime/images.ts';
import { conflict, invalidParameter, LoomError, notFound } from '../util/errors.ts';
import { nowIso } from './names.ts';

/** `box` → `box:latest`; `box:1` stays; `reg:5000/box` → `reg:5000/box:latest`. */
export function normalizeRef(ref: string): string {
  const lastSlash = ref.lastIndexOf('/');
  return ref.slice(lastSlash + 1).includes(':') ? ref : `${ref}:latest`;
}

const REF_RE = /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$/;

export class Images {
  private readonly store: Store;
  private readonly dir: string;

  constructor(store: Store, dataRoot: string) {
    this.store = store;
    this.dir = path.join(dataRoot, 'images');
    fs.mkdirSync(this.dir, { recursive: true });
  }

  list(): ImageRecord[] {
    return this.store.all<ImageRecord>('images');
  }

  tagsOf(id: string): string[] {
    return this.store.tags().filter((t) => t.image_id === id).map((t) => t.ref);
  }

  /** Docker's lookup: repo:tag (tag defaults to latest), full id with or without sha256:, unique id prefix. */
  find(ref: string): ImageRecord | undefined {
    const tag = this.store.tags().find((t) => t.ref === normalizeRef(ref));
    if (tag) return this.store.get<ImageRecord>('images', tag.image_id);
    const hex = ref.replace(/^sha256:/, '');
    if (/^[0-9a-f]{4,64}$/.test(hex)) {
      const m = this.list().filter((i) => i.id.slice(7).startsWith(hex));
      if (m.length === 1) return m[0];
    }
    return undefined;
  }

  get(ref: string): ImageRecord {
    const i = this.find(ref);
    if (!i) throw notFound(`No such image: ${ref.includes(':') || ref.startsWith('sha256') ? ref : normalizeRef(ref)}`);
    return i;
  }

  async import(input: Readable, opts: { repo?: string; tag?: string; changes?: string[]; message?: string }): Promise<ImageRecord> {
    let ref: string | undefined;
    if (opts.repo) {
      ref = opts.tag ? `${opts.repo}:${opts.tag}` : normalizeRef(opts.repo);
      if (!REF_RE.test(ref)) throw invalidParameter(`invalid reference format: ${ref}`);
    }
    const tmp = path.join(this.dir, `.import-${process.pid}-${Date.now()}-${Math.random().toString(16).slice(2)}`);
    let digest: string, size: number;
    try {
      ({ digest, size } = await unpackImage(input, path.join(tmp, 'rootfs')));
    } catch (e) {
      fs.rmSync(tmp, { recursive: true, force: true });
      throw new LoomError(400, `import failed: ${(e as Error).message}`);
    }
    const id = `sha256:${digest}`;
    const final = path.join(this.dir, digest);
    if (fs.existsSync(final)) fs.rmSync(tmp, { recursive: true, force: true });
    else fs.renameSync(tmp, final);
    const config = { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: null as string[] | null, Entrypoint: null as string[] | null, WorkingDir: '', Labels: null };
    for (const ch of opts.changes ?? []) applyChange(config, ch);
    const rec: ImageRecord = this.store.get<ImageRecord>('images', id) ?? {
      id, name: ref ?? id, created: nowIso(), size, rootfs: path.join(final, 'rootfs'), comment: opts.message ?? '', config,
    };
    this.store.tx(() => {
      this.store.put('images', rec);
      if (ref) this.store.tag(ref, id);
    });
    return rec;
  }

  tag(imageId: string, ref: string): void {
    const r = normalizeRef(ref);
    if (!REF_RE.test(r)) throw invalidParameter(`invalid reference format: ${ref}`);
    this.store.tag(r, imageId);
  }

  /** Removes a tag, or the image when it was its last reference and no container uses it. */
  remove(ref: string, usedBy: (id: string) => string | undefined, force: boolean): { Untagged?: string; Deleted?: string }[] {
    const img = this.get(ref);
    const out: { Untagged?: string; Deleted?: string }[] = [];
    const tags = this.tagsOf(img.id);
    const byTag = tags.includes(normalizeRef(ref));
    if (byTag && tags.length > 1 && !force) {
      this.store.untag(normalizeRef(ref));
      return [{ Untagged: normalizeRef(ref) }];
    }
    const user = usedBy(img.id);
    if (user && !force) {
      throw conflict(`conflict: unable to remove repository reference "${ref}" (must force) - container ${user.slice(0, 12)} is using its referenced image ${img.id.slice(7, 19)}`);
    }
    if (user) {
      // Like Docker with -f: the tags go, the image stays while a container still uses it.
      for (const t of tags) { this.store.untag(t); out.push({ Untagged: t }); }
      return out;
    }
    this.store.tx(() => {
      for (const t of tags) { this.store.untag(t); out.push({ Untagged: t }); }
      this.store.delete('images', img.id);
    });
    fs.rmSync(path.dirname(img.rootfs), { recursive: true, force: true });
    out.push({ Deleted: img.id });
    return out;
  }
}

/** The subset of Dockerfile instructions `docker import --change` accepts that matter here. */
function applyChange(cfg: ImageRecord['config'], change: string): void {
  const m = /^\s*(\w+)\s+(.*)$/s.exec(change);
  if (!m) throw invalidParameter(`invalid change: ${change}`);
  const [, op, arg] = m as unknown as [string, string, string];
  const list = () => (arg.trim().startsWith('[') ? (JSON.parse(arg) as string[]) : ['/bin/sh', '-c', arg]);
  switch (op!.toUpperCase()) {
    case 'CMD': cfg.Cmd = list(); break;
    case 'ENTRYPOINT': cfg.Entrypoint = list(); break;
    case 'WORKDIR': cfg.WorkingDir = arg.trim(); break;
    case 'ENV': cfg.Env.push(arg.includes('=') ? arg.trim() : arg.trim().replace(/\s+/, '=')); break;
    default: throw invalidParameter(`${op} is not a supported change for import`);
  }
}
