// A container's files: the archive API (docker cp both ways), export, changes (docker diff) and commit.
import type http from 'node:http';
import path from 'node:path';
import fs from 'node:fs';
import { Readable } from 'node:stream';
import type { Daemon } from '../../daemon.ts';
import type { ContainerRecord } from '../../core/types.ts';
import { route, STREAMED, bool, json } from '../router.ts';
import { LoomError, invalidParameter, notFound, conflict, messageOf } from '../../util/errors.ts';
import { archivePath, containerChanges, isMountPlaceholder, NotFoundInContainer, resolvePath, statHeader, statPath, withRootfs, type ContainerFsInfo } from '../../images/archive/container-fs.ts';
import { applyLayer, packTree } from '../../images/archive/layer.ts';
import { DaemonBuildBackend, fullConfig } from '../../images/build/daemon-backend.ts';
import { applyChanges } from '../../images/changes.ts';
import type { ImageRunConfig } from '../../core/types.ts';

function fsInfo(d: Daemon, c: ContainerRecord): ContainerFsInfo {
  return {
    stateDir: c.stateDir,
    running: () => !!d.containers.find(c.id)?.state.Running,
    lowerDirs: d.images.lowerDirs(c.imageId),
  };
}

function pathParam(q: URLSearchParams): string {
  const p = q.get('path');
  if (!p) throw invalidParameter('bad parameter: path cannot be empty');
  return p;
}

/** The etc files loom bind-mounts are not in the overlay: a copy of them reads the container's own. */
function etcFile(c: ContainerRecord, root: string, resolved: string): string | undefined {
  const rel = path.relative(root, resolved);
  return ({ 'etc/hosts': c.hostsPath, 'etc/resolv.conf': c.resolvConfPath, 'etc/hostname': c.hostnamePath } as Record<string, string>)[rel];
}

function notFoundIn(c: ContainerRecord, p: string): LoomError {
  return notFound(`Could not find the file ${p} in container ${c.name}`);
}

// HEAD (the server serves it by the GET route): the stat header alone
route('GET', '/containers/{id}/archive', async (d, { params, query, req, res }) => {
  const c = d.containers.get(params.id!);
  const p = pathParam(query);
  await withRootfs(fsInfo(d, c), async (root) => {
    const { resolved, abs } = resolvePath(root, p);
    let stat;
    try {
      stat = statPath(root, resolved, abs);
    } catch (e) {
      if (e instanceof NotFoundInContainer) throw notFoundIn(c, p);
      throw e;
    }
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'X-Docker-Container-Path-Stat': statHeader(stat), 'Content-Type': 'application/json' });
      res.end();
      return;
    }
    let tar: Readable;
    const etc = etcFile(c, root, resolved);
    if (etc && !abs.endsWith('/')) {
      const body = fs.readFileSync(etc);
      stat = { ...stat, size: body.length };
      tar = packTree(path.dirname(etc), { only: path.basename(etc), rename: stat.name });
    } else tar = archivePath(root, resolved, abs);
    res.writeHead(200, { 'X-Docker-Container-Path-Stat': statHeader(stat), 'Content-Type': 'application/x-tar' });
    await pipeTo(tar, res);
  });
  return STREAMED;
});

function pipeTo(src: Readable, res: http.ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    src.on('error', () => {
      res.destroy();
      resolve();
    });
    res.on('close', resolve);
    src.pipe(res);
  });
}

route('PUT', '/containers/{id}/archive', async (d, { params, query, req, res }) => {
  const c = d.containers.get(params.id!);
  const p = pathParam(query);
  if (c.hostConfig.ReadonlyRootfs) throw new LoomError(403, 'container rootfs is marked read-only');
  await withRootfs(fsInfo(d, c), async (root) => {
    const { resolved, abs } = resolvePath(root, p);
    // the extraction point: followed if it is a link (in scope), must be a directory
    let dir: string;
    try {
      const st = statPath(root, resolved, abs);
      dir = st.linkTarget ? path.join(root, st.linkTarget) : resolved;
    } catch (e) {
      if (e instanceof NotFoundInContainer) throw notFoundIn(c, p);
      throw e;
    }
    if (!fs.statSync(dir).isDirectory()) throw invalidParameter('extraction point is not a directory');
    const owner = bool(query, 'copyUIDGID') ? undefined : { uid: 0, gid: 0 };
    try {
      await applyLayer(req as unknown as Readable, dir, { whiteouts: false, owner, noOverwriteDirNonDir: bool(query, 'noOverwriteDirNonDir'), scopeRoot: root });
    } catch (e) {
      req.resume();
      throw invalidParameter(messageOf(e));
    }
  });
  res.writeHead(200);
  res.end();
  return STREAMED;
});

route('GET', '/containers/{id}/export', async (d, { params, res }) => {
  const c = d.containers.get(params.id!);
  await withRootfs(fsInfo(d, c), async (root) => {
    res.writeHead(200, { 'Content-Type': 'application/x-tar' });
    await pipeTo(packTree(root), res);
  });
  d.events.publish('container', 'export', c.id, { name: c.name, image: c.config.Image });
  return STREAMED;
});

route('GET', '/containers/{id}/changes', (d, { params }) => {
  const c = d.containers.get(params.id!);
  const changes = containerChanges(path.join(c.stateDir, 'upper'), d.images.lowerDirs(c.imageId));
  return changes.length ? changes : null;
});

route('POST', '/commit', async (d, { query, body, res }) => {
  const ref = query.get('container');
  if (!ref) throw invalidParameter('container is required');
  const c = d.containers.get(ref);
  const repo = query.get('repo') ?? '';
  const tag = query.get('tag') ?? '';
  const backend = new DaemonBuildBackend(d);
  let tagRef: string | undefined;
  if (repo) tagRef = backend.checkTag(tag ? `${repo}:${tag}` : repo);
  else if (tag) throw invalidParameter('invalid reference format: repository name must have at least one component');
  const override = ((await body()) ?? {}) as Partial<ImageRunConfig>;
  const img = d.images.get(c.imageId);
  // the container's config, under the request's, with the --change instructions on top (as moby's merge)
  const base: ImageRunConfig = { ...img.config, User: c.config.User, Env: c.config.Env, Cmd: c.config.Cmd, Entrypoint: c.config.Entrypoint,
    WorkingDir: c.config.WorkingDir, Labels: c.config.Labels, ExposedPorts: c.config.ExposedPorts ?? img.config.ExposedPorts ?? null };
  for (const [k, v] of Object.entries(override)) if (v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0)) base[k] = v;
  try {
    applyChanges(base, query.getAll('changes').flatMap((ch) => ch.split('\n')).filter((ch) => ch.trim()));
  } catch (e) {
    throw invalidParameter(messageOf(e));
  }
  const pause = query.has('pause') ? bool(query, 'pause') : true;
  const paused = pause && c.state.Running && !c.state.Paused;
  if (paused) await d.containers.pause(c.id);
  let id: string;
  try {
    const upper = path.join(c.stateDir, 'upper');
    if (!fs.existsSync(upper)) fs.mkdirSync(upper, { recursive: true });
    const rec = await backend.commit({
      parent: backend.findImage(c.imageId) ?? null,
      layer: packTree(upper, { overlay: true, exclude: (rel) => isMountPlaceholder(upper, rel) }),
      config: fullConfig(base as never),
      createdBy: [c.path, ...c.args].join(' '),
      comment: query.get('comment') ?? '',
      author: query.get('author') ?? '',
    });
    id = rec.id;
    if (tagRef) backend.tag(id, tagRef);
  } catch (e) {
    if (e instanceof LoomError) throw e;
    throw conflict(`commit of ${c.name} failed: ${messageOf(e)}`);
  } finally {
    backend.close();
    if (paused) await d.containers.unpause(c.id).catch(() => {});
  }
  d.events.publish('container', 'commit', c.id, { name: c.name, image: c.config.Image, ...(tagRef ? { imageName: tagRef } : {}) });
  json(res, 201, { Id: id });
  return STREAMED;
});
