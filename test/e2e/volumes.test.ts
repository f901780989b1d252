// Volumes and mounts end to end: a loom daemon in a sandbox "host" namespace, driven by bin/loom, the
// docker CLI, the raw API and docker-compose 1.29; mounts checked from inside the containers and from the
// host, and no mount or volume left behind by any test.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createSandbox, runCmd, type Sandbox, mountsUnder } from '../helpers/sandbox.ts';
import { fails, ok } from '../helpers/assert.ts';

let sb: Sandbox;
const skip = process.getuid?.() !== 0 ? 'needs root (namespaces, mounts, runc)' : false;

before(async () => {
  if (skip) return;
  sb = await createSandbox();
  await sb.startDaemon();
  await sb.image('box');
}, { timeout: 120_000 });

afterEach(async () => {
  if (skip || !sb) return;
  // every test leaves nothing: no container, no volume, no mount below the sandbox
  const ids = (await sb.loom('ps', '-aq')).stdout.split('\n').filter(Boolean);
  if (ids.length) await sb.loom('rm', '-f', '-v', ...ids);
  const vols = (await sb.loom('volume', 'ls', '-q')).stdout.split('\n').filter(Boolean);
  if (vols.length) await sb.loom('volume', 'rm', ...vols);
  assert.deepEqual(mountsUnder(sb.dir), [], 'mounts left below the sandbox');
});

after(async () => {
  if (sb) await sb.cleanup();
});

test('-v bind mounts: written inside, read on the host; ro refused; a missing host directory is created', { skip }, async () => {
  const host = path.join(sb.dir, 'share');
  fs.mkdirSync(host);
  fs.writeFileSync(path.join(host, 'in.txt'), 'from host\n');
  assert.equal(await ok(sb.loom('run', '--rm', '-v', `${host}:/share`, 'box', 'sh', '-c', 'cat /share/in.txt; echo from ctr > /share/out.txt')), 'from host');
  assert.equal(fs.readFileSync(path.join(host, 'out.txt'), 'utf8'), 'from ctr\n');
  await fails(sb.loom('run', '--rm', '-v', `${host}:/share:ro`, 'box', 'touch', '/share/x'), /Read-only file system/);
  const missing = path.join(sb.dir, 'made', 'by', 'v');
  await ok(sb.loom('run', '--rm', '-v', `${missing}:/m`, 'box', 'true'));
  assert.ok(fs.statSync(missing).isDirectory());
  // --mount type=bind refuses a missing source, with Docker's words; relative paths are volume names, refused
  await fails(sb.loom('run', '--rm', '--mount', `type=bind,src=${sb.dir}/nope,dst=/x`, 'box', 'true'), new RegExp(`invalid mount config for type "bind": bind source path does not exist: ${sb.dir}/nope`));
  await fails(sb.loom('run', '--rm', '-v', 'rel/dir:/x', 'box', 'true'), /"rel\/dir" includes invalid characters for a local volume name, only "\[a-zA-Z0-9\]\[a-zA-Z0-9_.-\]" are allowed. If you intended to pass a host directory, use absolute path/);
  // propagation: shared or slave needs a host mount that can propagate, as Docker checks
  const shared = mountOf(host);
  if (!/ shared:/.test(shared.line)) {
    await fails(sb.loom('run', '--rm', '--mount', `type=bind,src=${host},dst=/p,bind-propagation=rslave`, 'box', 'true'), new RegExp(`path ${host} is mounted on ${shared.point} but it is not a shared or slave mount`));
  }
  // inspect shows the bind as Docker does
  await ok(sb.loom('create', '--name', 'b1', '-v', `${host}:/share:ro`, 'box', 'true'));
  const m = JSON.parse(await ok(sb.loom('inspect', '-f', '{{json .Mounts}}', 'b1')));
  assert.deepEqual(m, [{ Type: 'bind', Source: host, Destination: '/share', Mode: 'ro', RW: false, Propagation: 'rprivate' }]);
  assert.equal(await ok(sb.loom('inspect', '-f', '{{json .HostConfig.Binds}}', 'b1')), JSON.stringify([`${host}:/share:ro`]));
});

test('named volumes: copy-up from the image, data outlives the container, in-use removal refused', { skip }, async () => {
  // created on the fly, filled from the image's /www on first use
  assert.equal(await ok(sb.loom('run', '--name', 'w1', '-v', 'site:/www', 'box', 'sh', '-c', 'cat /www/index.html; echo kept > /www/new.txt')), 'hello from loom');
  const mp = await ok(sb.loom('volume', 'inspect', '-f', '{{.Mountpoint}}', 'site'));
  assert.equal(mp, path.join(sb.dir, 'data', 'volumes', 'site', '_data'));
  assert.equal(fs.readFileSync(path.join(mp, 'new.txt'), 'utf8'), 'kept\n');
  const r = await sb.api('DELETE', '/volumes/site');
  assert.equal(r.status, 409);
  const id = await ok(sb.loom('inspect', '-f', '{{.Id}}', 'w1'));
  assert.equal(r.body.message, `remove site: volume is in use - [${id}]`);
  const mounts = JSON.parse(await ok(sb.loom('inspect', '-f', '{{json .Mounts}}', 'w1')));
  assert.deepEqual(mounts, [{ Type: 'volume', Name: 'site', Source: mp, Destination: '/www', Driver: 'local', Mode: 'z', RW: true, Propagation: '' }]);
  assert.equal(await ok(sb.loom('ps', '-aq', '--no-trunc', '--filter', 'volume=site')), id);
  assert.equal(await ok(sb.loom('ps', '-aq', '--no-trunc', '--filter', 'volume=/www')), id);
  assert.equal(await ok(sb.loom('inspect', '-f', '{{.Driver}}', 'site')), 'local'); // generic inspect finds volumes
  await ok(sb.loom('rm', '-v', 'w1')); // -v leaves named volumes alone
  // a second container sees the data (and no second copy-up)
  assert.equal(await ok(sb.loom('run', '--rm', '-v', 'site:/data:ro', 'box', 'cat', '/data/new.txt')), 'kept');
  // nocopy: an empty volume stays empty
  assert.equal(await ok(sb.loom('run', '--rm', '--mount', 'src=empty,dst=/www,volume-nocopy', 'box', 'ls', '-A', '/www')), '');
  await ok(sb.loom('volume', 'rm', 'site', 'empty'));
  assert.equal(fs.existsSync(mp), false);
});

test('anonymous volumes: -v /path gets a 64-hex volume, --volumes-from shares it, rm -v removes it', { skip }, async () => {
  await ok(sb.loom('run', '-d', '--name', 'a1', '-v', '/anon', 'box', 'sh', '-c', 'echo shared > /anon/f; sleep 600'));
  const name = await ok(sb.loom('inspect', '-f', '{{range .Mounts}}{{.Name}}{{end}}', 'a1'));
  assert.match(name, /^[0-9a-f]{64}$/);
  assert.equal(await ok(sb.loom('inspect', '-f', '{{json .Config.Volumes}}', 'a1')), '{"/anon":{}}');
  const labels = JSON.parse(await ok(sb.loom('volume', 'inspect', '-f', '{{json .Labels}}', name)));
  assert.deepEqual(labels, { 'com.docker.volume.anonymous': '' });
  await eventuallyOk(() => sb.loom('exec', 'a1', 'cat', '/anon/f'));
  assert.equal(await ok(sb.loom('run', '--rm', '--volumes-from', 'a1:ro', 'box', 'sh', '-c', 'cat /anon/f; touch /anon/g 2>&1 || true')), 'shared\ntouch: /anon/g: Read-only file system');
  // dangling filter: in use now
  assert.equal(await ok(sb.loom('volume', 'ls', '-q', '--filter', 'dangling=true')), '');
  await ok(sb.loom('rm', '-f', '-v', 'a1'));
  assert.equal(await ok(sb.loom('volume', 'ls', '-q')), '');
  // --rm takes anonymous volumes along too; an anonymous volume is filled from the image as well
  assert.equal(await ok(sb.loom('run', '--rm', '-v', '/www', 'box', 'cat', '/www/index.html')), 'hello from loom');
  assert.equal(await ok(sb.loom('volume', 'ls', '-q')), '');
});

/** The mount (its mountinfo line and mount point) a host path lives on. */
function mountOf(p: string): { point: string; line: string } {
  let best = { point: '', line: '' };
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const point = line.split(' ')[4] ?? '';
    if ((p === point || p.startsWith(point === '/' ? '/' : `${point}/`)) && point.length >= best.point.length) best = { point, line };
  }
  return best;
}

async function eventuallyOk(fn: () => Promise<{ code: number }>): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await fn()).code === 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('tmpfs: --tmpfs and --mount type=tmpfs are tmpfs inside the container', { skip }, async () => {
  const out = await ok(sb.loom('run', '--rm', '--tmpfs', '/run:size=1m', '--mount', 'type=tmpfs,dst=/scratch,tmpfs-size=2m,tmpfs-mode=1770', 'box', 'grep', 'tmpfs', '/proc/mounts'));
  assert.match(out, /^tmpfs \/run tmpfs rw,nosuid,nodev,noexec,relatime,size=1024k/m);
  assert.match(out, /^tmpfs \/scratch tmpfs rw,nosuid,nodev,noexec,relatime,size=2048k,mode=1770/m);
  // a tmpfs volume of the local driver (-o type=tmpfs) is mounted while used
  await ok(sb.loom('volume', 'create', '-o', 'type=tmpfs', '-o', 'device=tmpfs', '-o', 'o=size=1m', 'tv'));
  assert.match(await ok(sb.loom('run', '--rm', '-v', 'tv:/t', 'box', 'df', '/t')), /1024/);
  await fails(sb.loom('volume', 'create', '-o', 'type=nfs', '-o', 'device=:/x', 'nv'), /local volume type "nfs" is not supported by loom/);
  // a bind-like local volume: its data is the device directory
  const dev = path.join(sb.dir, 'bindvol');
  fs.mkdirSync(dev);
  await ok(sb.loom('volume', 'create', '-o', 'type=none', '-o', `device=${dev}`, '-o', 'o=bind', 'bvol'));
  await ok(sb.loom('run', '--rm', '-v', 'bvol:/b', 'box', 'sh', '-c', 'echo via-volume > /b/f'));
  assert.equal(fs.readFileSync(path.join(dev, 'f'), 'utf8'), 'via-volume\n');
  await ok(sb.loom('volume', 'rm', 'bvol'));
  assert.equal(fs.existsSync(path.join(dev, 'f')), true, 'removing the volume leaves the bound directory\'s data');
  // a running user keeps it mounted across a daemon restart; its exit unmounts it
  await ok(sb.loom('run', '-d', '--name', 't1', '-v', 'tv:/t', 'box', 'sh', '-c', 'echo in-tmpfs > /t/f; sleep 600'));
  await eventuallyOk(() => sb.loom('exec', 't1', 'cat', '/t/f'));
  await sb.stopDaemon();
  await sb.startDaemon();
  assert.equal(await ok(sb.loom('exec', 't1', 'cat', '/t/f')), 'in-tmpfs');
  assert.equal(mountsUnder(path.join(sb.dir, 'data', 'volumes')).length, 1);
  await ok(sb.loom('rm', '-f', 't1'));
  assert.deepEqual(mountsUnder(path.join(sb.dir, 'data', 'volumes')), []);
});

test('volume API and CLI: create, ls with filters, inspect, rm, prune, as Docker', { skip }, async () => {
  const c = await sb.api('POST', '/volumes/create', { Name: 'v1', Labels: { tier: 'db' } });
  assert.equal(c.status, 201);
  assert.deepEqual(Object.keys(c.body).sort(), ['CreatedAt', 'Driver', 'Labels', 'Mountpoint', 'Name', 'Options', 'Scope']);
  assert.equal(c.body.Scope, 'local');
  assert.match(c.body.CreatedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  // the same name again gives the existing volume
  const again = await sb.api('POST', '/volumes/create', { Name: 'v1' });
  assert.equal(again.status, 201);
  assert.deepEqual(again.body.Labels, { tier: 'db' });
  assert.equal((await sb.api('POST', '/volumes/create', { Name: 'bad/name' })).status, 400);
  assert.equal((await sb.api('POST', '/volumes/create', { Name: 'v2', DriverOpts: { foo: 'x' } })).body.message, 'create v2: invalid option: "foo"');
  assert.equal((await sb.api('POST', '/volumes/create', { Name: 'v3', DriverOpts: { type: 'tmpfs' } })).body.message, 'create v3: missing required option: "device"');
  assert.deepEqual(await sb.api('GET', '/volumes/nope'), { status: 404, body: { message: 'get nope: no such volume' } });
  assert.equal((await sb.api('DELETE', '/volumes/nope')).status, 404);
  assert.equal((await sb.api('DELETE', '/volumes/nope?force=1')).status, 204);
  await ok(sb.loom('volume', 'create', 'v2'));
  const list = await sb.api('GET', '/volumes');
  assert.equal(list.body.Warnings, null);
  assert.deepEqual(list.body.Volumes.map((v: { Name: string }) => v.Name).sort(), ['v1', 'v2']);
  assert.equal(await ok(sb.loom('volume', 'ls', '-q', '--filter', 'label=tier=db')), 'v1');
  assert.equal(await ok(sb.loom('volume', 'ls', '--format', '{{.Name}} {{.Driver}}', '--filter', 'name=2')), 'v2 local');
  assert.equal(await ok(sb.loom('volume', 'ls')), 'DRIVER    VOLUME NAME\nlocal     v1\nlocal     v2');
  // prune: anonymous only by default; all=true for named ones
  await ok(sb.loom('create', '-v', '/anon', 'box', 'true'));
  const ids = (await sb.loom('ps', '-aq')).stdout.trim();
  await ok(sb.loom('rm', ids));
  const p1 = await sb.api('POST', '/volumes/prune');
  assert.equal(p1.body.VolumesDeleted.length, 1);
  assert.match(p1.body.VolumesDeleted[0], /^[0-9a-f]{64}$/);
  assert.equal(await ok(sb.loom('volume', 'prune', '-f', '--filter', 'label=tier=db', '-a')), 'Deleted Volumes:\nv1\n\nTotal reclaimed space: 0B');
  assert.equal(await ok(sb.loom('volume', 'ls', '-q')), 'v2');
  // a volume created without a name is anonymous (moby's label), and `system prune --volumes` takes it
  const anon = await sb.api('POST', '/volumes/create', {});
  assert.deepEqual(anon.body.Labels, { 'com.docker.volume.anonymous': '' });
  assert.match(await ok(sb.loom('system', 'prune', '-f', '--volumes')), new RegExp(`Deleted Volumes:\n${anon.body.Name}\n`));
  assert.equal(await ok(sb.loom('volume', 'ls', '-q')), 'v2');
});

test('the docker CLI: -v, --mount, --tmpfs, volume commands, rm -v, unsupported flags refused', { skip }, async () => {
  const host = path.join(sb.dir, 'dshare');
  fs.mkdirSync(host, { recursive: true });
  await ok(sb.docker('run', '--rm', '-v', `${host}:/h`, '--mount', 'type=volume,src=dv,dst=/www', '--tmpfs', '/run', 'box', 'sh', '-c', 'cp /www/index.html /h/; grep -c " /run tmpfs" /proc/mounts'), 'docker run with mounts');
  assert.equal(fs.readFileSync(path.join(host, 'index.html'), 'utf8'), 'hello from loom\n');
  assert.equal(await ok(sb.docker('volume', 'ls', '-q')), 'dv');
  assert.equal(await ok(sb.docker('volume', 'inspect', '-f', '{{.Driver}} {{.Scope}}', 'dv')), 'local local');
  await ok(sb.docker('volume', 'create', '--label', 'a=b', 'dv2'));
  assert.equal(await ok(sb.docker('volume', 'ls', '-q', '-f', 'label=a')), 'dv2');
  await ok(sb.docker('create', '--name', 'd1', '-v', '/anon', '-v', 'dv:/data', 'box', 'true'));
  await fails(sb.docker('volume', 'rm', 'dv'), /remove dv: volume is in use - \[[0-9a-f]{64}\]/);
  await ok(sb.docker('rm', '-v', 'd1'));
  assert.deepEqual((await ok(sb.docker('volume', 'ls', '-q'))).split('\n').sort(), ['dv', 'dv2']);
  await ok(sb.docker('volume', 'rm', 'dv', 'dv2'));
  // what loom does not implement is refused naming the field, never dropped
  await fails(sb.docker('run', '--rm', '--memory', '64m', 'box', 'true'), /HostConfig\.Memory is not supported by loom/);
  await fails(sb.docker('run', '--rm', '--cap-add', 'NET_ADMIN', 'box', 'true'), /HostConfig\.CapAdd is not supported by loom/);
  await fails(sb.docker('run', '--rm', '--read-only', 'box', 'true'), /HostConfig\.ReadonlyRootfs is not supported by loom/);
  assert.match(await ok(sb.docker('system', 'df', '-v')), /Local Volumes space usage:\n\nVOLUME NAME\s+LINKS\s+SIZE\n/);
  const ev = await ok(sb.docker('events', '--since', '0', '--until', String(Math.ceil(Date.now() / 1000) + 1), '--filter', 'type=volume', '--format', '{{.Action}} {{.Actor.ID}}'));
  assert.match(ev, /^create dv\nmount dv\nunmount dv\n/m);
  const df = await ok(sb.docker('system', 'df'));
  assert.match(df, /^TYPE\s+TOTAL\s+ACTIVE\s+SIZE\s+RECLAIMABLE\nImages\s+1\s+0\s+\S+/);
  assert.match(df, /Local Volumes\s+0\s+0\s+0B\s+0B/);
});

test('system df: bin/loom, with -v', { skip }, async () => {
  await ok(sb.loom('run', '-d', '--name', 's1', '-v', 'sv:/www', 'box', 'sleep', '600'));
  const df = await ok(sb.loom('system', 'df'));
  assert.match(df, /^TYPE\s+TOTAL\s+ACTIVE\s+SIZE\s+RECLAIMABLE$/m);
  assert.match(df, /^Images\s+1\s+1\s/m);
  assert.match(df, /^Containers\s+1\s+1\s/m);
  assert.match(df, /^Local Volumes\s+1\s+1\s+16B\s+0B \(0%\)$/m);
  assert.match(df, /^Build Cache\s+0\s+0\s+0B\s+0B$/m);
  const v = await ok(sb.loom('system', 'df', '-v'));
  assert.match(v, /Local Volumes space usage:\n\nVOLUME NAME\s+LINKS\s+SIZE\nsv\s+1\s+16B/);
  const api = await sb.api('GET', '/system/df');
  assert.deepEqual(Object.keys(api.body).sort(), ['BuildCache', 'Containers', 'Images', 'LayersSize', 'Volumes']);
  assert.deepEqual(api.body.Volumes[0].UsageData, { Size: 16, RefCount: 1 });
});

test('attach right after a short run delivers its output; unknown routes are logged', { skip }, async () => {
  const c = await sb.api('POST', '/containers/create', { Image: 'box', Cmd: ['echo', 'short'], AttachStdout: true });
  // start, then attach at once (docker-py's and compose's order): the output comes, then a clean end
  assert.equal((await sb.api('POST', `/containers/${c.body.Id}/start`)).status, 204);
  const r = await runCmd(['curl', '-s', '--max-time', '20', '--unix-socket', sb.socket, '-X', 'POST', `http://x/containers/${c.body.Id}/attach?stream=1&stdout=1`]);
  assert.equal(r.code, 0, 'the attach ends with the run');
  assert.match(r.stdout, /short/);
  // HostConfig.ConsoleSize is the terminal's first size, not dropped
  const t = await sb.api('POST', '/containers/create', { Image: 'box', Tty: true, Cmd: ['sh', '-c', 'sleep 1; stty size'], HostConfig: { ConsoleSize: [30, 100] } });
  await sb.api('POST', `/containers/${t.body.Id}/start`);
  await sb.api('POST', `/containers/${t.body.Id}/wait`);
  assert.equal(await ok(sb.loom('logs', t.body.Id)), '30 100');
  await sb.api('GET', '/no/such/route');
  assert.match(sb.daemonLog, /"method":"GET","path":"\/no\/such\/route".*no such route/);
});

test('docker-compose 1.29: up -d and down -v of a project with a named volume, a bind mount, two networks', { skip }, async () => {
  const proj = path.join(sb.dir, 'proj');
  fs.mkdirSync(path.join(proj, 'conf'), { recursive: true });
  fs.writeFileSync(path.join(proj, 'conf', 'app.conf'), 'setting=1\n');
  fs.writeFileSync(path.join(proj, 'docker-compose.yml'), [
    'version: "3.7"',
    'services:',
    '  db:',
    '    image: box',
    '    command: ["sh", "-c", "echo persisted > /var/lib/db/f; sleep 600"]',
    '    volumes: ["dbdata:/var/lib/db"]',
    '    networks: [back]',
    '  app:',
    '    image: box',
    '    command: ["sleep", "600"]',
    '    volumes: ["./conf:/etc/app:ro"]',
    '    networks: [front, back]',
    '    depends_on: [db]',
    'volumes:',
    '  dbdata: {}',
    'networks:',
    '  front: {}',
    '  back: {internal: true}',
    '',
  ].join('\n'));
  const compose = (...a: string[]) => runCmd(sb.inHost(['docker-compose', '-p', 'proj', '-f', path.join(proj, 'docker-compose.yml'), ...a]), { env: { ...sb.env, COMPOSE_INTERACTIVE_NO_CLI: '1' }, timeoutMs: 120_000 });
  const logFrom = sb.daemonLog.length;
  await ok(compose('up', '-d'), 'compose up');
  assert.equal(await ok(sb.loom('exec', 'proj_app_1', 'cat', '/etc/app/app.conf')), 'setting=1');
  await fails(sb.loom('exec', 'proj_app_1', 'touch', '/etc/app/x'), /Read-only file system/);
  await eventuallyOk(() => sb.loom('exec', 'proj_db_1', 'cat', '/var/lib/db/f'));
  assert.equal(await ok(sb.loom('volume', 'ls', '-q')), 'proj_dbdata');
  assert.match(await ok(sb.loom('exec', 'proj_app_1', 'ping', '-c1', '-W2', 'db')), /1 packets received/);
  // a one-off container attached through docker-py (dockerpty): its output arrives
  assert.equal(await ok(compose('run', '--rm', '-T', 'app', 'cat', '/etc/app/app.conf'), 'compose run'), 'setting=1');
  // and through the docker CLI (`docker start --attach`), compose's default
  const viaCli = await runCmd(sb.inHost(['docker-compose', '-p', 'proj', '-f', path.join(proj, 'docker-compose.yml'), 'run', '--rm', '-T', 'app', 'cat', '/etc/app/app.conf']), { env: sb.env, timeoutMs: 120_000 });
  assert.equal(viaCli.code, 0, viaCli.stderr);
  assert.equal(viaCli.stdout.trim(), 'setting=1');
  await ok(compose('down', '-v'), 'compose down');
  // everything compose called exists
  assert.deepEqual(sb.daemonLog.slice(logFrom).split('\n').filter((l) => l.includes('no such route')), []);
  assert.equal(await ok(sb.loom('volume', 'ls', '-q')), '');
  assert.equal(await ok(sb.loom('ps', '-aq')), '');
});

test('docker-py: containers.run with volumes, volumes.create/get/remove', { skip }, async () => {
  const host = path.join(sb.dir, 'pyshare');
  fs.mkdirSync(host, { recursive: true });
  fs.writeFileSync(path.join(host, 'h.txt'), 'py host\n');
  const script = [
    'import docker',
    'c = docker.from_env()',
    `out = c.containers.run('box', ['sh', '-c', 'cat /www/index.html /d/h.txt'], volumes={'pyv': {'bind': '/www', 'mode': 'rw'}, '${host}': {'bind': '/d', 'mode': 'ro'}}, remove=True)`,
    'print(out.decode(), end="")',
    "v = c.volumes.create('pyv2', labels={'a': 'b'})",
    "print(c.volumes.get('pyv2').attrs['Labels'])",
    'v.remove()',
    "c.volumes.get('pyv').remove()",
    'print(len(c.volumes.list()))',
  ].join('\n');
  const r = await runCmd(sb.inHost(['python3', '-c', script]), { env: sb.env, timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "hello from loom\npy host\n{'a': 'b'}\n0\n");
});
