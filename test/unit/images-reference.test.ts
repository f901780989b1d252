// Docker's reference grammar and normalization (distribution/reference), and the changes of `import -c`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { familiar, fromRepoTag, globToRegExp, matchReferenceFilter, normalize, parseNormalized } from '../../src/images/reference.ts';
import { applyChanges, splitWords } from '../../src/images/changes.ts';
import type { ImageRunConfig } from '../../src/core/types.ts';

const D = 'sha256:' + 'ab'.repeat(32);

test('normalize: Docker Hub names get docker.io/library and :latest; hosts with ports are domains', () => {
  assert.equal(normalize('busybox'), 'docker.io/library/busybox:latest');
  assert.equal(normalize('busybox:1.36'), 'docker.io/library/busybox:1.36');
  assert.equal(normalize('docker.io/library/busybox:latest'), 'docker.io/library/busybox:latest');
  assert.equal(normalize('index.docker.io/library/busybox'), 'docker.io/library/busybox:latest');
  assert.equal(normalize('user/app'), 'docker.io/user/app:latest');
  assert.equal(normalize('localhost:5000/box:1'), 'localhost:5000/box:1');
  assert.equal(normalize('localhost/box'), 'localhost/box:latest');
  assert.equal(normalize('reg.example:5000/team/app:2'), 'reg.example:5000/team/app:2');
  assert.equal(normalize('[::1]:5000/box'), '[::1]:5000/box:latest');
  assert.equal(normalize(`box@${D}`), `docker.io/library/box@${D}`);
  assert.equal(normalize(`box:1@${D}`), `docker.io/library/box:1@${D}`);
  assert.equal(normalize('a__b-c--d/f'), 'docker.io/a__b-c--d/f:latest');
  assert.equal(normalize('a.b/f'), 'a.b/f:latest');
});

test('familiar forms, as Docker shows references', () => {
  assert.equal(familiar('docker.io/library/x:t'), 'x:t');
  assert.equal(familiar('docker.io/user/x:t'), 'user/x:t');
  assert.equal(familiar('docker.io/library/a/b:t'), 'library/a/b:t');
  assert.equal(familiar('localhost:5000/box:1'), 'localhost:5000/box:1');
  assert.equal(familiar(`docker.io/library/box@${D}`), `box@${D}`);
});

test('invalid references get Docker\'s words', () => {
  for (const bad of ['', ':t', 'box:', 'a//b', 'box:-x', '-box', 'box@sha256:12', 'a:b:c', 'box:' + 'x'.repeat(129), 'UPPER.example/x@y']) {
    assert.throws(() => normalize(bad), (e: Error) => e.message.startsWith('invalid reference format'), bad);
  }
  assert.throws(() => normalize('Box'), { message: 'invalid reference format: repository name must be lowercase' });
  assert.throws(() => normalize('user/Box:1'), { message: 'invalid reference format: repository name must be lowercase' });
  assert.throws(() => normalize('ab'.repeat(32)), /cannot specify 64-byte hexadecimal strings/);
  assert.throws(() => normalize('a/' + 'b'.repeat(260)), /must not be more than 255 characters/);
});

test('repo and tag as the API gives them', () => {
  assert.deepEqual(fromRepoTag('box', '1'), { domain: 'docker.io', path: 'library/box', tag: '1' });
  assert.deepEqual(fromRepoTag('box:2'), { domain: 'docker.io', path: 'library/box', tag: '2' });
  assert.deepEqual(fromRepoTag('localhost:5000/box'), { domain: 'localhost:5000', path: 'box', tag: 'latest' });
  assert.throws(() => fromRepoTag('box', 'bad tag'), /invalid reference format/);
  assert.deepEqual(fromRepoTag('box:2', '3'), { domain: 'docker.io', path: 'library/box', tag: '3' });
  assert.equal(parseNormalized('localhost:5000/box').tag, undefined);
});

test('reference filters are globs on the familiar name (and name:tag)', () => {
  const s = 'docker.io/library/box:1';
  assert.ok(matchReferenceFilter('box', s));
  assert.ok(matchReferenceFilter('box*', s));
  assert.ok(matchReferenceFilter('box:1', s));
  assert.ok(!matchReferenceFilter('box:2', s));
  assert.ok(matchReferenceFilter('*/box:1', 'localhost:5000/box:1'));
  assert.ok(!matchReferenceFilter('*/box:1', 'localhost:5000/a/box:1')); // '*' does not cross '/'
  assert.ok(matchReferenceFilter('*/box:1', 'docker.io/team/box:1'));
  assert.ok(matchReferenceFilter('localhost:5000/*', 'localhost:5000/box:1'));
  assert.ok(!matchReferenceFilter('bo', s));
  assert.ok(globToRegExp('a[bc]?').test('acx'));
});

test('import changes: ENV, CMD, ENTRYPOINT, EXPOSE, WORKDIR, USER, LABEL, VOLUME, STOPSIGNAL, ONBUILD', () => {
  const c: ImageRunConfig = { Env: ['PATH=/bin'], Cmd: null, Entrypoint: null, WorkingDir: '', Labels: null };
  applyChanges(c, ['ENV A=1 B="two words"', 'ENV C three four', 'ENV PATH=/usr/bin', 'CMD ["sleep","1"]', 'EXPOSE 80 53/udp 8000-8001',
    'WORKDIR /srv', 'WORKDIR app', 'USER nobody', 'LABEL a=b "c d"=e', 'VOLUME ["/data"]', 'VOLUME /x /y', 'STOPSIGNAL SIGINT', 'onbuild run echo hi']);
  assert.deepEqual(c.Env, ['PATH=/usr/bin', 'A=1', 'B=two words', 'C=three four']);
  assert.deepEqual(c.Cmd, ['sleep', '1']);
  assert.deepEqual(c.ExposedPorts, { '80/tcp': {}, '53/udp': {}, '8000/tcp': {}, '8001/tcp': {} });
  assert.equal(c.WorkingDir, '/srv/app');
  assert.equal(c.User, 'nobody');
  assert.deepEqual(c.Labels, { a: 'b', 'c d': 'e' });
  assert.deepEqual(c.Volumes, { '/data': {}, '/x': {}, '/y': {} });
  assert.equal(c.StopSignal, 'SIGINT');
  assert.deepEqual(c.OnBuild, ['RUN echo hi']);
  applyChanges(c, ['ENTRYPOINT /bin/top -b']);
  assert.deepEqual(c.Entrypoint, ['/bin/sh', '-c', '/bin/top -b']);
  assert.equal(c.Cmd, null); // ENTRYPOINT resets an inherited CMD
  assert.throws(() => applyChanges(c, ['RUN echo']), { message: 'run is not a valid change command' });
  assert.throws(() => applyChanges(c, ['STOPSIGNAL SIGNOPE']), /Invalid signal/);
  assert.deepEqual(splitWords('a "b c" d\\ e'), ['a', 'b c', 'd e']);
});
