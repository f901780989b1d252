// POST /build: the classic builder (a tar context in the body, Docker's JSON message stream out).
import type { AuthConfig } from '../../images/registry/service.ts';
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { route, STREAMED, bool } from '../router.ts';
import { invalidParameter, LoomError, messageOf } from '../../util/errors.ts';
import { unpackImage } from '../../runtime/images.ts';
import { Builder, BuildError, type BuildOptions } from '../../images/build/executor.ts';
import { DaemonBuildBackend } from '../../images/build/daemon-backend.ts';
import { applyDockerignore, readDockerignore } from '../../images/build/dockerignore.ts';
import { resolveInScope } from '../../images/archive/scope.ts';

const HANDLED = new Set(['t', 'dockerfile', 'buildargs', 'nocache', 'pull', 'rm', 'forcerm', 'target', 'labels', 'networkmode', 'q', 'extrahosts', 'version', 'remote']);

/** Parameters clients send with their default values; anything else in them is a feature loom lacks. */
const DEFAULTS: Record<string, (v: string) => boolean> = {
  cpusetcpus: (v) => v === '',
  cpusetmems: (v) => v === '',
  cpushares: (v) => v === '' || v === '0',
  cpuquota: (v) => v === '' || v === '0',
  cpuperiod: (v) => v === '' || v === '0',
  memory: (v) => v === '' || v === '0',
  memswap: (v) => v === '' || v === '0',
  cgroupparent: (v) => v === '',
  shmsize: (v) => v === '' || v === '0',
  ulimits: (v) => ['', 'null', '[]'].includes(v),
  cachefrom: (v) => ['', 'null', '[]'].includes(v),
  securityopt: (v) => ['', 'null', '[]'].includes(v),
  outputs: (v) => ['', 'null', '[]'].includes(v),
  platform: (v) => ['', 'linux', 'linux/amd64', 'linux/x86_64'].includes(v.toLowerCase()),
  squash: (v) => ['', '0', 'false', 'False'].includes(v),
  isolation: (v) => v === '' || v === 'default',
  session: () => true, // a BuildKit session id the docker CLI may send; nothing uses it without BuildKit
  buildid: () => true, // names a build for cancelling (POST /build/cancel); a build here ends with its request
};

function jsonMap(q: URLSearchParams, key: string): Record<string, string | null> {
  const raw = q.get(key);
  if (!raw) return {};
  try {
    const v = JSON.parse(raw) as unknown;
    if (v === null) return {};
    if (typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, string | null>;
  } catch {
    throw invalidParameter(`invalid ${key} parameter: ${raw}`);
  }
}

route('POST', '/build', async (d, { query, req, res }) => {
  for (const [k, v] of query) {
    if (HANDLED.has(k)) continue;
    const ok = DEFAULTS[k];
    if (!ok) throw invalidParameter(`build parameter "${k}" is not supported by loom`);
    if (!ok(v)) throw invalidParameter(`build parameter ${k}=${v} is not supported by loom`);
  }
  const version = query.get('version');
  if (version && version !== '1') throw invalidParameter(`builder version ${version} (BuildKit) is not supported by loom; use the classic builder (version=1, DOCKER_BUILDKIT=0)`);
  if (query.get('remote')) throw invalidParameter(`remote build contexts are not supported by loom: ${query.get('remote')}`);
  const buildArgs = jsonMap(query, 'buildargs');
  const labels = jsonMap(query, 'labels') as Record<string, string>;
  const extraHosts = query.getAll('extrahosts').flatMap((h) => h.split(',')).filter(Boolean);
  const backend = new DaemonBuildBackend(d);
  const tags = query.getAll('t').filter(Boolean);
  for (const t of tags) {
    try {
      backend.checkTag(t);
    } catch {
      throw invalidParameter(`invalid reference format: ${t}`);
    }
  }
  const dockerfileName = query.get('dockerfile') || 'Dockerfile';
  const networkMode = query.get('networkmode') || 'default';

  const tmp = path.join(d.opts.dataRoot, 'tmp', `build-${randomBytes(8).toString('hex')}`);
  const contextDir = path.join(tmp, 'context');
  fs.mkdirSync(tmp, { recursive: true });
  const cleanup = () => {
    backend.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  try {
    try {
      await unpackImage(req, contextDir);
    } catch (e) {
      const m = messageOf(e);
      if (/does not look like a tar archive|empty input|decompression failed|unexpected EOF|Unexpected EOF/i.test(m)) throw invalidParameter(`the build context is not a tar archive: ${m}`);
      throw new LoomError(500, `failed to unpack the build context: ${m}`);
    }
    let dockerfile: string;
    try {
      dockerfile = fs.readFileSync(resolveInScope(contextDir, dockerfileName), 'utf8');
    } catch {
      throw invalidParameter(`Cannot locate specified Dockerfile: ${dockerfileName}`);
    }
    let ignoreText = '';
    try {
      ignoreText = fs.readFileSync(path.join(contextDir, '.dockerignore'), 'utf8');
    } catch { /* none */ }
    applyDockerignore(contextDir, readDockerignore(ignoreText));
    const quiet = bool(query, 'q');
    const opts: BuildOptions = {
      contextDir, dockerfile, dockerfileName, tags, buildArgs,
      noCache: bool(query, 'nocache'),
      rm: query.has('rm') ? bool(query, 'rm') : true,
      forceRm: bool(query, 'forcerm'),
      target: query.get('target') || undefined,
      labels, networkMode, extraHosts, quiet, pull: bool(query, 'pull'),
    };
    backend.registryAuth = decodeAuthConfigs(req.headers['x-registry-config']);
    res.writeHead(200, { 'Content-Type': 'application/json' });
    const write = (o: unknown) => {
      if (!res.writableEnded) res.write(`${JSON.stringify(o)}\n`);
    };
    const builder = new Builder(opts, backend, { stream: (s) => write({ stream: s }), aux: (a) => write({ aux: a }), progress: (m) => write(m) });
    try {
      const id = await builder.build();
      if (quiet) write({ stream: `${id}\n` });
    } catch (e) {
      const msg = messageOf(e);
      if (!(e instanceof BuildError) && !(e instanceof LoomError)) d.log.warn({ err: msg }, 'build failed');
      write({ errorDetail: { message: msg }, error: msg });
    }
    res.end();
    return STREAMED;
  } finally {
    cleanup();
  }
});

/**
 * X-Registry-Config: what the docker CLI sends with a build, base64url JSON of {registry: AuthConfig}
 * for every registry it has credentials for (the base images' pulls use the matching one).
 */
function decodeAuthConfigs(h: string | string[] | undefined): Record<string, AuthConfig> {
  const v = Array.isArray(h) ? h[0] : h;
  if (!v) return {};
  try {
    const o = JSON.parse(Buffer.from(v.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8')) as unknown;
    return o && typeof o === 'object' && !Array.isArray(o) ? o as Record<string, AuthConfig> : {};
  } catch {
    return {};
  }
}
