// Issue 11's typical project through docker-compose 1.29 (Debian's, over docker-py 5) against loom: three
// services on two networks (one internal with its own subnet), a named volume whose data survives
// `up --force-recreate`, a read-only bind mount, a service built from a Dockerfile with a published port
// reached from the outside world, names resolving only where Docker resolves them, `down -v` leaving
// nothing. And a docker-py script: containers.run, exec_run, networks.create/connect, events.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createSandbox, eventually, runCmd, type Sandbox } from '../helpers/sandbox.ts';
import { ok } from '../helpers/assert.ts';

const skip = process.getuid?.() !== 0 ? 'needs root (namespaces, mounts, runc)' : false;
let sb: Sandbox;
let proj: string;

const compose = (...a: string[]) => runCmd(sb.inHost(['docker-compose', '-p', 'shop', '-f', path.join(proj, 'docker-compose.yml'), ...a]),
  { env: { ...sb.env, COMPOSE_INTERACTIVE_NO_CLI: '1', DOCKER_BUILDKIT: '0', COMPOSE_DOCKER_CLI_BUILD: '0' }, timeoutMs: 240_000 });

before(async () => {
  if (skip) return;
  sb = await createSandbox({ tag: 'compose' });
  await sb.startDaemon();
  await sb.image('box');
  proj = path.join(sb.dir, 'shop');
  fs.mkdirSync(path.join(proj, 'web'), { recursive: true });
  fs.mkdirSync(path.join(proj, 'conf'), { recursive: true });
  fs.writeFileSync(path.join(proj, 'conf', 'app.conf'), 'mode=prod\n');
  fs.writeFileSync(path.join(proj, 'web', 'index.html'), 'shop front\n');
  fs.writeFileSync(path.join(proj, 'web', 'Dockerfile'), [
    'FROM box', 'ARG GREETING=hi', 'ENV GREETING=$GREETING', 'WORKDIR /www', 'COPY index.html .', 'EXPOSE 80',
    'CMD ["httpd", "-f", "-p", "80", "-h", "/www"]', '',
  ].join('\n'));
  fs.writeFileSync(path.join(proj, 'docker-compose.yml'), [
    'version: "3.7"',
    'services:',
    '  web:',
    '    build: {context: ./web, args: {GREETING: hello}}',
    '    image: shop-web:1',
    '    ports: ["8080:80"]',
    '    networks: [front]',
    '    depends_on: [app]',
    '  app:',
    '    image: box',
    '    command: ["sleep", "600"]',
    '    volumes: ["./conf:/etc/app:ro"]',
    '    networks: {front: {}, back: {aliases: [api]}}',
    '    depends_on: [db]',
    '  db:',
    '    image: box',
    '    command: ["sh", "-c", "[ -f /var/lib/db/first ] || date > /var/lib/db/first; exec sleep 600"]',
    '    volumes: ["dbdata:/var/lib/db"]',
    '    networks: [back]',
    'volumes:',
    '  dbdata: {}',
    'networks:',
    '  front: {}',
    '  back: {internal: true, ipam: {config: [{subnet: 10.123.0.0/24}]}}',
    '',
  ].join('\n'));
}, { timeout: 120_000 });

after(async () => {
  await sb?.cleanup();
});

describe('docker-compose: a typical project', { skip }, () => {
  test('up -d: built service, published port from outside, names only where Docker resolves them, ro bind mount', { timeout: 300_000 }, async () => {
    await ok(compose('up', '-d'), 'compose up');
    assert.equal(await ok(sb.loom('exec', 'shop_web_1', 'sh', '-c', 'echo $GREETING')), 'hello');
    const got = await eventually(async () => (await sb.extExec(['busybox', 'timeout', '3', 'wget', '-qO-', 'http://198.51.100.1:8080/'])).stdout.trim(), 'shop front', 15_000);
    assert.equal(got, 'shop front');
    // app is on both networks: it reaches web and db (and db by its alias on back)
    await ok(sb.loom('exec', 'shop_app_1', 'ping', '-c1', '-W2', 'web'), 'app → web');
    await ok(sb.loom('exec', 'shop_app_1', 'ping', '-c1', '-W2', 'db'), 'app → db');
    await ok(sb.loom('exec', 'shop_db_1', 'ping', '-c1', '-W2', 'api'), 'db → app by its alias');
    // web is not on back: db's name does not resolve there; db (internal network) has no way out
    const fromWeb = await sb.loom('exec', 'shop_web_1', 'nslookup', 'db', '127.0.0.11');
    assert.doesNotMatch(fromWeb.stdout, /10\.123\.0\.\d+/);
    assert.match(await ok(sb.loom('inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', 'shop_db_1')), /^10\.123\.0\.\d+$/);
    assert.equal(await ok(sb.loom('exec', 'shop_app_1', 'cat', '/etc/app/app.conf')), 'mode=prod');
    assert.notEqual((await sb.loom('exec', 'shop_app_1', 'touch', '/etc/app/x')).code, 0, 'the bind mount is read-only');
    const ps = await ok(compose('ps'));
    for (const s of ['shop_web_1', 'shop_app_1', 'shop_db_1']) assert.match(ps, new RegExp(`${s}\\s.*Up`));
  });

  test('up -d --force-recreate keeps the named volume\'s data; down -v leaves nothing', { timeout: 300_000 }, async () => {
    const first = await ok(sb.loom('exec', 'shop_db_1', 'cat', '/var/lib/db/first'));
    const oldId = await ok(sb.loom('inspect', '-f', '{{.Id}}', 'shop_db_1'));
    await ok(compose('up', '-d', '--force-recreate'), 'compose up --force-recreate');
    assert.notEqual(await ok(sb.loom('inspect', '-f', '{{.Id}}', 'shop_db_1')), oldId, 'db was recreated');
    assert.equal(await ok(sb.loom('exec', 'shop_db_1', 'cat', '/var/lib/db/first')), first, 'the volume kept its data');
    const logs = await compose('logs', '--no-color', 'web');
    assert.equal(logs.code, 0, logs.stderr);
    await ok(compose('down', '-v'), 'compose down -v');
    assert.equal(await ok(sb.loom('ps', '-aq')), '');
    assert.equal(await ok(sb.loom('volume', 'ls', '-q')), '');
    assert.doesNotMatch(await ok(sb.loom('network', 'ls', '--format', '{{.Name}}')), /shop_/);
    assert.deepEqual(sb.daemonLog.split('\n').filter((l) => l.includes('no such route')), [], 'every endpoint compose called exists');
  });

  test('docker-py: containers.run, exec_run, networks.create/connect, events', { timeout: 120_000 }, async () => {
    const script = `
import docker, json, time
c = docker.from_env()
t0 = int(time.time())
net = c.networks.create('pynet', driver='bridge', labels={'by': 'py'})
ctr = c.containers.run('box', ['sleep', '600'], name='py1', detach=True, labels={'by': 'py'})
net.connect(ctr, aliases=['pyalias'])
ctr.reload()
assert 'pynet' in ctr.attrs['NetworkSettings']['Networks'], ctr.attrs['NetworkSettings']['Networks']
code, out = ctr.exec_run(['sh', '-c', 'echo $((6*7))'])
assert code == 0 and out.decode().strip() == '42', (code, out)
code, out = ctr.exec_run(['nslookup', 'pyalias', '127.0.0.11'])
assert code == 0, out
assert [x.name for x in c.containers.list(filters={'label': 'by=py'})] == ['py1']
ctr.remove(force=True)
net.remove()
acts = [(e['Type'], e['Action']) for e in c.events(since=t0, until=int(time.time()) + 1, decode=True)]
for want in [('network', 'create'), ('container', 'create'), ('container', 'start'), ('network', 'connect'), ('container', 'destroy'), ('network', 'destroy')]:
    assert want in acts, (want, acts)
print('ok')
`;
    const r = await runCmd(sb.inHost(['python3', '-c', script]), { env: sb.env, timeoutMs: 90_000 });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(r.stdout.trim(), 'ok');
  });
});
