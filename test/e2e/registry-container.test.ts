// README's private registry recipe, exactly: a `registry` image made from Debian's docker-registry package
// (scripts/registry-rootfs: the binary, its libc, a config.yml), imported with CMD and EXPOSE, run with
// `-p 5000:5000`; then an image is pushed to and pulled from localhost:5000, which goes through loom's own
// port publishing (localhost is a plain-HTTP registry for loom as for dockerd). Also through the docker CLI.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createSandbox, requireRoot, ROOT, runCmd, type Sandbox } from '../helpers/sandbox.ts';
import { fails, ok } from '../helpers/assert.ts';

const skip = requireRoot() || (!fs.existsSync('/usr/bin/docker-registry') ? 'docker-registry is not installed' : false);

describe('a private registry run as a loom container', { skip }, () => {
  let sb: Sandbox;

  before(async () => {
    sb = await createSandbox({ tag: 'regctr' });
    await sb.startDaemon();
  });
  after(async () => { await sb?.cleanup(); });

  test('registry image from the Debian package, run with -p 5000:5000, push and pull through localhost:5000', async () => {
    const tar = path.join(sb.dir, 'registry-rootfs.tar');
    await ok(runCmd([path.join(ROOT, 'scripts/registry-rootfs'), tar]), 'registry-rootfs');
    await ok(sb.loom('import', '-c', 'CMD ["/bin/registry","serve","/etc/docker/registry/config.yml"]', '-c', 'EXPOSE 5000', tar, 'registry:2'), 'import');
    assert.equal(await ok(sb.loom('image', 'inspect', '-f', '{{json .Config.ExposedPorts}}', 'registry:2')), '{"5000/tcp":{}}');
    await ok(sb.loom('run', '-d', '--name', 'registry', '-p', '5000:5000', 'registry:2'), 'run registry');
    // the registry answers once it listens
    let up = false;
    for (let i = 0; i < 100 && !up; i++) {
      const r = await sb.hostExec(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', 'http://127.0.0.1:5000/v2/']);
      up = r.stdout === '200';
      if (!up) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(up, `registry did not answer: ${(await sb.loom('logs', 'registry')).stdout}`);

    await sb.image('box');
    await ok(sb.loom('tag', 'box', 'localhost:5000/box:1'));
    const pushed = await ok(sb.loom('push', 'localhost:5000/box:1'), 'push');
    assert.match(pushed, /^The push refers to repository \[localhost:5000\/box\]$/m);
    const digest = /^1: digest: (sha256:[0-9a-f]{64}) size: \d+$/m.exec(pushed)?.[1];
    assert.ok(digest, pushed);
    await ok(sb.loom('rmi', 'box', 'localhost:5000/box:1'));
    await fails(sb.loom('image', 'inspect', 'localhost:5000/box:1'), /No such image/);
    assert.match(await ok(sb.loom('pull', 'localhost:5000/box:1')), /Status: Downloaded newer image for localhost:5000\/box:1/);
    assert.equal(await ok(sb.loom('run', '--rm', 'localhost:5000/box:1', 'cat', '/www/index.html')), 'hello from loom');
    assert.match(await ok(sb.loom('pull', `localhost:5000/box@${digest}`)), new RegExp(`Digest: ${digest}`));
    // and with the docker CLI
    await ok(sb.docker('tag', 'localhost:5000/box:1', 'localhost:5000/box:docker'));
    assert.match(await ok(sb.docker('push', 'localhost:5000/box:docker')), /^docker: digest: sha256:[0-9a-f]{64} size: \d+$/m);
    await ok(sb.docker('rmi', 'localhost:5000/box:docker'));
    assert.match(await ok(sb.docker('pull', 'localhost:5000/box:docker')), /Status: (Downloaded newer image|Image is up to date) for localhost:5000\/box:docker/);
  });
});
