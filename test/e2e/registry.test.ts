// Registries end to end: a loom daemon in a sandbox with --insecure-registry for the test's registries
// (Debian's docker-registry 2.8 in the sandbox's outside world, one plain, one with htpasswd basic auth),
// driven by bin/loom and by the unmodified docker CLI. login/logout (POST /auth, credentials shared through
// the docker CLI's config.json), pull and push (progress streams, X-Registry-Auth), errors in Docker's words.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import { busyboxTar, createSandbox, requireRoot, ROOT, runCmd, type Sandbox } from '../helpers/sandbox.ts';
import { fails, ok } from '../helpers/assert.ts';
import { layerTar, registryBlobPath, startRegistry, startStallingProxy, writeDirImage, type DirImage, type TestRegistry } from '../helpers/registry.ts';

const DAEMON_ARGS = ['--insecure-registry', '198.51.100.2:5000', '--insecure-registry', '198.51.100.2:5001', '--insecure-registry', '198.51.100.2:5010', '--insecure-registry', '203.0.113.0/24'];
const skip = requireRoot() || (!fs.existsSync('/usr/bin/docker-registry') ? 'docker-registry is not installed' : false);

describe('registries through bin/loom and the docker CLI', { skip }, () => {
  let sb: Sandbox;
  let plain: TestRegistry;
  let basic: TestRegistry;
  let multi: DirImage;
  const skopeo = (...args: string[]) => runCmd(sb.inHost(['skopeo', '--insecure-policy', ...args]), { timeoutMs: 120_000 });
  const config = () => JSON.parse(fs.readFileSync(path.join(sb.dir, 'docker-config', 'config.json'), 'utf8'));

  before(async () => {
    sb = await createSandbox({ tag: 'rege2e' });
    plain = await startRegistry(sb, 5000);
    basic = await startRegistry(sb, 5001, { user: 'alice', password: 's3cret' });
    await sb.startDaemon(DAEMON_ARGS);
    // a three-layer image: busybox; files, a symlink; a whiteout of one of them, a hard link
    const base = fs.readFileSync(busyboxTar(sb.dir));
    const files = layerTar(sb.dir, { files: { 'etc/hello': 'hello\n', 'etc/keep': 'keep\n', 'bin/tool': '#!/bin/sh\necho tool\n', 'bin/link': { link: 'tool' } } });
    multi = writeDirImage(path.join(sb.dir, 'multi'), [base, files,
      layerTar(sb.dir, { files: { 'etc/.wh.hello': '', 'data/big': 'x'.repeat(300_000), 'data/hard': { hardlink: 'data/big' } } })], { cmd: ['/bin/sh', '-c', 'echo from-multi'] });
    await ok(skopeo('copy', '--dest-tls-verify=false', `dir:${multi.dir}`, `docker://${plain.addr}/test/multi:1`), 'skopeo copy multi');
    // another image sharing the first two layers
    const other = writeDirImage(path.join(sb.dir, 'other'), [base, files, layerTar(sb.dir, { files: { 'etc/other': 'other\n' } })]);
    await ok(skopeo('copy', '--dest-tls-verify=false', `dir:${other.dir}`, `docker://${plain.addr}/test/other:1`), 'skopeo copy other');
  });
  after(async () => { await sb?.cleanup(); });

  test('info shows the registry configuration', async () => {
    const info = JSON.parse(await ok(sb.loom('info', '--format', '{{json .RegistryConfig}}')));
    assert.deepEqual(info.InsecureRegistryCIDRs, ['127.0.0.0/8', '203.0.113.0/24']);
    assert.equal(info.IndexConfigs[plain.addr].Secure, false);
    assert.equal(info.IndexConfigs['docker.io'].Official, true);
  });

  test('login and logout, shared with the docker CLI through config.json', async () => {
    await fails(sb.loom('login', '-u', 'alice', '-p', 'wrong', basic.addr), /^Error response from daemon: login attempt to http:\/\/198\.51\.100\.2:5001\/v2\/ failed with status: 401 Unauthorized$/m);
    assert.equal(fs.existsSync(path.join(sb.dir, 'docker-config', 'config.json')), false, 'nothing stored after a failed login');
    const out = await ok(sb.loomIn('s3cret\n', 'login', '-u', 'alice', '--password-stdin', basic.addr));
    assert.match(out, /Login Succeeded/);
    assert.deepEqual(config().auths, { [basic.addr]: { auth: Buffer.from('alice:s3cret').toString('base64') } });
    assert.equal(fs.statSync(path.join(sb.dir, 'docker-config', 'config.json')).mode & 0o777, 0o600);
    // the docker CLI sees the login loom stored, and removes it
    assert.match(await ok(sb.docker('logout', basic.addr)), new RegExp(`Removing login credentials for ${basic.addr}`));
    assert.deepEqual(config().auths, {});
    // the docker CLI logs in through loom's POST /auth; loom's logout removes it
    await fails(sb.docker('login', '-u', 'alice', '-p', 'nope', basic.addr), /login attempt to http:\/\/198\.51\.100\.2:5001\/v2\/ failed with status: 401 Unauthorized/);
    assert.match(await ok(sb.docker('login', '-u', 'alice', '-p', 's3cret', basic.addr)), /Login Succeeded/);
    assert.equal(config().auths[basic.addr].auth, Buffer.from('alice:s3cret').toString('base64'));
    assert.match(await ok(sb.loom('logout', basic.addr)), new RegExp(`^Removing login credentials for ${basic.addr.replace(/\./g, '\\.')}$`));
    assert.deepEqual(config().auths, {});
    // a registry without auth accepts any login, as dockerd's ping does
    assert.match(await ok(sb.loom('login', '-u', 'x', '-p', 'y', plain.addr)), /Login Succeeded/);
    await ok(sb.loom('logout', plain.addr));
    await fails(sb.loom('login', '--password-stdin', basic.addr), /requires --username/);
    await fails(sb.loom('login', basic.addr), /Cannot perform an interactive login from a non TTY device/);
  });

  test('login to an unreachable or unknown registry names it', async () => {
    await fails(sb.loom('login', '-u', 'a', '-p', 'b', '198.51.100.2:5009'), /Error response from daemon: Get "https:\/\/198\.51\.100\.2:5009\/v2\/": dial tcp 198\.51\.100\.2:5009: connect: connection refused/);
    await fails(sb.loom('login', '-u', 'a', '-p', 'b', 'reg.example:5000'), /Error response from daemon: Get "https:\/\/reg\.example:5000\/v2\/": dial tcp: lookup reg\.example on 198\.51\.100\.2:53: /);
  });

  test('pull: progress lines, the layers as the image has them, up to date the second time', async () => {
    const ref = `${plain.addr}/test/multi:1`;
    const out = await ok(sb.loom('pull', ref), 'pull');
    const ids = multi.layers.map((d) => d.slice(7, 19));
    const lines = out.split('\n');
    assert.equal(lines[0], '1: Pulling from test/multi');
    for (const id of ids) {
      for (const st of ['Pulling fs layer', 'Verifying Checksum', 'Download complete', 'Pull complete']) assert.ok(lines.includes(`${id}: ${st}`), `${id}: ${st} in\n${out}`);
    }
    assert.deepEqual(lines.filter((l) => l.endsWith('Pull complete')), ids.map((id) => `${id}: Pull complete`), 'completed bottom up');
    assert.deepEqual(lines.slice(-3), [`Digest: ${multi.manifestDigest}`, `Status: Downloaded newer image for ${ref}`, ref]);
    // the container sees the layers' tree: whiteout applied, symlink and hard link kept, the config's Cmd
    assert.equal(await ok(sb.loom('run', '--rm', ref)), 'from-multi');
    assert.equal(await ok(sb.loom('run', '--rm', ref, 'sh', '-c', 'ls /etc/hello 2>&1; cat /etc/keep; readlink /bin/link; stat -c %h /data/hard; wc -c < /data/big')),
      'ls: /etc/hello: No such file or directory\nkeep\ntool\n2\n300000');
    const insp = JSON.parse(await ok(sb.loom('image', 'inspect', ref)))[0];
    assert.equal(insp.Id, multi.config);
    assert.deepEqual(insp.RepoTags, [ref]);
    assert.deepEqual(insp.RepoDigests, [`${plain.addr}/test/multi@${multi.manifestDigest}`]);
    assert.deepEqual(insp.RootFS.Layers, multi.diffIds);
    // again: nothing to download
    assert.deepEqual((await ok(sb.loom('pull', ref))).split('\n'), ['1: Pulling from test/multi', `Digest: ${multi.manifestDigest}`, `Status: Image is up to date for ${ref}`, ref]);
    // an image sharing two layers: those are not downloaded
    const other = await ok(sb.loom('pull', `${plain.addr}/test/other:1`));
    assert.equal(other.split('\n').filter((l) => l.endsWith(': Already exists')).length, 2, other);
    assert.equal(other.split('\n').filter((l) => l.endsWith(': Pull complete')).length, 1, other);
    // on a terminal: each layer's line redrawn in place (cursor moves, line clears), as the docker CLI draws it
    await ok(sb.loom('rmi', `${plain.addr}/test/other:1`));
    const tty = await runCmd(['script', '-qec', `${path.join(ROOT, 'bin/loom')} pull ${plain.addr}/test/other:1`, '/dev/null'], { env: { ...sb.env, COLUMNS: '120' }, timeoutMs: 60_000 });
    assert.equal(tty.code, 0, tty.stdout + tty.stderr);
    assert.match(tty.stdout, /\x1b\[\d+A\x1b\[2K\r[0-9a-f]{12}: Pull complete/);
    assert.match(tty.stdout, /Status: Downloaded newer image/);
    // by digest
    await ok(sb.loom('rmi', ref, `${plain.addr}/test/other:1`));
    const byDigest = `${plain.addr}/test/multi@${multi.manifestDigest}`;
    const d = await ok(sb.loom('pull', byDigest));
    assert.match(d, new RegExp(`Status: Downloaded newer image for ${byDigest.replace(/[.]/g, '\\.')}`));
    assert.equal(await ok(sb.loom('run', '--rm', byDigest)), 'from-multi');
    assert.match(await ok(sb.loom('images', '--digests', '--format', '{{.Repository}} {{.Tag}} {{.Digest}}')), new RegExp(`${plain.addr}/test/multi <none> ${multi.manifestDigest}`));
  });

  test('push: layers pushed, mounted or already there; skopeo reads what loom pushed', async () => {
    await sb.image('box');
    await ok(sb.loom('tag', 'box', `${plain.addr}/loom/box:1`));
    const out = await ok(sb.loom('push', `${plain.addr}/loom/box:1`), 'push');
    const lines = out.split('\n');
    assert.equal(lines[0], `The push refers to repository [${plain.addr}/loom/box]`);
    assert.ok(lines.some((l) => /^[0-9a-f]{12}: Preparing$/.test(l)), out);
    assert.ok(lines.some((l) => /^[0-9a-f]{12}: Pushed$/.test(l)), out);
    const m = /^1: digest: (sha256:[0-9a-f]{64}) size: (\d+)$/.exec(lines.at(-1)!);
    assert.ok(m, out);
    const insp = JSON.parse(await ok(skopeo('inspect', '--tls-verify=false', `docker://${plain.addr}/loom/box:1`)));
    assert.equal(insp.Digest, m[1]);
    const raw = await ok(skopeo('inspect', '--raw', '--tls-verify=false', `docker://${plain.addr}/loom/box:1`));
    assert.equal(raw.length, Number(m[2]));
    assert.equal(JSON.parse(raw).mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
    assert.deepEqual(JSON.parse(await ok(sb.loom('image', 'inspect', '-f', '{{json .RepoDigests}}', 'box'))), [`${plain.addr}/loom/box@${m[1]}`]);
    // again: every layer is there
    assert.match(await ok(sb.loom('push', `${plain.addr}/loom/box:1`)), /: Layer already exists\n/);
    // a pulled image pushed to another repository of the same registry: its layers are mounted
    await ok(sb.loom('pull', `${plain.addr}/test/multi:1`));
    await ok(sb.loom('tag', `${plain.addr}/test/multi:1`, `${plain.addr}/loom/copy:2`));
    const copy = await ok(sb.loom('push', `${plain.addr}/loom/copy:2`));
    assert.equal(copy.split('\n').filter((l) => l.endsWith(': Mounted from test/multi')).length, 3, copy);
    // round trip: removed here, pulled back, run
    await ok(sb.loom('rmi', 'box', `${plain.addr}/loom/box:1`));
    await ok(sb.loom('pull', `${plain.addr}/loom/box:1`));
    assert.equal(await ok(sb.loom('run', '--rm', `${plain.addr}/loom/box:1`, 'cat', '/www/index.html')), 'hello from loom');
  });

  test('the docker CLI pulls and pushes through loom', async () => {
    await ok(sb.loom('rmi', `${plain.addr}/test/multi:1`, `${plain.addr}/loom/copy:2`));
    const pulled = await ok(sb.docker('pull', `${plain.addr}/test/multi:1`), 'docker pull');
    assert.match(pulled, /Pull complete/);
    assert.match(pulled, new RegExp(`Digest: ${multi.manifestDigest}`));
    assert.equal(await ok(sb.docker('run', '--rm', `${plain.addr}/test/multi:1`)), 'from-multi');
    await ok(sb.docker('tag', `${plain.addr}/test/multi:1`, `${plain.addr}/docker/pushed:3`));
    const pushed = await ok(sb.docker('push', `${plain.addr}/docker/pushed:3`), 'docker push');
    assert.match(pushed, /^3: digest: sha256:[0-9a-f]{64} size: \d+$/m);
    assert.match(await ok(sb.docker('images', '--digests', `${plain.addr}/docker/pushed`)), /sha256:[0-9a-f]{64}/);
    await fails(sb.docker('pull', `${plain.addr}/test/multi:nope`), new RegExp(`Error response from daemon: manifest for ${plain.addr.replace(/\./g, '\\.')}/test/multi:nope not found: manifest unknown: manifest unknown`));
  });

  test('build FROM a registry image pulls it (as the classic builder); --pull pulls again', async () => {
    const ctx = fs.mkdtempSync(path.join(sb.dir, 'buildctx-'));
    fs.writeFileSync(path.join(ctx, 'Dockerfile'), `FROM ${plain.addr}/test/other:1\nRUN echo built > /etc/built\nCMD ["cat", "/etc/built", "/etc/other"]\n`);
    await sb.loom('rmi', '-f', `${plain.addr}/test/other:1`);
    const out = await ok(sb.loom('build', '-t', 'fromreg:1', ctx), 'build pulls its base');
    assert.match(out, /Pull complete|Already exists/);
    assert.equal(await ok(sb.loom('run', '--rm', 'fromreg:1')), 'built\nother');
    assert.match(await ok(sb.loom('images', '--format', '{{.Repository}}:{{.Tag}}')), new RegExp(`${plain.addr.replace(/\./g, '\\.')}/test/other:1`));
    // --pull with the image here: up to date, the build goes on; through the docker CLI's classic builder too
    assert.match(await ok(sb.loom('build', '--pull', '-t', 'fromreg:2', ctx)), /Image is up to date|Successfully tagged fromreg:2/);
    const viaDocker = await runCmd(sb.inHost(['docker', 'build', '--pull', '-t', 'fromreg:3', ctx]), { env: { ...sb.env, DOCKER_BUILDKIT: '0' }, timeoutMs: 120_000 });
    assert.equal(viaDocker.code, 0, viaDocker.stderr);
    // a base that no registry has: Docker's words, nothing built
    fs.writeFileSync(path.join(ctx, 'Dockerfile'), `FROM ${plain.addr}/test/nope:1\n`);
    const bad = await sb.loom('build', '-t', 'fromreg:bad', ctx);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stdout + bad.stderr, /manifest for .*test\/nope:1 not found|not found/);
    await ok(sb.loom('rmi', 'fromreg:1', 'fromreg:2', 'fromreg:3'));
  });

  test('pull and push errors in Docker\'s words', async () => {
    await fails(sb.loom('pull', `${plain.addr}/test/multi:nope`), new RegExp(`^Error response from daemon: manifest for ${plain.addr.replace(/\./g, '\\.')}/test/multi:nope not found: manifest unknown: manifest unknown$`, 'm'));
    await fails(sb.loom('pull', 'busybox'), /^Error response from daemon: Get "https:\/\/registry-1\.docker\.io\/v2\/": dial tcp: lookup registry-1\.docker\.io on 198\.51\.100\.2:53: /m);
    await fails(sb.loom('pull', 'Bad/Name'), /invalid reference format/);
    await fails(sb.loom('push', `${plain.addr}/nothing/here:1`), /An image does not exist locally with the tag: 198\.51\.100\.2:5000\/nothing\/here/);
    // basic auth registry: credentials come from the login, through X-Registry-Auth
    await sb.image('box');
    await ok(sb.loom('tag', 'box', `${basic.addr}/team/box:1`));
    await fails(sb.loom('push', `${basic.addr}/team/box:1`), /no basic auth credentials/);
    await ok(sb.loom('login', '-u', 'alice', '-p', 's3cret', basic.addr));
    const out = await ok(sb.loom('push', `${basic.addr}/team/box:1`));
    assert.match(out, /^1: digest: sha256/m);
    await ok(sb.loom('rmi', `${basic.addr}/team/box:1`));
    await ok(sb.docker('pull', `${basic.addr}/team/box:1`));
    await ok(sb.loom('logout', basic.addr));
    await fails(sb.loom('pull', `${basic.addr}/team/box:2`), /no basic auth credentials/);
  });

  test('a pull killed with the daemon leaves no image; the next pull completes', async () => {
    // a layer big enough to stall in the middle (the proxy holds back all but its first 512 KiB)
    const big = writeDirImage(path.join(sb.dir, 'big'), [fs.readFileSync(busyboxTar(sb.dir)), layerTar(sb.dir, { files: { 'big.bin': (await import('node:crypto')).randomBytes(4 << 20).toString('base64') } })]);
    await ok(skopeo('copy', '--dest-tls-verify=false', `dir:${big.dir}`, `docker://${plain.addr}/test/big:1`));
    await startStallingProxy(sb, 5010, 5000, 512 * 1024);
    const ref = '198.51.100.2:5010/test/big:1';
    // pull through the API and wait for the layer's first progress update
    await new Promise<void>((resolve, reject) => {
      const req = http.request({ socketPath: sb.socket, method: 'POST', path: `/images/create?fromImage=${encodeURIComponent('198.51.100.2:5010/test/big')}&tag=1` }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => {
          text += d;
          if (text.includes('"Downloading"')) resolve();
        });
        res.on('end', () => reject(new Error(`pull ended: ${text}`)));
        res.on('error', () => {});
      });
      req.on('error', () => {});
      req.end();
    });
    await sb.stopDaemon('SIGKILL');
    await sb.startDaemon(DAEMON_ARGS);
    await fails(sb.loom('image', 'inspect', ref), /No such image/);
    assert.deepEqual(fs.readdirSync(path.join(sb.dir, 'data', 'images', 'tmp')), [], 'no partial download left');
    assert.equal(fs.existsSync(path.join(sb.dir, 'data', 'images', 'layers', big.diffIds[1]!.slice(7))), false, 'no partial layer');
    const out = await ok(sb.loom('pull', `${plain.addr}/test/big:1`));
    assert.match(out, /Pull complete/);
    assert.equal(await ok(sb.loom('run', '--rm', `${plain.addr}/test/big:1`, 'sh', '-c', 'wc -c < /big.bin')), String(Math.ceil((4 << 20) / 3) * 4));
  });

  test('five layers: three downloaded at once, the rest waiting; zstd layers; every tag with -a', async () => {
    const five = writeDirImage(path.join(sb.dir, 'five'), [fs.readFileSync(busyboxTar(sb.dir)), ...[1, 2, 3, 4].map((i) => layerTar(sb.dir, { files: { [`layer${i}`]: `${i}\n` } }))]);
    await ok(skopeo('copy', '--dest-tls-verify=false', `dir:${five.dir}`, `docker://${plain.addr}/test/five:1`));
    await ok(skopeo('copy', '--dest-tls-verify=false', `dir:${five.dir}`, `docker://${plain.addr}/test/five:2`));
    const out = await ok(sb.loom('pull', `${plain.addr}/test/five:1`));
    const fetched = five.layers.map((d) => d.slice(7, 19)).filter((id) => !out.includes(`${id}: Already exists`));
    assert.ok(fetched.length >= 4, out);
    assert.deepEqual(out.split('\n').filter((l) => l.endsWith(': Waiting')), fetched.slice(3).map((id) => `${id}: Waiting`), out);
    assert.equal(await ok(sb.loom('run', '--rm', `${plain.addr}/test/five:1`, 'cat', '/layer1', '/layer4')), '1\n4');
    // zstd-compressed OCI layers
    const zst = writeDirImage(path.join(sb.dir, 'zstd'), [fs.readFileSync(busyboxTar(sb.dir)), layerTar(sb.dir, { files: { layer2: '2\n' } })], { zstd: true });
    await ok(skopeo('copy', '--dest-tls-verify=false', `dir:${zst.dir}`, `docker://${plain.addr}/test/zstd:1`));
    const raw = JSON.parse(await ok(skopeo('inspect', '--raw', '--tls-verify=false', `docker://${plain.addr}/test/zstd:1`)));
    assert.equal(raw.layers[0].mediaType, 'application/vnd.oci.image.layer.v1.tar+zstd');
    await ok(sb.loom('rmi', `${plain.addr}/test/five:1`));
    await ok(sb.loom('pull', `${plain.addr}/test/zstd:1`), 'pull zstd');
    assert.equal(await ok(sb.loom('run', '--rm', `${plain.addr}/test/zstd:1`, 'cat', '/layer2')), '2');
    // -a: every tag of the repository
    const all = await ok(sb.loom('pull', '-a', `${plain.addr}/test/five`));
    assert.match(all, /^1: Pulling from test\/five$/m);
    assert.match(all, /^2: Pulling from test\/five$/m);
    assert.match(all, new RegExp(`^Status: Downloaded newer image for ${plain.addr.replace(/\./g, '\\.')}/test/five$`, 'm'));
    const tags = (await ok(sb.loom('images', '--format', '{{.Tag}}', `${plain.addr}/test/five`))).split('\n').sort();
    assert.deepEqual(tags, ['1', '2']);
  });

  test('a layer whose bytes do not match its digest: the pull fails and nothing is stored', async () => {
    const bad = writeDirImage(path.join(sb.dir, 'bad'), [fs.readFileSync(busyboxTar(sb.dir)), layerTar(sb.dir, { files: { 'bad': 'x'.repeat(100_000) } })]);
    await ok(skopeo('copy', '--dest-tls-verify=false', `dir:${bad.dir}`, `docker://${plain.addr}/test/bad:1`));
    const blob = registryBlobPath(plain, bad.layers[1]!);
    const bytes = fs.readFileSync(blob);
    bytes[bytes.length - 30] = bytes[bytes.length - 30]! ^ 0xff;
    fs.writeFileSync(blob, bytes);
    await fails(sb.loom('pull', `${plain.addr}/test/bad:1`), new RegExp(`^filesystem layer verification failed for digest ${bad.layers[1]}$`, 'm'));
    await fails(sb.loom('image', 'inspect', `${plain.addr}/test/bad:1`), /No such image/);
    assert.equal(fs.existsSync(path.join(sb.dir, 'data', 'images', 'layers', bad.diffIds[1]!.slice(7))), false, 'no layer of it');
    assert.equal(fs.existsSync(path.join(sb.dir, 'data', 'images', 'blobs', 'sha256', bad.layers[1]!.slice(7))), false, 'no blob of it');
    assert.deepEqual(fs.readdirSync(path.join(sb.dir, 'data', 'images', 'tmp')), []);
  });

  test('docker-py: login, pull, push through loom', async () => {
    const py = `
import docker, json, sys
c = docker.DockerClient(base_url='unix://${sb.socket}')
r = c.login(username='alice', password='s3cret', registry='${basic.addr}')
print('login', r.get('Status'))
try:
    c.login(username='alice', password='bad', registry='${basic.addr}', reauth=True)
except docker.errors.APIError as e:
    print('badlogin', e.explanation)
img = c.images.pull('${plain.addr}/test/multi', tag='1')
print('pulled', img.id)
img.tag('${basic.addr}/py/multi', 'v1')
last = None
for line in c.images.push('${basic.addr}/py/multi', tag='v1', stream=True, decode=True, auth_config={'username': 'alice', 'password': 's3cret'}):
    last = line
    if 'error' in line: print('pusherror', line['error'])
print('aux', json.dumps(last.get('aux', {}).get('Tag')))
try:
    c.images.pull('${plain.addr}/test/multi', tag='nope')
except docker.errors.NotFound as e:
    print('notfound', e.explanation)
`;
    const out = await ok(runCmd(['python3', '-c', py], { env: { ...sb.env, DOCKER_HOST: `unix://${sb.socket}` } }), 'docker-py');
    const lines = out.split('\n');
    assert.equal(lines[0], 'login Login Succeeded');
    assert.match(lines[1]!, /^badlogin login attempt to http:\/\/198\.51\.100\.2:5001\/v2\/ failed with status: 401 Unauthorized$/);
    assert.equal(lines[2], `pulled ${multi.config}`);
    assert.equal(lines[3], 'aux "v1"');
    assert.match(lines[4]!, /^notfound manifest for 198\.51\.100\.2:5000\/test\/multi:nope not found: manifest unknown: manifest unknown$/);
  });

  test('file capabilities and an opaque directory survive pull and push', async () => {
    // layers built with GNU tar --xattrs: security.capability on an executable, then an opaque directory
    const mk = (name: string, fill: (d: string) => void) => {
      const d = path.join(sb.dir, `xl-${name}`);
      fs.mkdirSync(d, { recursive: true });
      fill(d);
      return execFileSync('tar', ['-C', d, '--numeric-owner', '--sort=name', '--mtime=@0', '--xattrs', '--xattrs-include=security.capability', '-cf', '-', '.'], { maxBuffer: 64 << 20 });
    };
    const l1 = mk('1', (d) => { fs.mkdirSync(path.join(d, 'opq')); fs.writeFileSync(path.join(d, 'opq/a'), 'a'); fs.writeFileSync(path.join(d, 'opq/b'), 'b'); });
    const l2 = mk('2', (d) => {
      fs.mkdirSync(path.join(d, 'opq'));
      fs.writeFileSync(path.join(d, 'opq/.wh..wh..opq'), '');
      fs.writeFileSync(path.join(d, 'opq/c'), 'c');
      fs.mkdirSync(path.join(d, 'usr/bin'), { recursive: true });
      fs.copyFileSync('/bin/busybox', path.join(d, 'usr/bin/capped'));
      execFileSync('setcap', ['cap_net_raw+ep', path.join(d, 'usr/bin/capped')]);
    });
    const img = writeDirImage(path.join(sb.dir, 'caps'), [fs.readFileSync(busyboxTar(sb.dir)), l1, l2]);
    await ok(skopeo('copy', '--dest-tls-verify=false', `dir:${img.dir}`, `docker://${plain.addr}/test/caps:1`));
    await ok(sb.loom('pull', `${plain.addr}/test/caps:1`));
    assert.equal(await ok(sb.loom('run', '--rm', `${plain.addr}/test/caps:1`, 'ls', '/opq')), 'c');
    const top = await ok(sb.loom('image', 'inspect', '-f', '{{.GraphDriver.Data.UpperDir}}', `${plain.addr}/test/caps:1`));
    assert.match(execFileSync('getcap', [path.join(top, 'usr/bin/capped')], { encoding: 'utf8' }), /cap_net_raw[=+]ep/);
    // pushed on: the registry gets the very blobs (capability and opaque marker inside)
    await ok(sb.loom('tag', `${plain.addr}/test/caps:1`, `${plain.addr}/again/caps:1`));
    await ok(sb.loom('push', `${plain.addr}/again/caps:1`));
    const back = path.join(sb.dir, 'caps-back');
    await ok(skopeo('copy', '--src-tls-verify=false', `docker://${plain.addr}/again/caps:1`, `dir:${back}`));
    for (const l of img.layers) assert.ok(fs.readFileSync(path.join(back, l.slice(7))).equals(fs.readFileSync(path.join(img.dir, l.slice(7)))), `layer ${l}`);
  });
});
