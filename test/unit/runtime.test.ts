// The runtime's pure logic: users resolved as Docker does, the OCI config, runc's messages, the exit
// status file, signal names, shell quoting.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_CAPS, buildOciConfig, nowRfc3339Nano, parseExitFile, resolveUser, runcMessage, shellQuote, type ContainerSpec, type ResolvedUser,
} from '../../src/runtime/spec.ts';
import { normalizeSignal } from '../../src/runtime/runc.ts';

const PASSWD = [
  'root:x:0:0:root:/root:/bin/sh',
  '# a comment',
  'daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin',
  'web:x:1000:1000:web:/home/web:/bin/sh',
  'broken line',
  'odd:x::5::/:/bin/sh',
].join('\n');
const GROUP = ['root:x:0:', 'wheel:x:10:web,other', 'web:x:1000:', 'audio:x:29:daemon, web', 'staff:x:50:'].join('\n');

describe('resolveUser', () => {
  test('no user: root, with root\'s passwd entry when there is one', () => {
    assert.deepEqual(resolveUser(undefined, PASSWD, GROUP), { uid: 0, gid: 0, additionalGids: [] });
    assert.deepEqual(resolveUser('', null, null), { uid: 0, gid: 0, additionalGids: [] });
  });
  test('by name: primary gid from passwd, supplementary groups from /etc/group membership', () => {
    assert.deepEqual(resolveUser('web', PASSWD, GROUP), { uid: 1000, gid: 1000, additionalGids: [10, 29] });
    assert.deepEqual(resolveUser('daemon', PASSWD, GROUP), { uid: 1, gid: 1, additionalGids: [29] });
  });
  test('numeric uid: matched in passwd when present, else gid 0', () => {
    assert.deepEqual(resolveUser('1000', PASSWD, GROUP), { uid: 1000, gid: 1000, additionalGids: [10, 29] });
    assert.deepEqual(resolveUser('4242', PASSWD, GROUP), { uid: 4242, gid: 0, additionalGids: [] });
    assert.deepEqual(resolveUser('4242', null, null), { uid: 4242, gid: 0, additionalGids: [] });
  });
  test('explicit group: by name or number, and then no supplementary groups', () => {
    assert.deepEqual(resolveUser('web:staff', PASSWD, GROUP), { uid: 1000, gid: 50, additionalGids: [] });
    assert.deepEqual(resolveUser('web:7', PASSWD, GROUP), { uid: 1000, gid: 7, additionalGids: [] });
    assert.deepEqual(resolveUser('1234:5678', null, null), { uid: 1234, gid: 5678, additionalGids: [] });
    assert.deepEqual(resolveUser('0:wheel', PASSWD, GROUP), { uid: 0, gid: 10, additionalGids: [] });
  });
  test('Docker\'s messages for what does not exist', () => {
    assert.throws(() => resolveUser('nobody', PASSWD, GROUP), { message: 'unable to find user nobody: no matching entries in passwd file' });
    assert.throws(() => resolveUser('nobody', null, null), /unable to find user nobody/);
    assert.throws(() => resolveUser('web:nogroup', PASSWD, GROUP), { message: 'unable to find group nogroup: no matching entries in group file' });
    assert.throws(() => resolveUser('99999999999', null, null), /uids and gids must be in range/);
  });
});

describe('buildOciConfig', () => {
  const spec: ContainerSpec = {
    id: 'a'.repeat(64), rootfsLower: '/img', stateDir: '/data/c', args: ['sleep', '600'], env: ['PATH=/bin'], cwd: '/work',
    hostname: 'web1', tty: false, openStdin: false, netns: '/run/netns/c1',
    etcFiles: { hosts: '/data/c/hosts', resolvConf: '/data/c/resolv.conf', hostname: '/data/c/hostname' }, labels: { a: 'b' },
  };
  const root: ResolvedUser = { uid: 0, gid: 0, additionalGids: [] };
  type Cfg = {
    process: { terminal: boolean; user: Record<string, unknown>; env: string[]; cwd: string; args: string[]; capabilities: Record<string, string[]> };
    root: { path: string; readonly: boolean }; hostname: string; annotations?: Record<string, string>;
    mounts: { destination: string; type: string; source: string; options?: string[] }[];
    linux: { namespaces: { type: string; path?: string }[]; cgroupsPath: string; maskedPaths: string[]; readonlyPaths: string[] };
  };
  const build = (s: ContainerSpec, user = root) => buildOciConfig(s, { cgroupsPath: '/loom/x', user }) as unknown as Cfg;

  test('namespaces: pid, ipc, uts, mount of its own; the network namespace joined by path', () => {
    const c = build(spec);
    assert.deepEqual(c.linux.namespaces, [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'network', path: '/run/netns/c1' }]);
    assert.equal(c.linux.cgroupsPath, '/loom/x');
    assert.deepEqual(build({ ...spec, netns: 'host' }).linux.namespaces.map((n) => n.type), ['pid', 'ipc', 'uts', 'mount']);
  });
  test('process, root, hostname, labels as annotations', () => {
    const c = build(spec);
    assert.deepEqual(c.process.args, ['sleep', '600']);
    assert.equal(c.process.cwd, '/work');
    assert.equal(c.process.terminal, false);
    assert.deepEqual(c.process.env, ['PATH=/bin']);
    assert.deepEqual(c.root, { path: 'rootfs', readonly: false });
    assert.equal(c.hostname, 'web1');
    assert.deepEqual(c.annotations, { a: 'b' });
    assert.equal('annotations' in build({ ...spec, labels: {} }), false);
    const t = build({ ...spec, tty: true });
    assert.equal(t.process.terminal, true);
    assert.deepEqual(t.process.env, ['PATH=/bin', 'TERM=xterm']);
    assert.deepEqual(build({ ...spec, tty: true, env: ['TERM=vt100'] }).process.env, ['TERM=vt100']);
  });
  test('mounts: Docker\'s /proc, /dev, /sys (ro) and friends, the three etc files bound read-write', () => {
    const c = build(spec);
    const by = new Map(c.mounts.map((m) => [m.destination, m]));
    assert.deepEqual([...by.keys()].sort(), ['/dev', '/dev/mqueue', '/dev/pts', '/dev/shm', '/etc/hostname', '/etc/hosts', '/etc/resolv.conf', '/proc', '/sys'].sort());
    assert.ok(by.get('/sys')!.options!.includes('ro'));
    assert.equal(by.get('/proc')!.type, 'proc');
    assert.deepEqual(by.get('/etc/hosts'), { destination: '/etc/hosts', type: 'bind', source: '/data/c/hosts', options: ['rbind', 'rprivate'] });
    assert.equal(by.get('/etc/resolv.conf')!.source, '/data/c/resolv.conf');
    assert.equal(by.get('/etc/hostname')!.source, '/data/c/hostname');
    assert.ok(c.mounts.findIndex((m) => m.destination === '/dev') < c.mounts.findIndex((m) => m.destination === '/dev/pts'));
    assert.ok(c.linux.maskedPaths.includes('/proc/kcore'));
    assert.ok(c.linux.readonlyPaths.includes('/proc/sys'));
  });
  test('capabilities: Docker\'s default set for root; bounding only for other users', () => {
    for (const cap of ['CAP_NET_RAW', 'CAP_NET_BIND_SERVICE', 'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL',
      'CAP_SETGID', 'CAP_SETUID', 'CAP_SETPCAP', 'CAP_MKNOD', 'CAP_AUDIT_WRITE', 'CAP_SYS_CHROOT', 'CAP_SETFCAP']) {
      assert.ok(DEFAULT_CAPS.includes(cap), cap);
    }
    assert.equal(DEFAULT_CAPS.length, 14);
    assert.ok(!DEFAULT_CAPS.includes('CAP_SYS_ADMIN') && !DEFAULT_CAPS.includes('CAP_NET_ADMIN'));
    const c = build(spec);
    assert.deepEqual(c.process.capabilities, { bounding: DEFAULT_CAPS, effective: DEFAULT_CAPS, permitted: DEFAULT_CAPS });
    const u = build(spec, { uid: 1000, gid: 1000, additionalGids: [10] });
    assert.deepEqual(u.process.capabilities, { bounding: DEFAULT_CAPS });
    assert.deepEqual(u.process.user, { uid: 1000, gid: 1000, additionalGids: [10] });
    assert.deepEqual(c.process.user, { uid: 0, gid: 0 });
  });
});

describe('runc output and the exit file', () => {
  test('runcMessage: JSON log lines, logrus text, plain text', () => {
    const json = [
      '{"level":"warning","msg":"something minor","time":"2026-01-01T00:00:00Z"}',
      '{"level":"error","msg":"runc run failed: unable to start container process: exec: \\"/nonexistent\\": stat /nonexistent: no such file or directory","time":"2026-01-01T00:00:00Z"}',
    ].join('\n');
    assert.equal(runcMessage(json), 'runc run failed: unable to start container process: exec: "/nonexistent": stat /nonexistent: no such file or directory');
    assert.equal(runcMessage('time="2026-01-01T00:00:00Z" level=error msg="container \\"x\\" does not exist"\n'), 'container "x" does not exist');
    assert.equal(runcMessage('  plain failure\n'), 'plain failure');
    assert.equal(runcMessage(''), '');
  });
  test('parseExitFile: complete, truncated, and without nanoseconds', () => {
    assert.deepEqual(parseExitFile('{"exitCode":137,"finishedAt":"2026-01-02T03:04:05.123456789Z"}\n'), { exitCode: 137, finishedAt: '2026-01-02T03:04:05.123456789Z' });
    assert.equal(parseExitFile('{"exitCode":13'), null);
    assert.equal(parseExitFile(''), null);
    assert.deepEqual(parseExitFile('{"exitCode":0,"finishedAt":"2026-01-02T03:04:05.NZ"}'), { exitCode: 0, finishedAt: '2026-01-02T03:04:05Z' });
    assert.deepEqual(parseExitFile('{"exitCode":1,"finishedAt":"garbage"}'), { exitCode: 1, finishedAt: '' });
  });
  test('times, signals, quoting', () => {
    assert.equal(nowRfc3339Nano(new Date('2026-01-02T03:04:05.678Z')), '2026-01-02T03:04:05.678000000Z');
    assert.equal(normalizeSignal('SIGTERM'), 'TERM');
    assert.equal(normalizeSignal('kill'), 'KILL');
    assert.equal(normalizeSignal(9), '9');
    assert.equal(normalizeSignal('15'), '15');
    assert.equal(shellQuote('/usr/sbin/runc'), '/usr/sbin/runc');
    assert.equal(shellQuote('a b'), "'a b'");
    assert.equal(shellQuote("it's"), "'it'\\''s'");
    assert.equal(shellQuote('$(x)'), "'$(x)'");
  });
});
