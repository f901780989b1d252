// Issue 12, access over TCP: `-H tcp://ADDR:PORT --tlsverify --tlscacert --tlscert --tlskey` as dockerd —
// mutual TLS that the unmodified docker CLI with --tlsverify uses; a client without a certificate the CA
// signed is refused; plain TCP is refused at start unless forced with --tls=false (then a loud warning).
// Certificates are made by the test with openssl; the TCP port is on the sandbox host's loopback.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createSandbox, runCmd, type Sandbox } from '../helpers/sandbox.ts';
import { ok } from '../helpers/assert.ts';

const skip = process.getuid?.() !== 0 ? 'needs root (network namespaces, nftables, runc)' : false;
let sb: Sandbox;
let pki: string;

/** A CA, a server certificate for 127.0.0.1, a client certificate, and a client certificate of another CA. */
function makePki(dir: string): void {
  const o = (...a: string[]) => execFileSync('openssl', a, { cwd: dir, stdio: 'pipe' });
  for (const ca of ['ca', 'evil-ca']) {
    o('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${ca}-key.pem`, '-out', `${ca}.pem`, '-days', '2', '-subj', `/CN=${ca}`);
  }
  fs.writeFileSync(path.join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  fs.writeFileSync(path.join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  const leaf = (name: string, ca: string, ext: string) => {
    o('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    o('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}-key.pem`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', ext);
  };
  leaf('server', 'ca', 'server.ext');
  leaf('client', 'ca', 'client.ext');
  leaf('intruder', 'evil-ca', 'client.ext');
}

/** The docker CLI inside the sandbox host namespace, over TCP. */
function dockerTcp(port: number, ...args: string[]) {
  return runCmd(sb.inHost(['docker', '-H', `tcp://127.0.0.1:${port}`, ...args]), { env: { ...process.env, DOCKER_CONFIG: path.join(sb.dir, 'docker-config') }, timeoutMs: 30_000 });
}

before(async () => {
  if (skip) return;
  sb = await createSandbox({ tag: 'tls' });
  pki = fs.mkdtempSync(path.join(sb.dir, 'pki-'));
  makePki(pki);
}, { timeout: 120_000 });

after(async () => {
  await sb?.cleanup();
});

describe('API over TCP', { skip }, () => {
  test('plain TCP is refused at start; --tls=false forces it with a loud warning', async () => {
    await assert.rejects(sb.startDaemon(['-H', 'tcp://127.0.0.1:2375']), /refusing to listen on TCP without TLS/);
    await sb.startDaemon(['-H', 'tcp://127.0.0.1:2375', '--tls=false']);
    try {
      assert.match(sb.daemonLog, /WITHOUT TLS/);
      assert.match(await ok(dockerTcp(2375, 'version', '--format', '{{.Server.Version}}')), /\d/);
    } finally {
      await sb.stopDaemon();
    }
  });

  test('--tlsverify: the docker CLI with the CA\'s client certificate gets through; without one, or with another CA\'s, it is refused', async () => {
    const p = (f: string) => path.join(pki, f);
    await sb.startDaemon(['-H', 'tcp://127.0.0.1:2376', '--tlsverify', '--tlscacert', p('ca.pem'), '--tlscert', p('server.pem'), '--tlskey', p('server-key.pem')]);
    try {
      const tls = ['--tlsverify', '--tlscacert', p('ca.pem')];
      assert.match(await ok(dockerTcp(2376, ...tls, '--tlscert', p('client.pem'), '--tlskey', p('client-key.pem'), 'version', '--format', '{{.Server.Version}}')), /\d/);
      await sb.image('box');
      assert.equal(await ok(dockerTcp(2376, ...tls, '--tlscert', p('client.pem'), '--tlskey', p('client-key.pem'), 'run', '--rm', 'box', 'echo', 'over tls')), 'over tls');
      const noCert = await dockerTcp(2376, ...tls, 'version');
      assert.notEqual(noCert.code, 0);
      const evil = await dockerTcp(2376, ...tls, '--tlscert', p('intruder.pem'), '--tlskey', p('intruder-key.pem'), 'version');
      assert.notEqual(evil.code, 0);
      // a plain HTTP request to the TLS port gets nothing useful
      const plain = await runCmd(sb.inHost(['curl', '-s', '-m', '5', 'http://127.0.0.1:2376/_ping']));
      assert.notEqual(plain.stdout, 'OK');
      // the unix socket still works
      assert.match(await ok(sb.loom('version', '--format', '{{.Server.Version}}')), /\d/);
    } finally {
      await sb.stopDaemon();
    }
  });

  test('bad -H values and missing certificates are clear errors', async () => {
    await assert.rejects(sb.startDaemon(['-H', 'ftp://x']), /invalid -H ftp:\/\/x/);
    await assert.rejects(sb.startDaemon(['-H', 'tcp://127.0.0.1:2376', '--tlsverify', '--tlscacert', path.join(pki, 'nope.pem'), '--tlscert', path.join(pki, 'server.pem'), '--tlskey', path.join(pki, 'server-key.pem')]), /could not read --tlscacert/);
  });
});
