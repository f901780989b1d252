// The registry client (src/images/registry) against Debian's real docker-registry 2.8, run in a sandbox's
// outside world: once plain, once with htpasswd basic auth. skopeo is the independent client: what skopeo
// pushed this client pulls byte for byte, what this client pushed (streamed PATCH, chunked PATCHes, a
// monolithic PUT, a cross-repository mount) skopeo copies back identically. Errors in Docker's words: an
// unknown manifest, missing or wrong credentials, a blob whose bytes do not match its digest (nothing kept),
// an unreachable registry and an unknown host. The client runs inside the sandbox's host namespace
// (test/helpers/registry-tool.ts); no traffic leaves the sandbox.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createSandbox, requireRoot, ROOT, runCmd, type Sandbox } from '../helpers/sandbox.ts';
import { fails, ok } from '../helpers/assert.ts';
import { layerTar, makeTestCA, registryBlobPath, startRegistry, startTokenServer, writeDirImage, type DirImage, type TestRegistry, type TokenServer } from '../helpers/registry.ts';

const skip = requireRoot() || (!fs.existsSync('/usr/bin/docker-registry') ? 'docker-registry is not installed' : !fs.existsSync('/usr/bin/skopeo') ? 'skopeo is not installed' : false);
const NODE = process.execPath;
const TOOL = path.join(ROOT, 'test/helpers/registry-tool.ts');

describe('registry client against docker-registry 2.8', { skip }, () => {
  let sb: Sandbox;
  let plain: TestRegistry;
  let basic: TestRegistry;
  let tokenReg: TestRegistry;
  let tokens: TokenServer;
  let img: DirImage;

  const tool = (env: Record<string, string>, ...args: string[]) => runCmd(sb.inHost([NODE, '--disable-warning=ExperimentalWarning', TOOL, ...args]), {
    env: { ...process.env, REG_INSECURE: '198.51.100.2:5000,198.51.100.2:5001,198.51.100.2:5002,198.51.100.2:5009', REG_HOSTS: path.join(sb.dir, 'hosts'), REG_RESOLV: path.join(sb.dir, 'resolv.conf'), ...env },
  });
  const skopeo = (...args: string[]) => runCmd(sb.inHost(['skopeo', '--insecure-policy', ...args]), { timeoutMs: 120_000 });
  const sameDir = (a: string, b: string) => {
    const files = (d: string) => fs.readdirSync(d).filter((f) => f !== 'version').sort();
    assert.deepEqual(files(b), files(a));
    for (const f of files(a)) assert.ok(fs.readFileSync(path.join(a, f)).equals(fs.readFileSync(path.join(b, f))), `${f} differs`);
  };

  before(async () => {
    sb = await createSandbox({ tag: 'reg' });
    plain = await startRegistry(sb, 5000);
    basic = await startRegistry(sb, 5001, { user: 'alice', password: 's3cret' });
    tokens = await startTokenServer(sb, 5100);
    tokenReg = await startRegistry(sb, 5002, { token: tokens });
    img = writeDirImage(path.join(sb.dir, 'img'), [
      layerTar(sb.dir, { files: { 'etc/hello': 'hello\n', 'bin/tool': '#!/bin/sh\necho tool\n', 'bin/link': { link: 'tool' } } }),
      layerTar(sb.dir, { files: { 'etc/.wh.hello': '', 'data/big': 'x'.repeat(300_000), 'data/hard': { hardlink: 'data/big' } } }),
    ]);
  });
  after(async () => { await sb?.cleanup(); });

  test('what skopeo pushed is pulled byte for byte, by tag and by digest', async () => {
    await ok(skopeo('copy', '--dest-tls-verify=false', `dir:${img.dir}`, `docker://${plain.addr}/skopeo/img:1`), 'skopeo copy');
    const out = path.join(sb.dir, 'pulled-tag');
    assert.equal(await ok(tool({}, 'pull', `${plain.addr}/skopeo/img:1`, out)), img.manifestDigest);
    sameDir(img.dir, out);
    const out2 = path.join(sb.dir, 'pulled-digest');
    assert.equal(await ok(tool({}, 'pull', `${plain.addr}/skopeo/img@${img.manifestDigest}`, out2)), img.manifestDigest);
    sameDir(img.dir, out2);
  });

  test('an OCI index is resolved to its linux/amd64 image', async () => {
    // skopeo writes OCI manifests with --format oci; an index around it is made with `skopeo copy --all`
    await ok(skopeo('copy', '--format', 'oci', '--dest-tls-verify=false', `dir:${img.dir}`, `docker://${plain.addr}/skopeo/oci:1`), 'skopeo copy oci');
    const ociDir = path.join(sb.dir, 'oci-dir');
    await ok(skopeo('copy', '--src-tls-verify=false', `docker://${plain.addr}/skopeo/oci:1`, `dir:${ociDir}`));
    const m = JSON.parse(fs.readFileSync(path.join(ociDir, 'manifest.json'), 'utf8'));
    const mBytes = fs.readFileSync(path.join(ociDir, 'manifest.json'));
    const { createHash } = await import('node:crypto');
    const mDigest = `sha256:${createHash('sha256').update(mBytes).digest('hex')}`;
    // the arm64 entry: the same image as a Docker manifest (the registry wants every entry present)
    await ok(skopeo('copy', '--dest-tls-verify=false', `dir:${img.dir}`, `docker://${plain.addr}/skopeo/oci:arm`), 'skopeo copy v2s2');
    const index = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { mediaType: 'application/vnd.docker.distribution.manifest.v2+json', digest: img.manifestDigest, size: fs.statSync(path.join(img.dir, 'manifest.json')).size, platform: { architecture: 'arm64', os: 'linux' } },
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: mDigest, size: mBytes.length, platform: { architecture: 'amd64', os: 'linux' } },
      ],
    }));
    const r = await sb.extExec(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'PUT', '-H', 'Content-Type: application/vnd.oci.image.index.v1+json', '--data-binary', index.toString(), `http://${plain.addr}/v2/skopeo/oci/manifests/multi`]);
    assert.equal(r.stdout, '201');
    const out = path.join(sb.dir, 'pulled-index');
    const digest = await ok(tool({}, 'pull', `${plain.addr}/skopeo/oci:multi`, out));
    assert.equal(digest, `sha256:${createHash('sha256').update(index).digest('hex')}`, 'the digest reported is the index\'s, as docker pull prints it');
    assert.equal(m.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.ok(fs.readFileSync(path.join(out, 'manifest.json')).equals(mBytes));
  });

  test('pushes (streamed, chunked, monolithic, mounted) are read back identically by skopeo', async () => {
    const pushes: [string, string[]][] = [
      ['loom/streamed:1', []], ['loom/chunked:1', ['--chunk', '65536']], ['loom/mono:1', ['--monolithic']],
    ];
    for (const [name, extra] of pushes) {
      const out = await ok(tool({}, 'push', img.dir, `${plain.addr}/${name}`, ...extra), `push ${name}`);
      assert.match(out, /pushed/);
      assert.equal(out.split('\n').at(-1), img.manifestDigest);
      const back = path.join(sb.dir, `back-${name.replace(/\W/g, '_')}`);
      await ok(skopeo('copy', '--src-tls-verify=false', `docker://${plain.addr}/${name}`, `dir:${back}`), `skopeo copy ${name}`);
      sameDir(img.dir, back);
    }
    // again: every blob is there already (HEAD)
    assert.doesNotMatch(await ok(tool({}, 'push', img.dir, `${plain.addr}/loom/streamed:2`)), /pushed/);
    // another repository: mounted from the first
    const mounted = await ok(tool({}, 'push', img.dir, `${plain.addr}/other/app:1`, '--mount-from', 'loom/streamed'));
    assert.equal(mounted.split('\n').filter((l) => l.endsWith(': mounted')).length, 3, mounted);
    const insp = JSON.parse(await ok(skopeo('inspect', '--tls-verify=false', `docker://${plain.addr}/other/app:1`)));
    assert.equal(insp.Digest, img.manifestDigest);
    assert.deepEqual(insp.Layers, img.layers);
  });

  test('errors in Docker\'s words', async () => {
    await fails(tool({}, 'pull', `${plain.addr}/skopeo/img:nope`, path.join(sb.dir, 'x1')), /^manifest for 198\.51\.100\.2:5000\/skopeo\/img:nope not found: manifest unknown: manifest unknown$/m);
    await fails(tool({}, 'pull', `${plain.addr}/skopeo/img@sha256:${'1'.repeat(64)}`, path.join(sb.dir, 'x2')), /manifest for .*@sha256:1{64} not found: manifest unknown/);
    await fails(tool({}, 'pull', '198.51.100.2:5009/a/b:1', path.join(sb.dir, 'x3')), /^Get "https?:\/\/198\.51\.100\.2:5009\/v2\/": dial tcp 198\.51\.100\.2:5009: connect: connection refused$/m);
    await fails(tool({}, 'pull', 'reg.example:5000/a/b:1', path.join(sb.dir, 'x4')), /^Get "https:\/\/reg\.example:5000\/v2\/": dial tcp: lookup reg\.example on 198\.51\.100\.2:53: /m);
  });

  test('a blob whose bytes do not match its digest is refused and nothing is kept', async () => {
    await ok(tool({}, 'push', img.dir, `${plain.addr}/bad/img:1`));
    // the registry serves what its storage holds: corrupt the second layer there (same length)
    const blob = registryBlobPath(plain, img.layers[1]!);
    const bytes = fs.readFileSync(blob);
    bytes[100] = bytes[100]! ^ 0xff;
    fs.writeFileSync(blob, bytes);
    const out = path.join(sb.dir, 'pulled-bad');
    await fails(tool({}, 'pull', `${plain.addr}/bad/img:1`, out), new RegExp(`^filesystem layer verification failed for digest ${img.layers[1]}$`, 'm'));
    assert.deepEqual(fs.readdirSync(out).sort(), [img.config.slice(7), img.layers[0]!.slice(7)].sort(), 'only the verified blobs, no partial file');
    fs.writeFileSync(blob, (bytes[100] = bytes[100]! ^ 0xff, bytes));
  });

  test('basic auth: credentials checked, used for push and pull', async () => {
    await fails(tool({}, 'push', img.dir, `${basic.addr}/team/app:1`), /^Head "http:\/\/198\.51\.100\.2:5001\/v2\/team\/app\/blobs\/sha256:[0-9a-f]{64}": no basic auth credentials$/m);
    await fails(tool({ REG_USER: 'alice', REG_PASS: 'wrong' }, 'login', basic.addr), /^login attempt to http:\/\/198\.51\.100\.2:5001\/v2\/ failed with status: 401 Unauthorized$/m);
    await fails(tool({ REG_USER: 'alice', REG_PASS: 'wrong' }, 'pull', `${basic.addr}/team/app:1`, path.join(sb.dir, 'x5')), /^unauthorized: authentication required$/m);
    assert.equal(await ok(tool({ REG_USER: 'alice', REG_PASS: 's3cret' }, 'login', basic.addr)), 'Login Succeeded');
    const creds = { REG_USER: 'alice', REG_PASS: 's3cret' };
    assert.equal((await ok(tool(creds, 'push', img.dir, `${basic.addr}/team/app:1`))).split('\n').at(-1), img.manifestDigest);
    const out = path.join(sb.dir, 'pulled-basic');
    assert.equal(await ok(tool(creds, 'pull', `${basic.addr}/team/app:1`, out)), img.manifestDigest);
    sameDir(img.dir, out);
    const insp = JSON.parse(await ok(skopeo('inspect', '--tls-verify=false', '--creds', 'alice:s3cret', `docker://${basic.addr}/team/app:1`)));
    assert.equal(insp.Digest, img.manifestDigest);
  });

  test('bearer tokens: anonymous, with credentials, cached per scope, identity token from login', async () => {
    const alice = { REG_USER: 'alice', REG_PASS: 's3cret' };
    const tokenLog = () => fs.readFileSync(tokens.log, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { method: string; user: string; scopes: string[] });
    // no credentials: an anonymous token without push access; the registry refuses
    await fails(tool({}, 'push', img.dir, `${tokenReg.addr}/public/app:1`), /^unauthorized: /m);
    fs.writeFileSync(tokens.log, '');
    assert.equal((await ok(tool(alice, 'push', img.dir, `${tokenReg.addr}/public/app:1`))).split('\n').at(-1), img.manifestDigest);
    // one token for the whole push (every blob and the manifest share its scope)
    assert.deepEqual(tokenLog(), [{ method: 'GET', user: 'alice', scopes: ['repository:public/app:pull,push'] }]);
    fs.writeFileSync(tokens.log, '');
    // anonymous pull of a public repository
    const out = path.join(sb.dir, 'pulled-token');
    assert.equal(await ok(tool({}, 'pull', `${tokenReg.addr}/public/app:1`, out)), img.manifestDigest);
    sameDir(img.dir, out);
    assert.deepEqual(tokenLog(), [{ method: 'GET', user: '', scopes: ['repository:public/app:pull'] }]);
    // a private repository: anonymous access is refused in moby's words
    await ok(tool(alice, 'push', img.dir, `${tokenReg.addr}/private/app:1`));
    await fails(tool({}, 'pull', `${tokenReg.addr}/private/app:1`, path.join(sb.dir, 'x6')), /^(unauthorized: authentication required|pull access denied for 198\.51\.100\.2:5002\/private\/app, repository does not exist or may require 'docker login': denied: .*)$/m);
    // wrong password: the token server's words
    await fails(tool({ REG_USER: 'alice', REG_PASS: 'nope' }, 'login', tokenReg.addr), /^Get "http:\/\/198\.51\.100\.2:5100\/token\?.*": unauthorized: incorrect username or password$/m);
    // login hands out an identity token, which then works in place of the password (OAuth refresh grant)
    const login = await ok(tool(alice, 'login', tokenReg.addr));
    const idtoken = /identity token: (\w+)/.exec(login)?.[1];
    assert.ok(idtoken, login);
    fs.writeFileSync(tokens.log, '');
    assert.equal(await ok(tool({ REG_IDTOKEN: idtoken }, 'pull', `${tokenReg.addr}/private/app:1`, path.join(sb.dir, 'pulled-idtoken'))), img.manifestDigest);
    assert.deepEqual(tokenLog().map((l) => l.method), ['POST']);
  });

  test('HTTPS: the CA and client certificate from certs.d/<host:port>/', async () => {
    const pki = makeTestCA(path.join(sb.dir, 'pki'));
    const tlsReg = await startRegistry(sb, 5443, undefined, { cert: pki.cert, key: pki.key, clientCa: pki.ca });
    const certs = path.join(sb.dir, 'certs.d');
    const hostDir = path.join(certs, 'reg.test:5443');
    fs.mkdirSync(hostDir, { recursive: true });
    fs.appendFileSync(path.join(sb.dir, 'hosts'), '198.51.100.2\treg.test\n');
    const env = { REG_CERTS: certs, REG_INSECURE: '' };
    const ref = `reg.test:${tlsReg.addr.split(':')[1]}/tls/app:1`;
    await fails(tool(env, 'push', img.dir, ref), /^Get "https:\/\/reg\.test:5443\/v2\/": tls: failed to verify certificate: x509: certificate signed by unknown authority$/m);
    fs.copyFileSync(pki.ca, path.join(hostDir, 'ca.crt'));
    // the registry wants a client certificate
    await fails(tool(env, 'push', img.dir, ref), /^Get "https:\/\/reg\.test:5443\/v2\/": /m);
    fs.copyFileSync(pki.clientCert, path.join(hostDir, 'client.cert'));
    await fails(tool(env, 'push', img.dir, ref), /missing key client\.key for client certificate client\.cert/);
    fs.copyFileSync(pki.clientKey, path.join(hostDir, 'client.key'));
    assert.equal((await ok(tool(env, 'push', img.dir, ref))).split('\n').at(-1), img.manifestDigest);
    const out = path.join(sb.dir, 'pulled-tls');
    assert.equal(await ok(tool(env, 'pull', ref, out)), img.manifestDigest);
    sameDir(img.dir, out);
  });

  test('names resolve through the daemon\'s resolv.conf (search domains) and hosts file, failures as Go words them', async () => {
    // a DNS server in the outside world: reg.example.test is the registry, every other name does not exist
    const dnsjs = `const d=require('dgram').createSocket('udp4'),p=require(${JSON.stringify(path.join(ROOT, 'node_modules/dns-packet'))});
d.on('message',(m,r)=>{const q=p.decode(m);const n=q.questions[0];const hit=n.name==='reg.example.test';
d.send(p.encode({type:'response',id:q.id,flags:p.RECURSION_DESIRED|p.RECURSION_AVAILABLE|(hit?0:3),questions:q.questions,answers:hit&&n.type==='A'?[{type:'A',name:n.name,ttl:60,data:'198.51.100.2'}]:[]}),r.port,r.address);});
d.bind(53,'198.51.100.2');`;
    sb.spawnExt([NODE, '-e', dnsjs]);
    const env = { REG_INSECURE: 'reg:5000,198.51.100.2:5000' };
    let out = '';
    for (let i = 0; i < 50; i++) {
      const r = await tool(env, 'pull', 'reg:5000/skopeo/img:1', path.join(sb.dir, `pulled-dns-${i}`));
      out = r.stdout.trim() + r.stderr;
      if (r.code === 0) break;
      await new Promise((res) => setTimeout(res, 100)); // until the DNS server listens
    }
    assert.equal(out, img.manifestDigest, 'reg → reg.example.test (search domain) → the registry');
    await fails(tool(env, 'pull', 'nope:5000/a/b:1', path.join(sb.dir, 'x7')), /^Get "https:\/\/nope:5000\/v2\/": dial tcp: lookup nope on 198\.51\.100\.2:53: no such host$/m);
  });
});
