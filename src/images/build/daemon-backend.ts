// The builder's backend in the daemon: images from the image store, RUN in a real container made by the
// container controller (runc, overlay, the default bridge or the build's network), its overlay upper
// directory packed as the step's layer, and new images committed as a root filesystem directory each.
// The image store keeps one unpacked root filesystem per image; a committed image starts as a hard-link
// copy of its parent's tree (cheap, and the layer is applied by replacing files, never writing through a
// shared inode), then gets the layer applied. When the store keeps layers, commit() becomes "add the
// layer, write the config" and nothing else here changes.
import fs from 'node:fs';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import type { Daemon } from '../../daemon.ts';
import type { ImageRecord } from '../../core/types.ts';
import { normalizeRef } from '../../core/images.ts';
import { nowIso } from '../../core/names.ts';
import { treeSize } from '../../runtime/images.ts';
import { readTail } from '../../runtime/logclock.ts';
import { applyLayer, packTree } from '../archive/layer.ts';
import { invalidParameter, messageOf } from '../../util/errors.ts';
import { emptyConfig, type BuildBackend, type BuildImage, type CommitRequest, type ImageConfig, type RunResult, type RunSpec } from './types.ts';

const REF_RE = /^[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*(?::[0-9]+)?(?:\/[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$/;

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

function cpLinked(from: string, to: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn('cp', ['-al', `${from}/.`, to], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`copying the parent image: ${err.trim()}`))));
  });
}

export class DaemonBuildBackend implements BuildBackend {
  private readonly d: Daemon;
  private readonly dir: string;
  private readonly cacheFile: string;

  constructor(d: Daemon) {
    this.d = d;
    this.dir = path.join(d.opts.dataRoot, 'images');
    this.cacheFile = path.join(d.opts.dataRoot, 'build-cache.json');
  }

  private toBuild(rec: ImageRecord): BuildImage {
    return { id: rec.id, config: fullConfig(rec.config as Partial<ImageConfig>), rootfs: rec.rootfs };
  }

  findImage(ref: string): BuildImage | undefined {
    const rec = this.d.images.find(ref.replace(/^docker\.io\/(library\/)?/, ''));
    return rec ? this.toBuild(rec) : undefined;
  }

  checkTag(ref: string): string {
    const r = normalizeRef(ref);
    if (!REF_RE.test(r)) throw invalidParameter(`invalid reference format: repository name (${ref}) must be lowercase`);
    return r;
  }

  tag(id: string, ref: string): void {
    this.d.images.tag(id, ref);
    this.d.events.publish('image', 'tag', id, { name: ref });
  }

  async run(image: BuildImage, spec: RunSpec, out: (chunk: Buffer) => void, created?: (id: string) => void): Promise<RunResult> {
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

  async commit(req: CommitRequest): Promise<BuildImage> {
    const created = nowIso();
    const tmp = path.join(this.dir, `.build-${randomBytes(8).toString('hex')}`);
    const rootfs = path.join(tmp, 'rootfs');
    try {
      fs.mkdirSync(rootfs, { recursive: true, mode: 0o755 });
      if (req.parent?.rootfs) await cpLinked(req.parent.rootfs, rootfs);
      let diffId = '';
      if (req.layer) diffId = (await applyLayer(req.layer, rootfs)).diffId;
      const doc = { parent: req.parent?.id ?? '', created, config: req.config, diffId, createdBy: req.createdBy, nonce: randomBytes(8).toString('hex') };
      const hex = createHash('sha256').update(JSON.stringify(doc)).digest('hex');
      const final = path.join(this.dir, hex);
      fs.renameSync(tmp, final);
      const rec: ImageRecord & { parent: string; createdBy: string; author: string } = {
        id: `sha256:${hex}`, name: `sha256:${hex}`, created, size: await treeSize(path.join(final, 'rootfs')),
        rootfs: path.join(final, 'rootfs'), comment: req.comment ?? '', config: req.config as unknown as ImageRecord['config'],
        parent: req.parent?.id ?? '', createdBy: req.createdBy, author: req.author ?? '',
      };
      try {
        this.d.store.put('images', rec);
      } catch (e) {
        fs.rmSync(final, { recursive: true, force: true });
        throw e;
      }
      return this.toBuild(rec);
    } catch (e) {
      fs.rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
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
    const rec = this.d.store.get<ImageRecord>('images', id);
    return rec ? this.toBuild(rec) : undefined;
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

  /** Build cache size for `system df`/prune: none is kept apart from images. */
  prune(): void {
    fs.rmSync(this.cacheFile, { force: true });
  }
}

export type { Readable };
