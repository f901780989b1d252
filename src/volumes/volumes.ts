// Volumes: the local driver, as Docker's. Data under <data-root>/volumes/<name>/_data; the record (name,
// labels, options, creation time) in SQLite. With `-o type= device= o=` a volume is a mount made on
// _data while containers use it (tmpfs, or a bind of a host directory with o=bind); other filesystem
// types are refused naming them. Whether a volume is in use is asked of the containers (a callback, so
// nothing here calls up into the controller).
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Store } from '../store/sqlite.ts';
import { conflict, invalidParameter, LoomError, messageOf, notFound, statusOf } from '../util/errors.ts';
import { isMountPoint, mountFs, unmount } from '../runtime/mounts.ts';
import { validateVolumeName } from './specs.ts';

export const ANONYMOUS_LABEL = 'com.docker.volume.anonymous';

export interface VolumeRecord {
  id: string; // = name (the store's key)
  name: string;
  driver: 'local';
  createdAt: string; // RFC3339, seconds
  labels: Record<string, string> | null;
  options: Record<string, string> | null;
}

export interface VolumeView {
  CreatedAt: string;
  Driver: string;
  Labels: Record<string, string> | null;
  Mountpoint: string;
  Name: string;
  Options: Record<string, string> | null;
  Scope: 'local';
  UsageData?: { Size: number; RefCount: number };
}

const VALID_OPTS = new Set(['type', 'device', 'o', 'size']);
/** the local driver's mandatory companions (moby volume/local mandatoryOpts) */
const MANDATORY: Record<string, string[]> = { device: ['type'], type: ['device'], o: ['device', 'type'] };

/** The local driver's options check, with moby's words; then what loom can mount. */
export function validateLocalOptions(opts: Record<string, string>): void {
  for (const k of Object.keys(opts)) if (!VALID_OPTS.has(k)) throw invalidParameter(`invalid option: "${k}"`);
  if ('size' in opts) throw invalidParameter('quota size requested but no quota support');
  for (const [k, req] of Object.entries(MANDATORY)) {
    if (!(k in opts)) continue;
    for (const r of req) if (!(r in opts)) throw invalidParameter(`missing required option: "${r}"`);
  }
  if (!opts.type) return;
  const words = (opts.o ?? '').split(',').filter(Boolean);
  const isBind = words.includes('bind') || words.includes('rbind');
  if (opts.type !== 'tmpfs' && !isBind) {
    throw invalidParameter(`local volume type "${opts.type}" is not supported by loom (tmpfs, or a bind with o=bind, are)`);
  }
  if (isBind && !opts.device.startsWith('/')) throw invalidParameter(`invalid device for a bind volume: "${opts.device}" must be an absolute path`);
  const BIND_WORDS = new Set(['bind', 'rbind', 'ro', 'rw', 'private', 'rprivate', 'slave', 'rslave', 'shared', 'rshared', 'nosuid', 'nodev', 'noexec']);
  if (isBind) for (const w of words) if (!BIND_WORDS.has(w)) throw invalidParameter(`mount option "${w}" is not supported by loom for a bind volume`);
}

/** Bytes used below `p` (files counted once; symlinks not followed). */
export function diskUsage(p: string): number {
  let total = 0;
  const seen = new Set<string>();
  const walk = (d: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const f = path.join(d, e.name);
      try {
        const st = fs.lstatSync(f);
        const key = `${st.dev}:${st.ino}`;
        if (seen.has(key)) continue;
        seen.add(key);
        if (st.isDirectory()) walk(f);
        else total += st.size;
      } catch { /* gone meanwhile */ }
    }
  };
  walk(p);
  return total;
}

export class Volumes {
  private readonly store: Store;
  readonly dir: string;
  /** ids of the containers that reference a volume (running or not) */
  usedBy: (name: string) => string[] = () => [];

  constructor(store: Store, dataRoot: string) {
    this.store = store;
    this.dir = path.join(dataRoot, 'volumes');
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o701 });
  }

  mountpoint(name: string): string {
    return path.join(this.dir, name, '_data');
  }

  list(): VolumeRecord[] {
    return this.store.all<VolumeRecord>('volumes');
  }

  find(name: string): VolumeRecord | undefined {
    return this.store.get<VolumeRecord>('volumes', name);
  }

  get(name: string): VolumeRecord {
    const v = this.find(name);
    if (!v) throw notFound(`get ${name}: no such volume`);
    return v;
  }

  /** POST /volumes/create: a name taken already gives that volume back, as Docker does. */
  create(nameIn: string | undefined, opts: { driver?: string; labels?: Record<string, string> | null; options?: Record<string, string> | null; anonymous?: boolean } = {}): { volume: VolumeRecord; created: boolean } {
    const driver = opts.driver || 'local';
    const name = nameIn || randomBytes(32).toString('hex');
    if (nameIn) validateVolumeName(name);
    if (driver !== 'local') throw notFound(`error looking up volume plugin ${driver}: plugin "${driver}" not found`);
    const old = this.find(name);
    if (old) return { volume: old, created: false };
    const options = opts.options && Object.keys(opts.options).length ? { ...opts.options } : null;
    if (options) {
      try {
        validateLocalOptions(options);
      } catch (e) {
        throw new LoomError(statusOf(e), `create ${name}: ${messageOf(e)}`);
      }
    }
    const labels = { ...(opts.labels ?? {}) };
    // as moby's volume service: a volume created without a name is anonymous
    if (opts.anonymous || !nameIn) labels[ANONYMOUS_LABEL] = '';
    const v: VolumeRecord = {
      id: name, name, driver: 'local', createdAt: rfc3339Seconds(new Date()),
      labels: Object.keys(labels).length ? labels : null, options,
    };
    const data = this.mountpoint(name);
    fs.mkdirSync(data, { recursive: true, mode: 0o755 });
    try {
      this.store.put('volumes', v);
    } catch (e) {
      fs.rmSync(path.join(this.dir, name), { recursive: true, force: true });
      throw e;
    }
    return { volume: v, created: true };
  }

  isAnonymous(v: VolumeRecord): boolean {
    return !!v.labels && ANONYMOUS_LABEL in v.labels;
  }

  /** Makes the volume's data reachable at its mountpoint: a mount for tmpfs and bind volumes (once). */
  activate(name: string): string {
    const v = this.get(name);
    const mp = this.mountpoint(name);
    fs.mkdirSync(mp, { recursive: true });
    const o = v.options;
    if (o?.type && !isMountPoint(mp)) {
      const words = (o.o ?? '').split(',').filter(Boolean);
      if (words.includes('bind') || words.includes('rbind')) {
        if (!fs.existsSync(o.device!)) throw new LoomError(500, `error while mounting volume '${mp}': failed to mount local volume: mount ${o.device}:${mp}, flags: 0x1000: no such file or directory`);
        mountFs(o.device!, mp, '', { bind: true, recursive: words.includes('rbind'), readonly: words.includes('ro') });
      } else {
        mountFs(o.device || 'tmpfs', mp, 'tmpfs', { data: (o.o ?? '') });
      }
    }
    return mp;
  }

  /** Unmounts a tmpfs/bind volume's data once nothing uses it (its data stays for a bind; a tmpfs is emptied, as Docker). */
  deactivate(name: string): void {
    const v = this.find(name);
    if (!v?.options?.type) return;
    unmount(this.mountpoint(name));
  }

  /** DELETE /volumes/{name}: refused while a container references it (also with force, as Docker). */
  remove(name: string, force = false): void {
    const v = this.find(name);
    if (!v) {
      if (force) return;
      throw notFound(`get ${name}: no such volume`);
    }
    const users = this.usedBy(name);
    if (users.length) throw conflict(`remove ${name}: volume is in use - [${users.join(', ')}]`);
    const mp = this.mountpoint(name);
    try {
      unmount(mp);
    } catch (e) {
      throw new LoomError(500, `remove ${name}: ${messageOf(e)}`);
    }
    // never recurse through a mount: that would delete the bound host directory's content
    if (isMountPoint(mp)) throw new LoomError(500, `remove ${name}: ${mp} is still mounted`);
    this.store.delete('volumes', name);
    fs.rmSync(path.join(this.dir, name), { recursive: true, force: true });
  }

  view(v: VolumeRecord, usage = false): VolumeView {
    return {
      CreatedAt: v.createdAt,
      Driver: v.driver,
      Labels: v.labels,
      Mountpoint: this.mountpoint(v.name),
      Name: v.name,
      Options: v.options,
      Scope: 'local',
      ...(usage ? { UsageData: { Size: v.options?.type ? -1 : diskUsage(this.mountpoint(v.name)), RefCount: this.usedBy(v.name).length } } : {}),
    };
  }

  /** GET /volumes filters: dangling, name (substring), label (key or key=value), driver. */
  filter(f: Record<string, string[]>): VolumeRecord[] {
    for (const k of Object.keys(f)) if (!['dangling', 'name', 'label', 'driver'].includes(k)) throw invalidParameter(`invalid filter '${k}'`);
    let dangling: boolean | undefined;
    for (const d of f.dangling ?? []) {
      if (['true', '1'].includes(d)) dangling = true;
      else if (['false', '0'].includes(d)) dangling = false;
      else throw invalidParameter(`invalid filter 'dangling=${d}'`);
    }
    return this.list().filter((v) => {
      if (dangling !== undefined && (this.usedBy(v.name).length === 0) !== dangling) return false;
      if (f.name?.length && !f.name.some((n) => v.name.includes(n))) return false;
      if (f.driver?.length && !f.driver.includes(v.driver)) return false;
      if (f.label?.length && !f.label.every((l) => labelMatch(v.labels, l))) return false;
      return true;
    });
  }

  /** POST /volumes/prune: unused anonymous volumes (all unused ones with all=true), label filters. */
  prune(f: Record<string, string[]>, apiVersion: number): { VolumesDeleted: string[] | null; SpaceReclaimed: number } {
    for (const k of Object.keys(f)) if (!['label', 'label!', 'all'].includes(k)) throw invalidParameter(`invalid filter '${k}'`);
    const all = (f.all ?? []).some((x) => ['true', '1'].includes(x.toLowerCase())) || apiVersion < 1.42;
    for (const x of f.all ?? []) if (!['true', '1', 'false', '0'].includes(x.toLowerCase())) throw invalidParameter(`invalid filter 'all=${x}'`);
    const deleted: string[] = [];
    let space = 0;
    for (const v of this.list()) {
      if (!all && !this.isAnonymous(v)) continue;
      if (f.label?.length && !f.label.every((l) => labelMatch(v.labels, l))) continue;
      if (f['label!']?.length && f['label!'].some((l) => labelMatch(v.labels, l))) continue;
      if (this.usedBy(v.name).length) continue;
      const size = v.options?.type ? 0 : diskUsage(this.mountpoint(v.name));
      try {
        this.remove(v.name);
      } catch (e) {
        if (e instanceof LoomError && e.status === 409) continue;
        throw e;
      }
      deleted.push(v.name);
      space += size;
    }
    return { VolumesDeleted: deleted.length ? deleted : null, SpaceReclaimed: space };
  }
}

function labelMatch(labels: Record<string, string> | null, f: string): boolean {
  const i = f.indexOf('=');
  const k = i < 0 ? f : f.slice(0, i);
  if (!labels || !(k in labels)) return false;
  return i < 0 || labels[k] === f.slice(i + 1);
}

/** Docker's volume CreatedAt: RFC3339 to the second, in the daemon's zone (UTC here). */
function rfc3339Seconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
