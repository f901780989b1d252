// Pure parts of the registry client: WWW-Authenticate parsing, dockerd's progress strings and JSON, the
// docker CLI's rendering of a message stream (terminal and plain), X-Registry-Auth decoding, login server
// addresses, Docker's error wording, manifest types and the platform choice, and config.json handling.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseChallenges } from '../../src/images/registry/auth.ts';
import { goJson, humanSize, progressString, ProgressStream } from '../../src/images/registry/progress.ts';
import { MessageRenderer, StreamError } from '../../src/cli/jsonmessage.ts';
import { decodeAuthHeader, serverDomain } from '../../src/images/registry/service.ts';
import { pullError, registryError } from '../../src/images/registry/errors.ts';
import { MT, manifestType, pickPlatform } from '../../src/images/registry/manifest.ts';
import { apiHost, authKey, registryConfigInfo, validateInsecure } from '../../src/images/registry/endpoint.ts';
import { parseRepoRef } from '../../src/images/registry/refname.ts';

test('WWW-Authenticate challenges: Bearer with quoted params, Basic, several in one header', () => {
  assert.deepEqual(parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"'), [
    { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/busybox:pull' } },
  ]);
  assert.deepEqual(parseChallenges('Basic realm="basic-realm"'), [{ scheme: 'basic', params: { realm: 'basic-realm' } }]);
  assert.deepEqual(parseChallenges(['Bearer realm="r",scope="repository:a:pull,push"', 'Basic realm=x']).map((c) => [c.scheme, c.params.scope ?? c.params.realm]), [['bearer', 'repository:a:pull,push'], ['basic', 'x']]);
  assert.deepEqual(parseChallenges(undefined), []);
});

test('progress strings and JSON as dockerd writes them', () => {
  assert.equal(humanSize(150), '150B');
  assert.equal(humanSize(3055), '3.055kB');
  assert.equal(humanSize(1057224), '1.057MB');
  assert.equal(humanSize(12_345_678_901), '12.35GB');
  assert.equal(progressString(32768, 1057224), `[=>${' '.repeat(49)}]  32.77kB/1.057MB`);
  assert.equal(progressString(1057224, 1057224), `[${'='.repeat(50)}>]  1.057MB/1.057MB`);
  assert.equal(progressString(0, 0), '');
  assert.equal(goJson({ progress: '[=>]' }), '{"progress":"[=\\u003e]"}');
  const lines: string[] = [];
  const p = new ProgressStream((s) => lines.push(s));
  p.message('Pulling from library/busybox', 'latest');
  p.status('Pulling fs layer', 'abc');
  p.progress('Downloading', 'abc', 10, 1000); // first update goes out
  p.progress('Downloading', 'abc', 20, 1000_000); // throttled
  p.progress('Downloading', 'abc', 1000_000, 1000_000); // the last always
  p.error('boom');
  p.aux({ Tag: '1', Digest: 'sha256:x', Size: 3 });
  assert.deepEqual(lines.map((l) => JSON.parse(l)), [
    { status: 'Pulling from library/busybox', id: 'latest' },
    { status: 'Pulling fs layer', progressDetail: {}, id: 'abc' },
    { status: 'Downloading', progressDetail: { current: 10, total: 1000 }, progress: progressString(10, 1000), id: 'abc' },
    { status: 'Downloading', progressDetail: { current: 1000_000, total: 1000_000 }, progress: progressString(1000_000, 1000_000), id: 'abc' },
    { errorDetail: { message: 'boom' }, error: 'boom' },
    { progressDetail: {}, aux: { Tag: '1', Digest: 'sha256:x', Size: 3 } },
  ]);
});

test('the docker CLI\'s rendering: plain lines without progress updates; a terminal redraws each layer\'s line', () => {
  const msgs = [
    { status: 'Pulling from library/x', id: '1' },
    { status: 'Pulling fs layer', progressDetail: {}, id: 'a' },
    { status: 'Pulling fs layer', progressDetail: {}, id: 'b' },
    { status: 'Downloading', progressDetail: { current: 5, total: 10 }, progress: 'x', id: 'a' },
    { status: 'Pull complete', progressDetail: {}, id: 'a' },
    { status: 'Digest: sha256:1' },
  ];
  let plain = '';
  const r = new MessageRenderer((s) => (plain += s), false);
  for (const m of msgs) r.render(m);
  assert.equal(plain, '1: Pulling from library/x\na: Pulling fs layer\nb: Pulling fs layer\na: Pull complete\nDigest: sha256:1\n');
  let tty = '';
  const t = new MessageRenderer((s) => (tty += s), true, 80);
  for (const m of msgs) t.render(m);
  // a: line 0, b: line 1; an update of a moves up 2, redraws, moves back down
  assert.equal(tty, '1: Pulling from library/x\n' +
    '\n\x1b[1A\x1b[2K\ra: Pulling fs layer \r\x1b[1B' +
    '\n\x1b[1A\x1b[2K\rb: Pulling fs layer \r\x1b[1B' +
    '\x1b[2A\x1b[2K\ra: Downloading       5B/10B\r\x1b[2B' +
    '\x1b[2A\x1b[2K\ra: Pull complete \r\x1b[2B' +
    'Digest: sha256:1\n');
  assert.throws(() => r.render({ errorDetail: { message: 'nope' }, error: 'nope' }), (e: Error) => e instanceof StreamError && e.message === 'nope');
});

test('X-Registry-Auth and login addresses', () => {
  const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  assert.deepEqual(decodeAuthHeader(enc({ username: 'u', password: 'p?>', serveraddress: 'r:5000' })), { username: 'u', password: 'p?>', serveraddress: 'r:5000' });
  // standard base64 (older clients) and the config.json `auth` field
  assert.deepEqual(decodeAuthHeader(Buffer.from(JSON.stringify({ auth: Buffer.from('a:b:c').toString('base64') })).toString('base64')), { auth: 'YTpiOmM=', username: 'a', password: 'b:c' });
  assert.deepEqual(decodeAuthHeader(undefined), {});
  assert.deepEqual(decodeAuthHeader('e30='), {});
  assert.throws(() => decodeAuthHeader('!!!'), /invalid X-Registry-Auth header/);
  assert.equal(serverDomain('https://index.docker.io/v1/'), 'docker.io');
  assert.equal(serverDomain(''), 'docker.io');
  assert.equal(serverDomain('http://Reg.Example:5000/'), 'reg.example:5000');
  assert.equal(apiHost('docker.io'), 'registry-1.docker.io');
  assert.equal(authKey('docker.io'), 'https://index.docker.io/v1/');
  assert.equal(authKey('localhost:5000'), 'localhost:5000');
});

test('insecure registries: validated, shown in info as dockerd does', () => {
  assert.throws(() => validateInsecure(['http://reg:5000']), /should not contain '::\/\/'|should not contain/);
  assert.throws(() => validateInsecure(['10.0.0.0/99']), /invalid CIDR 10\.0\.0\.0\/99/);
  const info = registryConfigInfo({ insecure: ['reg:5000', '10.1.0.0/16'], certsDir: '/x' });
  assert.deepEqual(info.InsecureRegistryCIDRs, ['127.0.0.0/8', '10.1.0.0/16']);
  assert.deepEqual(info.IndexConfigs['reg:5000'], { Name: 'reg:5000', Mirrors: [], Secure: false, Official: false });
});

test('Docker\'s words for registry errors', () => {
  const body = (code: string, message: string) => JSON.stringify({ errors: [{ code, message }] });
  const ref = parseRepoRef('localhost:5000/box:1');
  assert.equal(pullError(registryError(404, 'Not Found', body('MANIFEST_UNKNOWN', 'manifest unknown'), 'x'), 'localhost:5000/box', 'localhost:5000/box:1').message,
    'manifest for localhost:5000/box:1 not found: manifest unknown: manifest unknown');
  assert.equal(pullError(registryError(401, 'Unauthorized', body('DENIED', 'requested access to the resource is denied'), 'x'), 'busybox', 'busybox:latest').message,
    "pull access denied for busybox, repository does not exist or may require 'docker login': denied: requested access to the resource is denied");
  const unauthorized = registryError(401, 'Unauthorized', '', 'x');
  assert.equal(unauthorized.message, 'unauthorized: authentication required');
  assert.equal(unauthorized.status, 401);
  assert.equal(ref.domain, 'localhost:5000');
  assert.equal(parseRepoRef('busybox').path, 'library/busybox');
});

test('manifest types and the linux/amd64 choice', () => {
  assert.equal(manifestType(`${MT.dockerManifest}; charset=utf-8`, Buffer.from('{}')), MT.dockerManifest);
  assert.equal(manifestType('application/json', Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [] }))), MT.ociIndex);
  assert.equal(manifestType(undefined, Buffer.from(JSON.stringify({ schemaVersion: 2, config: {}, layers: [] }))), MT.ociManifest);
  assert.throws(() => manifestType('application/vnd.docker.distribution.manifest.v1+prettyjws', Buffer.from('{"schemaVersion":1}')), /schema 1/);
  const index = { schemaVersion: 2 as const, manifests: [
    { mediaType: MT.ociManifest, digest: 'sha256:a', size: 1, platform: { os: 'linux', architecture: 'arm64' } },
    { mediaType: MT.ociManifest, digest: 'sha256:b', size: 1, platform: { os: 'linux', architecture: 'amd64' } },
  ] };
  assert.equal(pickPlatform(index).digest, 'sha256:b');
  assert.throws(() => pickPlatform({ schemaVersion: 2, manifests: [index.manifests[0]!] }), /no matching manifest for linux\/amd64 in the manifest list entries \(linux\/arm64\)/);
});

test('config.json: credentials stored as the docker CLI stores them, other keys kept', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loom-dockercfg-'));
  const old = process.env.DOCKER_CONFIG;
  process.env.DOCKER_CONFIG = dir;
  try {
    const { storeAuth, getAuth, eraseAuth, registryAuthHeader } = await import('../../src/cli/dockerconfig.ts');
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ auths: { 'https://index.docker.io/v1/': { auth: 'dTpw' } }, psFormat: 'x' }));
    storeAuth('localhost:5000', { username: 'alice', password: 's3cret' });
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    assert.deepEqual(cfg, { auths: { 'https://index.docker.io/v1/': { auth: 'dTpw' }, 'localhost:5000': { auth: Buffer.from('alice:s3cret').toString('base64') } }, psFormat: 'x' });
    assert.equal(fs.readFileSync(path.join(dir, 'config.json'), 'utf8').split('\n')[1], '\t"auths": {');
    assert.deepEqual(getAuth('http://localhost:5000/'), { username: 'alice', password: 's3cret', identitytoken: undefined, serveraddress: 'localhost:5000' });
    assert.equal(getAuth('docker.io')?.username, 'u');
    assert.deepEqual(JSON.parse(Buffer.from(registryAuthHeader('localhost:5000')!, 'base64url').toString()), { username: 'alice', password: 's3cret', serveraddress: 'localhost:5000' });
    assert.equal(eraseAuth('localhost:5000'), true);
    assert.equal(eraseAuth('localhost:5000'), false);
    assert.equal(registryAuthHeader('localhost:5000'), undefined);
  } finally {
    if (old === undefined) delete process.env.DOCKER_CONFIG; else process.env.DOCKER_CONFIG = old;
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
