// Test registries and test images: Debian's docker-registry (distribution 2.8) run in a sandbox's outside
// world, plain or with htpasswd basic auth, and images written in skopeo's `dir:` layout.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import type { Sandbox } from './sandbox.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface TestRegistry { addr: string; root: string; config: string }

/** Starts docker-registry on 198.51.100.2:PORT in the sandbox's outside world; waits until it answers. */
export async function startRegistry(sb: Sandbox, port: number, auth?: { user: string; password: string } | { token: TokenServer }, tls?: { cert: string; key: string; clientCa?: string }): Promise<TestRegistry> {
  const base = path.join(sb.dir, `registry-${port}`);
  const root = path.join(base, 'storage');
  fs.mkdirSync(root, { recursive: true });
  let authYaml = '';
  if (auth && 'token' in auth) {
    authYaml = `auth:\n  token:\n    realm: http://198.51.100.2:${auth.token.port}/token\n    service: test-registry\n    issuer: test-issuer\n    rootcertbundle: ${auth.token.cert}\n`;
  } else if (auth) {
    const line = execFileSync('htpasswd', ['-Bbn', auth.user, auth.password], { encoding: 'utf8' }).trim();
    fs.writeFileSync(path.join(base, 'htpasswd'), `${line}\n`);
    authYaml = `auth:\n  htpasswd:\n    realm: basic-realm\n    path: ${path.join(base, 'htpasswd')}\n`;
  }
  const config = path.join(base, 'config.yml');
  const tlsYaml = tls ? `  tls:\n    certificate: ${tls.cert}\n    key: ${tls.key}\n${tls.clientCa ? `    clientcas:\n      - ${tls.clientCa}\n` : ''}` : '';
  fs.writeFileSync(config, `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${root}\n  delete:\n    enabled: true\nhttp:\n  addr: 198.51.100.2:${port}\n${tlsYaml}${authYaml}`);
  sb.spawnExt(['/usr/bin/docker-registry', 'serve', config]);
  for (let i = 0; i < 200; i++) {
    const r = await sb.extExec(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `${tls ? 'https' : 'http'}://198.51.100.2:${port}/v2/`, ...(tls ? ['-k', ...(tls.clientCa ? ['--cert', path.join(path.dirname(tls.cert), 'client.cert'), '--key', path.join(path.dirname(tls.cert), 'client.key')] : [])] : [])]);
    if (r.stdout === '200' || r.stdout === '401') return { addr: `198.51.100.2:${port}`, root, config };
    await sleep(50);
  }
  throw new Error(`docker-registry on port ${port} did not come up`);
}

/**
 * A test CA with a server certificate for reg.test and 198.51.100.2 and a client certificate, all in `dir`:
 * ca.crt, server.crt/.key, client.cert/.key (the names Docker's certs.d layout uses for the client).
 */
export function makeTestCA(dir: string): { ca: string; cert: string; key: string; clientCert: string; clientKey: string } {
  fs.mkdirSync(dir, { recursive: true });
  const o = (...a: string[]) => execFileSync('openssl', a, { stdio: 'ignore', cwd: dir });
  o('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=loom test CA');
  fs.writeFileSync(path.join(dir, 'server.ext'), 'subjectAltName=DNS:reg.test,IP:198.51.100.2\nextendedKeyUsage=serverAuth\n');
  fs.writeFileSync(path.join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const [name, cn] of [['server', 'reg.test'], ['client', 'loom client']] as const) {
    o('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    o('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
  }
  fs.copyFileSync(path.join(dir, 'client.crt'), path.join(dir, 'client.cert'));
  return { ca: path.join(dir, 'ca.crt'), cert: path.join(dir, 'server.crt'), key: path.join(dir, 'server.key'), clientCert: path.join(dir, 'client.cert'), clientKey: path.join(dir, 'client.key') };
}

export interface TokenServer { port: number; cert: string; log: string }

/** Starts test/helpers/token-server.ts on 198.51.100.2:PORT with a fresh self-signed signing certificate. */
export async function startTokenServer(sb: Sandbox, port: number): Promise<TokenServer> {
  const dir = path.join(sb.dir, `token-${port}`);
  fs.mkdirSync(dir, { recursive: true });
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  const log = path.join(dir, 'requests.log');
  fs.writeFileSync(log, '');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=test token signer'], { stdio: 'ignore' });
  const tool = path.join(path.dirname(new URL(import.meta.url).pathname), 'token-server.ts');
  sb.spawnExt([process.execPath, '--disable-warning=ExperimentalWarning', tool, String(port), key, cert, log]);
  for (let i = 0; i < 200; i++) {
    const r = await sb.extExec(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `http://198.51.100.2:${port}/token`]);
    if (r.stdout === '200') {
      fs.writeFileSync(log, '');
      return { port, cert, log };
    }
    await sleep(50);
  }
  throw new Error('token server did not come up');
}

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface LayerSpec {
  /** path in the layer → file content (a string), or a symlink target ({ link }), or a directory ({ dir: true }) */
  files: Record<string, string | { link: string } | { dir: true } | { hardlink: string }>;
}

/** A layer tarball built with GNU tar from a directory tree (numeric owners, sorted names: reproducible). */
export function layerTar(work: string, spec: LayerSpec): Buffer {
  const d = fs.mkdtempSync(path.join(work, 'layer-'));
  for (const [p, v] of Object.entries(spec.files)) {
    const full = path.join(d, p);
    fs.mkdirSync(path.dirname(full), { recursive: true });
    if (typeof v === 'string') fs.writeFileSync(full, v);
    else if ('link' in v) fs.symlinkSync(v.link, full);
    else if ('hardlink' in v) fs.linkSync(path.join(d, v.hardlink), full);
    else fs.mkdirSync(full, { recursive: true });
  }
  const out = execFileSync('tar', ['-C', d, '--numeric-owner', '--sort=name', '--mtime=@0', '-cf', '-', '.'], { maxBuffer: 256 << 20 });
  fs.rmSync(d, { recursive: true, force: true });
  return out;
}

export interface DirImage { dir: string; manifestDigest: string; layers: string[]; diffIds: string[]; config: string }

/**
 * Writes an image in skopeo's dir: layout (Docker schema2 manifest, gzip layers) from uncompressed layer
 * tarballs; `cmd` and `env` go into the config.
 */
export function writeDirImage(dir: string, tars: Buffer[], cfg: { cmd?: string[]; env?: string[]; zstd?: boolean } = {}): DirImage {
  fs.mkdirSync(dir, { recursive: true });
  const layers: { mediaType: string; digest: string; size: number }[] = [];
  const diffIds: string[] = [];
  const oci = !!cfg.zstd; // zstd layers exist only in OCI manifests
  for (const t of tars) {
    const gz = cfg.zstd ? zlib.zstdCompressSync(t) : zlib.gzipSync(t);
    const digest = sha(gz);
    fs.writeFileSync(path.join(dir, digest.slice(7)), gz);
    layers.push({ mediaType: cfg.zstd ? 'application/vnd.oci.image.layer.v1.tar+zstd' : 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest, size: gz.length });
    diffIds.push(sha(t));
  }
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', created: '2026-12-01T00:00:00Z',
    config: { Env: cfg.env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: cfg.cmd ?? ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: tars.map(() => ({ created: '2026-12-01T00:00:00Z', created_by: 'test layer' })),
  }));
  const configDigest = sha(config);
  fs.writeFileSync(path.join(dir, configDigest.slice(7)), config);
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: oci ? 'application/vnd.oci.image.manifest.v1+json' : 'application/vnd.docker.distribution.manifest.v2+json',
    config: { mediaType: oci ? 'application/vnd.oci.image.config.v1+json' : 'application/vnd.docker.container.image.v1+json', digest: configDigest, size: config.length }, layers,
  }));
  fs.writeFileSync(path.join(dir, 'manifest.json'), manifest);
  fs.writeFileSync(path.join(dir, 'version'), 'Directory Transport Version: 1.1\n');
  return { dir, manifestDigest: sha(manifest), layers: layers.map((l) => l.digest), diffIds, config: configDigest };
}

/** Where distribution's filesystem driver keeps a blob's bytes. */
export function registryBlobPath(reg: TestRegistry, digest: string): string {
  const hex = digest.slice(7);
  return path.join(reg.root, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
}

/**
 * A TCP proxy in the outside world (listen → target) that passes the first `passBytes` of each connection's
 * answer and then holds the rest back for good: a download that stalls mid-layer, so a test can kill the
 * daemon while a pull is under way without depending on timing.
 */
export async function startStallingProxy(sb: Sandbox, listenPort: number, targetPort: number, passBytes: number): Promise<void> {
  const js = `const net=require('net');net.createServer(c=>{const s=net.connect(${targetPort},'198.51.100.2');let n=0;
c.on('data',d=>s.write(d));s.on('data',d=>{if(n>=${passBytes})return;const k=Math.min(d.length,${passBytes}-n);n+=k;c.write(d.subarray(0,k));});
c.on('error',()=>s.destroy());s.on('error',()=>c.destroy());c.on('close',()=>s.destroy());}).listen(${listenPort},'198.51.100.2');`;
  sb.spawnExt([process.execPath, '-e', js]);
  for (let i = 0; i < 200; i++) {
    const r = await sb.extExec(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `http://198.51.100.2:${listenPort}/v2/`]);
    if (r.stdout === '200' || r.stdout === '401') return;
    await sleep(50);
  }
  throw new Error('stalling proxy did not come up');
}
