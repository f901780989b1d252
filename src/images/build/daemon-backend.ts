// The builder's backend in the daemon: images from the image store, RUN in a real container made by the
// container controller (runc, overlay, the default bridge or the build's network), its overlay upper
// directory packed as the step's layer, and new images committed to the layer store as Docker's image
// config JSON (parent's diff IDs + the new layer, history appended). An image's files are read (COPY
// --from, --chown lookups, WORKDIR) through a read-only view: its layers overlaid at a temporary mount
// point, unmounted when the build ends.
import type { AuthConfig } from '../registry/service.ts';
import { ProgressStream } from '../registry/progress.ts';
import { preparePull, runPull } from '../registry/pull.ts';
import { parseRepoRef } from '../registry/refname.ts';
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Daemon } from '../../daemon.ts';
import type { ImageRecord } from '../../core/types.ts';
import { DOCKER_VERSION } from '../../core/images.ts';
import { normalize, familiarString, parseNormalized, withDefaultTag } from '../reference.ts';
import { nowIso } from '../../core/names.ts';
import { readTail } from '../../runtime/logclock.ts';
import { mountOverlay, unmount } from '../../runtime/mounts.ts';
import { packTree } from '../archive/layer.ts';
import { invalidParameter, messageOf } from '../../util/errors.ts';
import type { ImageConfigJson } from '../store.ts';
import { emptyConfig, type BuildBackend, type BuildImage, type CommitRequest, type ImageConfig, type RunResult, type RunSpec } from './types.ts';

/** Files and directories runc creates as mount points in a container's upper directory: not the RUN's doing. */
const MOUNT_POINTS = new Set(['etc/hosts', 'etc/resolv.conf', 'etc/hostname', 'dev', 'proc', 'sys', 'dev/pts', 'dev/shm', 'dev/mqueue']);

function isEmptyMountPoint(root: string, rel: string): boolean {
  if (!MOUNT_POINTS.has(rel)) return false;
  try {
    const st = fs.lstatSync(path.join(root, rel));
    if (st.isDirectory()) return fs.readdirSync(path.join(root, rel)).every((n) => isEmptyMountPoint(root, `${rel}/${n}`));
    return st.isFile() && st.size === 0;
  } catch {
    return false;
  }
}

export function fullConfig(c: Partial<ImageConfig> | undefined): ImageConfig {
  return { ...emptyConfig(), ...(c ?? {}), Env: c?.Env ?? [] } as ImageConfig;
}

export class DaemonBuildBackend implements BuildBackend {
  private readonly d: Daemon;
  private readonly cacheFile: string;
  private readonly viewRoot: string;
  private readonly views = new Map<string, string>();

  constructor(d: Daemon) {
    this.d = d;
    this.cacheFile = path.join(d.opts.dataRoot, 'build-cache.json');
    this.viewRoot = path.join(d.opts.dataRoot, 'tmp', `build-views-${randomBytes(6).toString('hex')}`);
  }

  /** A read-only look at an image's files: its layers overlaid once per build (upper stays empty). */
  private view(id: string): string {
    const have = this.views.get(id);
    if (have) return have;
    const dir = path.join(this.viewRoot, id.slice(7, 19));
    const lowers = this.d.images.lowerDirs(id);
    if (lowers.length === 0) {
      fs.mkdirSync(path.join(dir, 'empty'), { recursive: true });
      this.views.set(id, path.join(dir, 'empty'));
      return path.join(dir, 'empty');
    }
    mountOverlay(lowers, path.join(dir, 'upper'), path.join(dir, 'work'), path.join(dir, 'merged'));
    this.views.set(id, path.join(dir, 'merged'));
    return path.join(dir, 'merged');
  }

  /** Unmounts the views; the build is over. */
  close(): void {
    for (const v of this.views.values()) {
      try {
        if (v.endsWith('merged')) unmount(v);
      } catch (e) {
        this.d.log.warn({ err: messageOf(e), path: v }, 'build view unmount');
      }
    }
    this.views.clear();
    fs.rmSync(this.viewRoot, { recursive: true, force: true });
  }

  private toBuild(rec: ImageRecord): BuildImage {
    const self = this;
    return {
      id: rec.id,
      config: fullConfig(rec.config as Partial<ImageConfig>),
      get rootfs() {
        return self.view(rec.id);
      },
    };
  }

  findImage(ref: string): BuildImage | undefined {
    const rec = this.d.images.find(ref);
    return rec ? this.toBuild(rec) : undefined;
  }

  /** credentials per registry from the client's X-Registry-Config */
  registryAuth: Record<string, AuthConfig> = {};

  async pullImage(ref: string, progress: (message: object) => void): Promise<BuildImage | undefined> {
    const r = parseRepoRef(ref);
    const want = r.tag || r.digest ? r : { ...r, tag: 'latest' };
    const creds = credentialsFor(this.registryAuth, want.domain);
    const out = new ProgressStream((line) => {
      try {
        progress(JSON.parse(line) as object);
      } catch { /* not a message */ }
    });
    const p = await preparePull(this.d.registry, want, creds);
    try {
      await runPull(p, this.d.images.store, out, { previousId: this.d.images.find(familiarString(want))?.id });
    } finally {
      p.client.close();
    }
    this.d.events.publish('image', 'pull', familiarString(want), { name: familiarString(want) });
    return this.findImage(familiarString(want));
  }

  checkTag(ref: string): string {
    try {
      const r = withDefaultTag(parseNormalized(ref));
      if (r.digest) throw new Error('digest');
      normalize(ref);
      return familiarString(r);
    } catch {
      throw invalidParameter(`invalid reference format: ${ref}`);
    }
  }

  tag(id: string, ref: string): void {
    const i = ref.lastIndexOf(':');
    const slash = ref.lastIndexOf('/');
    const name = this.d.images.tag(id, i > slash ? ref.slice(0, i) : ref, i > slash ? ref.slice(i + 1) : undefined);
    this.d.events.publish('image', 'tag', id, { name });
  }

  async run(image: BuildImage, spec: RunSpec, out: (chunk: Buffer) => void, created?: (id: string) => void): Promise<RunResult> {
    if (this.d.images.lowerDirs(image.id).length === 0) throw new Error(`cannot run ${spec.cmd.join(' ')}: the image has no files (FROM scratch)`);
    const c = this.d.containers.create({
      Image: image.id,
      Entrypoint: [],
      Cmd: spec.cmd,
      Env: spec.env,
      WorkingDir: spec.workdir,
      User: spec.user,
      AttachStdout: true,
      AttachStderr: true,
      HostConfig: { NetworkMode: spec.networkMode || 'default', ExtraHosts: spec.extraHosts.length ? spec.extraHosts : null },
    });
    created?.(c.id);
    const remove = () => this.d.containers.remove(c.id, true);
    const files = [path.join(c.stateDir, 'stdout.log'), path.join(c.stateDir, 'stderr.log')];
    const offsets = [0, 0];
    const pump = () => {
      files.forEach((f, i) => {
        const b = readTail(f, offsets[i]!);
        if (b.length) {
          offsets[i]! += b.length;
          out(b);
        }
      });
    };
    const exited = this.d.containers.wait(c.id, 'next-exit');
    const timer = setInterval(pump, 50);
    try {
      await this.d.containers.start(c.id);
    } catch (e) {
      clearInterval(timer);
      await remove().catch(() => {});
      throw new Error(messageOf(e));
    }
    const { StatusCode } = await exited;
    clearInterval(timer);
    pump();
    const upper = path.join(c.stateDir, 'upper');
    return {
      containerId: c.id,
      exitCode: StatusCode,
      diff: () => packTree(upper, { overlay: true, exclude: (rel) => isEmptyMountPoint(upper, rel) }),
      remove,
    };
  }

  async probe(image: BuildImage, createdBy: string): Promise<{ containerId: string; remove(): Promise<void> }> {
    const c = this.d.containers.create({ Image: image.id, Entrypoint: [], Cmd: ['/bin/sh', '-c', createdBy.replace(/^\/bin\/sh -c /, '')] });
    return { containerId: c.id, remove: () => this.d.containers.remove(c.id, true) };
  }

  async commit(req: CommitRequest): Promise<BuildImage> {
    const created = nowIso();
    const store = this.d.images.store;
    const parentCfg: ImageConfigJson = req.parent ? JSON.parse(store.configBytes(req.parent.id).toString('utf8')) as ImageConfigJson : {};
    const diffIds = [...(parentCfg.rootfs?.diff_ids ?? [])];
    const ingested = req.layer ? (await store.ingestLayer(req.layer)).diffId : undefined;
    if (ingested) diffIds.push(ingested);
    try {
      return this.putCommit(req, created, parentCfg, diffIds);
    } finally {
      // the ingest's pin ends once the image lists the layer (or failed to)
      if (ingested) store.unpin([ingested]);
    }
  }

  private putCommit(req: CommitRequest, created: string, parentCfg: ImageConfigJson, diffIds: string[]): BuildImage {
    const store = this.d.images.store;
    const history = [...(parentCfg.history ?? []), {
      created, created_by: req.createdBy,
      ...(req.comment ? { comment: req.comment } : {}),
      ...(req.author ? { author: req.author } : {}),
      ...(req.layer ? {} : { empty_layer: true }),
    }];
    const cfg: ImageConfigJson = {
      architecture: 'amd64',
      ...(req.author ? { author: req.author } : {}),
      ...(req.comment ? { comment: req.comment } : {}),
      config: req.config as unknown as ImageConfigJson['config'],
      container_config: { ...req.config, Cmd: ['/bin/sh', '-c', req.createdBy.startsWith('/bin/sh -c ') ? req.createdBy.slice(11) : req.createdBy] },
      created,
      docker_version: DOCKER_VERSION,
      history,
      os: 'linux',
      rootfs: { type: 'layers', diff_ids: diffIds },
    };
    const rec = store.putImage(JSON.stringify(cfg), diffIds.map((diffId) => ({ diffId })), [], { parent: req.parent?.id ?? '' });
    return this.toBuild(rec);
  }

  private readCache(): Record<string, string> {
    try {
      return JSON.parse(fs.readFileSync(this.cacheFile, 'utf8')) as Record<string, string>;
    } catch {
      return {};
    }
  }

  cacheGet(key: string): BuildImage | undefined {
    const id = this.readCache()[key];
    if (!id) return undefined;
    const rec = this.d.images.store.image(id);
    // a force-deleted image (kept hidden for a container) is no cache hit
    return rec && !rec.deleted ? this.toBuild(rec) : undefined;
  }

  cacheSet(key: string, imageId: string): void {
    const c = this.readCache();
    c[key] = imageId;
    // drop entries whose image is gone, so the index does not grow without bound
    for (const [k, v] of Object.entries(c)) if (!this.d.store.get('images', v)) delete c[k];
    const tmp = `${this.cacheFile}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(c));
    fs.renameSync(tmp, this.cacheFile);
  }

}

/** The AuthConfig of X-Registry-Config for a registry domain (docker.io's key is the index address). */
function credentialsFor(all: Record<string, AuthConfig>, domain: string): AuthConfig {
  const keys = domain === 'docker.io' ? ['https://index.docker.io/v1/', 'docker.io', 'index.docker.io'] : [domain, `https://${domain}`, `http://${domain}`];
  for (const k of keys) if (all[k]) return all[k]!;
  return {} as AuthConfig;
}
