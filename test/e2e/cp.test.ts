// A container's files end to end: cp both ways (the archive API, its stat header, Docker's landing rules,
// symlinks resolved inside the container and never on the host), export, diff and commit, through
// bin/loom and the docker CLI against a loom daemon in a sandbox.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createSandbox, runCmd, LOOM, type Sandbox, type Result, mountsUnder } from '../helpers/sandbox.ts';
import { ok } from '../helpers/assert.ts';
import tarStream from 'tar-stream';

let sb: Sandbox;
let work: string;
const skip = process.getuid?.() !== 0 ? 'needs root (network namespaces, runc)' : false;

async function failed(p: Promise<Result>): Promise<Result> {
  const r = await p;
  assert.notEqual(r.code, 0, `should have failed: ${r.stdout}`);
  return r;
}

function raw(method: string, p: string, body?: Buffer): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: sb.socket, method, path: p, headers: body ? { 'Content-Type': 'application/x-tar', 'Content-Length': body.length } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

before(async () => {
  if (skip) return;
  sb = await createSandbox();
  await sb.startDaemon();
  await sb.image('box');
  work = path.join(sb.dir, 'work');
  fs.mkdirSync(path.join(work, 'site/sub'), { recursive: true });
  fs.writeFileSync(path.join(work, 'site/index.html'), 'site\n');
  fs.writeFileSync(path.join(work, 'site/sub/a.txt'), 'a\n');
  fs.writeFileSync(path.join(work, 'note.txt'), 'note\n');
  fs.chownSync(path.join(work, 'note.txt'), 1234, 1234);
  await ok(sb.loom('run', '-d', '--name', 'c1', 'box', 'sleep', '600'));
  await ok(sb.loom('exec', 'c1', 'sh', '-c', 'ln -s /etc /tmp/etclink && ln -s / /tmp/rootlink && ln -s ../../../.. /tmp/up && echo x > /tmp/x'));
}, { timeout: 120_000 });

after(async () => {
  if (sb) await sb.cleanup();
});

test('cp into a container: a directory under its own name, contents with /., a new name, ownership', { skip }, async () => {
  await ok(sb.loom('cp', path.join(work, 'site'), 'c1:/www'));
  assert.equal(await ok(sb.loom('exec', 'c1', 'cat', '/www/site/sub/a.txt')), 'a');
  await ok(sb.loom('cp', `${path.join(work, 'site')}/.`, 'c1:/srv'));
  assert.equal(await ok(sb.loom('exec', 'c1', 'cat', '/srv/index.html')), 'site');
  await ok(sb.loom('cp', path.join(work, 'note.txt'), 'c1:/tmp/renamed.txt'));
  assert.equal(await ok(sb.loom('exec', 'c1', 'stat', '-c', '%u:%g %s', '/tmp/renamed.txt')), '0:0 5');
  await ok(sb.loom('cp', '-a', path.join(work, 'note.txt'), 'c1:/tmp/'));
  assert.equal(await ok(sb.loom('exec', 'c1', 'stat', '-c', '%u:%g', '/tmp/note.txt')), '1234:1234');
  // a tar on stdin goes into a directory as it is
  const piped = await runCmd(['sh', '-c', `tar -C ${work} -cf - note.txt | ${LOOM} cp - c1:/root`], { env: sb.env });
  assert.equal(piped.code, 0, piped.stderr);
  assert.equal(await ok(sb.loom('exec', 'c1', 'cat', '/root/note.txt')), 'note');
  const dpiped = await runCmd(['sh', '-c', `tar -C ${work} -cf - site | docker cp - c1:/root`], { env: sb.env });
  assert.equal(dpiped.code, 0, dpiped.stderr);
  assert.equal(await ok(sb.loom('exec', 'c1', 'cat', '/root/site/index.html')), 'site');
  const r = await failed(sb.loom('cp', path.join(work, 'note.txt'), 'c1:/nope/dir/'));
  assert.match(r.stderr, /nope/);
});

test('cp out of a container: files, directories, a link copied as a link, a trailing / follows it inside the container', { skip }, async () => {
  const out = path.join(work, 'out');
  fs.mkdirSync(out);
  await ok(sb.loom('cp', 'c1:/etc/passwd', out));
  assert.match(fs.readFileSync(path.join(out, 'passwd'), 'utf8'), /^root:x:0:0:root:\/root:\/bin\/sh\nnobody/);
  await ok(sb.loom('cp', 'c1:/www', path.join(out, 'web')));
  assert.equal(fs.readFileSync(path.join(out, 'web/site/index.html'), 'utf8'), 'site\n');
  await ok(sb.loom('cp', 'c1:/tmp/etclink', path.join(out, 'link')));
  assert.equal(fs.readlinkSync(path.join(out, 'link')), '/etc');
  await ok(sb.loom('cp', 'c1:/tmp/etclink/', path.join(out, 'followed')));
  assert.match(fs.readFileSync(path.join(out, 'followed/passwd'), 'utf8'), /nobody:x:65534/, 'the container\'s /etc, not the host\'s');
  // the etc files loom bind-mounts read as the container sees them
  assert.equal(execFileSync(LOOM, ['cp', 'c1:/etc/hostname', '-'], { env: sb.env }).length > 512, true);
  const tar = await runCmd(['sh', '-c', `${LOOM} cp c1:/tmp/x - | tar -tvf -`], { env: sb.env });
  assert.match(tar.stdout, / x\n$/);
  const missing = await failed(sb.loom('cp', 'c1:/no/such', out));
  assert.match(missing.stderr, /Could not find the file \/no\/such in container c1/);
});

test('the archive API: stat header, HEAD, 404s', { skip }, async () => {
  const h = await raw('HEAD', '/containers/c1/archive?path=/tmp/etclink');
  assert.equal(h.status, 200);
  const stat = JSON.parse(Buffer.from(String(h.headers['x-docker-container-path-stat']), 'base64').toString());
  assert.equal(stat.name, 'etclink');
  assert.equal(stat.linkTarget, '/etc');
  assert.equal(stat.mode, (2 ** 27 + 0o777));
  const d = await raw('HEAD', '/containers/c1/archive?path=/www');
  const ds = JSON.parse(Buffer.from(String(d.headers['x-docker-container-path-stat']), 'base64').toString());
  assert.equal(ds.mode, 2 ** 31 + 0o755);
  assert.match(ds.mtime, /^\d{4}-\d\d-\d\dT/);
  assert.equal((await raw('GET', '/containers/c1/archive?path=/nope')).status, 404);
  assert.equal((await raw('GET', '/containers/nosuch/archive?path=/')).status, 404);
  assert.equal((await raw('GET', '/containers/c1/archive')).status, 400);
});

test('nothing a container controls makes loom write or read outside it', { skip }, async () => {
  const evil = path.join(work, 'evil.txt');
  fs.writeFileSync(evil, 'evil\n');
  const hostMarker = `/etc/loomt-evil-${process.pid}.txt`;
  // a destination through a link to / lands in the container's /etc
  await ok(sb.loom('cp', evil, `c1:/tmp/rootlink/etc/loomt-evil-${process.pid}.txt`));
  assert.equal(fs.existsSync(hostMarker), false);
  assert.equal(await ok(sb.loom('exec', 'c1', 'cat', `/etc/loomt-evil-${process.pid}.txt`)), 'evil');
  // .. and relative links stop at the container's root
  await ok(sb.loom('cp', evil, 'c1:/tmp/up/../../tmp/'));
  assert.equal(await ok(sb.loom('exec', 'c1', 'cat', '/tmp/evil.txt')), 'evil');
  const shadow = await failed(sb.loom('cp', 'c1:/tmp/up/etc/shadow', work));
  assert.match(shadow.stderr, /Could not find the file/);
  // an archive that plants a link and writes through it is refused, and nothing lands on the host
  const planted = path.join(work, 'planted');
  fs.mkdirSync(planted);
  fs.symlinkSync('/', path.join(planted, 'l'));
  const tarFile = path.join(work, 'planted.tar');
  execFileSync('tar', ['-C', planted, '-cf', tarFile, 'l']);
  fs.rmSync(path.join(planted, 'l'));
  fs.mkdirSync(path.join(planted, 'l'));
  fs.writeFileSync(path.join(planted, 'l', `loomt-pwned-${process.pid}`), 'x');
  execFileSync('tar', ['-C', planted, '-rf', tarFile, `l/loomt-pwned-${process.pid}`]);
  const put = await raw('PUT', '/containers/c1/archive?path=/tmp', fs.readFileSync(tarFile));
  assert.equal(put.status, 400);
  assert.equal(fs.existsSync(`/loomt-pwned-${process.pid}`), false);
  // a hard link whose target goes through a container link stays inside the container
  const pack = tarStream.pack();
  pack.entry({ name: 'hl-l', type: 'symlink', linkname: '/etc' });
  pack.entry({ name: 'hl-h', type: 'link', linkname: 'hl-l/passwd' });
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack as unknown as AsyncIterable<Buffer>) chunks.push(c);
  const links = fs.statSync('/etc/passwd').nlink;
  const hl = await raw('PUT', '/containers/c1/archive?path=/tmp', Buffer.concat(chunks));
  assert.equal(hl.status, 200);
  assert.equal(fs.statSync('/etc/passwd').nlink, links, 'the host\'s /etc/passwd got no new link');
  assert.match(await ok(sb.loom('exec', 'c1', 'cat', '/tmp/hl-h')), /nobody:x:65534/);
});

test('a stopped container: cp, export and diff work and leave no mount', { skip }, async () => {
  await ok(sb.loom('run', '--name', 'c2', 'box', 'sh', '-c', 'mkdir /data && echo kept > /data/k && rm /bin/vi && touch /www/index.html'));
  const out = path.join(work, 'c2out');
  await ok(sb.loom('cp', 'c2:/data/k', out));
  assert.equal(fs.readFileSync(out, 'utf8'), 'kept\n');
  await ok(sb.loom('cp', path.join(work, 'note.txt'), 'c2:/data/'));
  const diff = await ok(sb.loom('diff', 'c2'));
  assert.deepEqual(diff.split('\n'), ['C /bin', 'D /bin/vi', 'A /data', 'A /data/k', 'A /data/note.txt', 'C /www', 'C /www/index.html']);
  const tarPath = path.join(work, 'c2.tar');
  await ok(sb.loom('export', '-o', tarPath, 'c2'));
  const list = execFileSync('tar', ['-tf', tarPath], { encoding: 'utf8' }).split('\n');
  assert.ok(list.includes('data/k'));
  assert.ok(list.includes('bin/busybox'));
  assert.ok(!list.includes('bin/vi'));
  assert.deepEqual(mountsUnder(path.join(sb.dir, 'data', 'containers', (await ok(sb.loom('inspect', '-f', '{{.Id}}', 'c2'))))), []);
});

test('commit: the changes as a new image, -c changes, -m, -a; docker commit/diff/cp/export', { skip }, async () => {
  const id = await ok(sb.loom('commit', '-a', 'me <me@example.org>', '-m', 'snapshot', '-c', 'CMD ["cat", "/data/k"]', '-c', 'ENV SNAP=1', 'c2', 'snap:1'));
  assert.match(id, /^sha256:[0-9a-f]{64}$/);
  assert.equal(await ok(sb.loom('run', '--rm', 'snap:1')), 'kept');
  assert.equal(await ok(sb.loom('run', '--rm', 'snap:1', 'sh', '-c', 'echo $SNAP; ls /bin/vi 2>&1 || true')), '1\nls: /bin/vi: No such file or directory');
  const ins = JSON.parse(await ok(sb.loom('image', 'inspect', 'snap:1')))[0];
  assert.equal(ins.Comment, 'snapshot');
  assert.equal(ins.Author, 'me <me@example.org>');
  // a running container is paused for the commit and runs on
  const r = await ok(sb.docker('commit', 'c1', 'snap:2'));
  assert.match(r, /^sha256:/);
  assert.equal(await ok(sb.loom('inspect', '-f', '{{.State.Status}}', 'c1')), 'running');
  assert.equal(await ok(sb.docker('run', '--rm', 'snap:2', 'cat', '/srv/index.html')), 'site');
  // the docker CLI's cp, diff, export
  const dout = path.join(work, 'dk');
  await ok(sb.docker('cp', 'c1:/www/site', dout));
  assert.equal(fs.readFileSync(path.join(dout, 'sub/a.txt'), 'utf8'), 'a\n');
  await ok(sb.docker('cp', path.join(work, 'note.txt'), 'c1:/tmp/docker-note'));
  assert.equal(await ok(sb.loom('exec', 'c1', 'cat', '/tmp/docker-note')), 'note');
  const dd = await ok(sb.docker('diff', 'c1'));
  assert.match(dd, /^A \/srv$/m);
  assert.match(dd, /^A \/tmp\/docker-note$/m);
  const ex = await runCmd(['sh', '-c', `docker export c1 | tar -tf - | grep -c '^www/site/index.html$'`], { env: sb.env });
  assert.equal(ex.stdout.trim(), '1');
  const bad = await failed(sb.loom('commit', '-c', 'FROM box', 'c1'));
  assert.match(bad.stderr, /from is not a valid change command/i);
});
