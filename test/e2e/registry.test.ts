// Registries end to end: a loom daemon in a sandbox with --insecure-registry for the test's registries
// (Debian's docker-registry 2.8 in the sandbox's outside world, one plain, one with htpasswd basic auth),
// driven by bin/loom and by the unmodified docker CLI. login/logout (POST /auth, credentials shared through
// the docker CLI's config.json), pull and push (progress streams, X-Registry-Auth), errors in Docker's words.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createSandbox, requireRoot, type Sandbox } from '../helpers/sandbox.ts';
import { fails, ok } from '../helpers/assert.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';

const skip = requireRoot() || (!fs.existsSync('/usr/bin/docker-registry') ? 'docker-registry is not installed' : false);

describe('registries through bin/loom and the docker CLI', { skip }, () => {
  let sb: Sandbox;
  let plain: TestRegistry;
  let basic: TestRegistry;
  const config = () => JSON.parse(fs.readFileSync(path.join(sb.dir, 'docker-config', 'config.json'), 'utf8'));

  before(async () => {
    sb = await createSandbox({ tag: 'rege2e' });
    plain = await startRegistry(sb, 5000);
    basic = await startRegistry(sb, 5001, { user: 'alice', password: 's3cret' });
    await sb.startDaemon(['--insecure-registry', plain.addr, '--insecure-registry', '198.51.100.2:5001', '--insecure-registry', '203.0.113.0/24']);
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
});
