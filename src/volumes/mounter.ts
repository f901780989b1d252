// A container's mounts across its life: planned once at create (volumes made then, as Docker), made
// reachable at each start (bind sources created for -v, tmpfs/bind volumes mounted, empty volumes filled
// from the image), released at exit and, for anonymous volumes, removed with `rm -v` / `--rm`.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { invalidParameter, LoomError, messageOf } from '../util/errors.ts';
import type { OciMount } from '../runtime/spec.ts';
import { planMounts, type ApiMount, type MountPoint } from './specs.ts';
import type { Volumes } from './volumes.ts';
import type { Logger } from '../util/log.ts';

export interface MountRequest {
  Binds?: string[] | null;
  Mounts?: ApiMount[] | null;
  Tmpfs?: Record<string, string> | null;
  VolumesFrom?: string[] | null;
}

/** An image record's VOLUMEs, read defensively: the image store may or may not keep `config.Volumes`. */
export function imageVolumes(img: unknown): string[] {
  const v = (img as { config?: { Volumes?: unknown } } | undefined)?.config?.Volumes;
  return v && typeof v === 'object' ? Object.keys(v) : [];
}

export class Mounter {
  private readonly volumes: Volumes;
  private readonly log: Logger;
  /** told of volumes created and removed here (the daemon's events) */
  onVolume: (action: 'create' | 'destroy', name: string) => void = () => {};

  constructor(volumes: Volumes, log: Logger) {
    this.volumes = volumes;
    this.log = log;
  }

  /**
   * The mounts of a new container, with its volumes created (named ones when missing, anonymous ones
   * anew). Returns them and an undo that removes what this call created.
   */
  plan(hc: MountRequest, configVolumes: string[], mountsOf: (ref: string) => MountPoint[]): { mounts: MountPoint[]; undo: () => void } {
    const mounts = planMounts({
      binds: hc.Binds, mounts: hc.Mounts, tmpfs: hc.Tmpfs, volumesFrom: hc.VolumesFrom, configVolumes, mountsOf,
      exists: (p) => fs.existsSync(p),
    });
    const made: string[] = [];
    const undo = () => {
      for (const n of made.reverse()) {
        try {
          this.volumes.remove(n, true);
          this.onVolume('destroy', n);
        } catch (e) {
          this.log.warn({ volume: n, err: messageOf(e) }, 'removing a volume of a failed create');
        }
      }
    };
    try {
      for (const m of mounts) {
        if (m.Type !== 'volume') continue;
        const { volume, created } = this.volumes.create(m.Name || undefined, { labels: m.volumeLabels, options: m.volumeOptions, anonymous: !m.Name });
        if (created) {
          made.push(volume.name);
          this.onVolume('create', volume.name);
        }
        m.Name = volume.name;
        m.Source = this.volumes.mountpoint(volume.name);
        delete m.volumeLabels;
        delete m.volumeOptions;
      }
    } catch (e) {
      undo();
      throw e;
    }
    return { mounts, undo };
  }

  /**
   * What a start needs: the OCI mounts, and the step that fills empty volumes from the image's content
   * (run by the runtime once the rootfs is mounted). `mounts` is changed in place: a volume filled once
   * is not filled again (copyData goes false), as Docker.
   */
  prepare(mounts: MountPoint[]): { oci: OciMount[]; fill: (rootfs: string) => void } {
    const oci: OciMount[] = [];
    for (const m of mounts) {
      if (m.Type === 'tmpfs') {
        oci.push({ destination: m.Destination, type: 'tmpfs', source: 'tmpfs', options: m.tmpfsOptions ?? ['nosuid', 'nodev', 'noexec'] });
        continue;
      }
      let source = m.Source;
      if (m.Type === 'volume') {
        source = this.volumes.activate(m.Name);
        m.Source = source;
      } else if (!fs.existsSync(source)) {
        // -v creates a missing host directory, as Docker; a --mount without CreateMountpoint was refused at create
        if (!m.createSource) throw invalidParameter(`invalid mount config for type "bind": bind source path does not exist: ${source}`);
        fs.mkdirSync(source, { recursive: true, mode: 0o755 });
      }
      if (m.Type === 'bind') checkPropagation(source, m.Propagation);
      oci.push({
        destination: m.Destination, type: 'bind', source,
        options: [m.nonRecursive ? 'bind' : 'rbind', m.RW ? 'rw' : 'ro', m.Propagation || 'rprivate'],
      });
    }
    const fill = (rootfs: string) => {
      for (const m of mounts) {
        if (m.Type !== 'volume' || !m.copyData) continue;
        copyUp(rootfs, m.Destination, m.Source);
        m.copyData = false;
      }
    };
    return { oci, fill };
  }

  /** A stopped container's tmpfs/bind volumes are unmounted when no running container uses them. */
  release(mounts: MountPoint[] | undefined, stillUsed: (name: string) => boolean): void {
    for (const m of mounts ?? []) {
      if (m.Type !== 'volume' || stillUsed(m.Name)) continue;
      try {
        this.volumes.deactivate(m.Name);
      } catch (e) {
        this.log.warn({ volume: m.Name, err: messageOf(e) }, 'unmounting a volume failed');
      }
    }
  }

  /** After a restart: volumes mounted for containers that are no longer running are unmounted. */
  sweep(inUse: (name: string) => boolean): void {
    for (const v of this.volumes.list()) {
      if (!v.options?.type || inUse(v.name)) continue;
      try {
        this.volumes.deactivate(v.name);
      } catch (e) {
        this.log.warn({ volume: v.name, err: messageOf(e) }, 'unmounting a volume failed');
      }
    }
  }

  /** `rm -v` and `--rm`: the container's anonymous volumes go with it (named ones stay, as Docker). */
  removeAnonymous(mounts: MountPoint[] | undefined): void {
    for (const m of mounts ?? []) {
      if (m.Type !== 'volume') continue;
      const v = this.volumes.find(m.Name);
      if (!v || !this.volumes.isAnonymous(v)) continue;
      try {
        this.volumes.remove(m.Name);
        this.onVolume('destroy', m.Name);
      } catch (e) {
        // still used by another container (--volumes-from): it stays, as Docker
        this.log.info({ volume: m.Name, err: messageOf(e) }, 'anonymous volume kept');
      }
    }
  }
}

/**
 * Docker's check before a shared or slave bind: the host mount the source lives on must propagate
 * (shared, or for slave also a slave), else the container's mount would silently stay private.
 */
export function checkPropagation(source: string, propagation: string): void {
  const wantShared = propagation === 'shared' || propagation === 'rshared';
  const wantSlave = propagation === 'slave' || propagation === 'rslave';
  if (!wantShared && !wantSlave) return;
  const { point, optional } = mountInfoOf(source);
  const isShared = optional.some((o) => o.startsWith('shared:'));
  const isSlave = optional.some((o) => o.startsWith('master:'));
  if (wantShared && !isShared) throw new LoomError(500, `path ${source} is mounted on ${point} but it is not a shared mount`);
  if (wantSlave && !isShared && !isSlave) throw new LoomError(500, `path ${source} is mounted on ${point} but it is not a shared or slave mount`);
}

/** The mount a host path lives on, from /proc/self/mountinfo: its mount point and optional fields. */
function mountInfoOf(p: string): { point: string; optional: string[] } {
  let best = { point: '', optional: [] as string[] };
  let real = p;
  try {
    real = fs.realpathSync(p);
  } catch { /* as given */ }
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f.length < 7) continue;
    const point = f[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    const under = real === point || real.startsWith(point === '/' ? '/' : `${point}/`);
    if (under && point.length >= best.point.length) best = { point, optional: f.slice(6, f.indexOf('-')) };
  }
  return best;
}

/**
 * Docker's copy-up: an empty volume gets the image's content at its destination (files, modes,
 * owners, links: `cp -a`, which keeps all of them, where fs.cpSync drops owners). The path is resolved
 * inside the rootfs, so a symlink in the image cannot point the copy at the host.
 */
export function copyUp(rootfs: string, dest: string, volumeDir: string): void {
  let src: string;
  try {
    src = fs.realpathSync(path.join(rootfs, dest));
  } catch {
    return; // nothing there in the image
  }
  const root = fs.realpathSync(rootfs);
  if (src !== root && !src.startsWith(root + '/')) return;
  if (!fs.statSync(src).isDirectory()) return;
  if (fs.readdirSync(volumeDir).length) return;
  try {
    execFileSync('cp', ['-a', '--', `${src}/.`, volumeDir], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const err = (e as { stderr?: Buffer }).stderr?.toString().trim();
    throw new LoomError(500, `failed to copy the image's content at ${dest} into the volume: ${err || messageOf(e)}`);
  }
}
