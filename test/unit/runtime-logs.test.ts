// Pure parts of container output handling: the time index of log files (lines stamped by the first record
// at or past their end, merged across streams), Docker's timestamp format, the exec start-failure
// sniffer, --init in the OCI config, and the container list filters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readIndex, stampedLines, mergeLines, rfc3339NanoFixed, LogClock } from '../../src/runtime/logclock.ts';
import { ExecFailureSniffer, startFailureCode } from '../../src/runtime/execfail.ts';
import { buildOciConfig } from '../../src/runtime/spec.ts';
import { listContainers } from '../../src/api/psfilter.ts';
import { parseApiTimestamp } from '../../src/api/logs.ts';
import { emptyState } from '../../src/core/containers.ts';
import type { ContainerRecord } from '../../src/core/types.ts';

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'l6-logs-'));
}

test('log index: each line gets the time of the first record at or past its end; merge keeps write order', () => {
  const dir = tmp();
  try {
    const out = path.join(dir, 'stdout.log');
    const err = path.join(dir, 'stderr.log');
    fs.writeFileSync(out, 'a\nb\nc\npartial');
    fs.writeFileSync(`${out}.idx`, '2 100\n6 300\n4 999\nbad\n');
    fs.writeFileSync(err, 'e1\n');
    fs.writeFileSync(`${err}.idx`, '3 200\n');
    assert.deepEqual(readIndex(out).map((r) => [r.size, r.at]), [[2, 100n], [6, 300n]]);
    const o = stampedLines(out, 'stdout', 0, false);
    assert.deepEqual(o.lines.map((l) => [l.data.toString(), l.at]), [['a\n', 100n], ['b\n', 300n], ['c\n', 300n]]);
    assert.equal(o.end, 6);
    const all = stampedLines(out, 'stdout', 0, true);
    assert.equal(all.lines.at(-1)!.data.toString(), 'partial');
    assert.equal(all.end, 13);
    const e = stampedLines(err, 'stderr');
    assert.deepEqual(mergeLines(o.lines, e.lines).map((l) => l.data.toString()), ['a\n', 'e1\n', 'b\n', 'c\n']);
    assert.deepEqual(stampedLines(out, 'stdout', 4, false).lines.map((l) => l.data.toString()), ['c\n']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('log clock: growth is recorded, a truncation drops the records past the end', async () => {
  const dir = tmp();
  const clock = new LogClock();
  try {
    const out = path.join(dir, 'stdout.log');
    fs.writeFileSync(out, 'before\n');
    clock.track(dir);
    assert.deepEqual(readIndex(out).map((r) => r.size), [7]);
    fs.appendFileSync(out, 'more\n');
    clock.sampleNow(dir);
    assert.deepEqual(readIndex(out).map((r) => r.size), [7, 12]);
    fs.truncateSync(out, 7);
    clock.untrack(dir);
    assert.deepEqual(readIndex(out).map((r) => r.size), [7]);
  } finally {
    clock.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('Docker\'s fixed RFC 3339 nano times and the API\'s SECONDS.NANOS', () => {
  assert.equal(rfc3339NanoFixed(1_700_000_000_123_456_789n), '2023-11-14T22:13:20.123456789Z');
  assert.equal(rfc3339NanoFixed(1_700_000_000_000_000_000n), '2023-11-14T22:13:20.000000000Z');
  assert.equal(parseApiTimestamp('1700000000.5', 'since'), 1_700_000_000_500_000_000n);
  assert.equal(parseApiTimestamp('1700000000', 'since'), 1_700_000_000_000_000_000n);
  assert.throws(() => parseApiTimestamp('soon', 'since'), /invalid syntax/);
});

test('exec start failures: runc\'s message becomes Docker\'s, with 126/127; other output passes', () => {
  const passed: string[] = [] as string[];
  let s = new ExecFailureSniffer((b) => passed.push(b.toString()));
  s.feed(Buffer.from('exec failed: unable to start container process: exec: "x": executable file not found in $PATH\n'));
  assert.equal(passed.length, 0);
  assert.deepEqual(s.finish(255), { message: 'OCI runtime exec failed: exec failed: unable to start container process: exec: "x": executable file not found in $PATH: unknown', exitCode: 127 });
  s = new ExecFailureSniffer((b) => passed.push(b.toString()));
  s.feed(Buffer.from('ex'));
  s.feed(Buffer.from('pected output\n'));
  assert.deepEqual(passed, ['ex', 'pected output\n']);
  assert.equal(s.finish(255), undefined);
  s = new ExecFailureSniffer((b) => passed.push(b.toString()));
  s.feed(Buffer.from('exec failed: but the process ran'));
  assert.equal(s.finish(3), undefined);
  assert.equal(passed.at(-1), 'exec failed: but the process ran');
  assert.equal(startFailureCode('exec: "/etc": permission denied'), 126);
  assert.equal(startFailureCode('chdir to cwd ("/nope") set in config.json failed: no such file or directory'), 127);
  assert.equal(startFailureCode('something else'), 128);
});

test('--init: docker-init is PID 1 in front of the command, mounted read-only', () => {
  const spec = { id: 'x', rootfsLower: '/l', stateDir: '/s', args: ['sleep', '1'], env: [], cwd: '/', hostname: 'h', tty: false, openStdin: false, netns: 'host', etcFiles: { hosts: '/h', resolvConf: '/r', hostname: '/n' } };
  const c = buildOciConfig({ ...spec, init: '/usr/bin/tini-static' }, { cgroupsPath: '/x', user: { uid: 0, gid: 0, additionalGids: [] } }) as any;
  assert.deepEqual(c.process.args, ['/sbin/docker-init', '--', 'sleep', '1']);
  assert.deepEqual(c.mounts.at(-1), { destination: '/sbin/docker-init', type: 'bind', source: '/usr/bin/tini-static', options: ['bind', 'ro'] });
  const plain = buildOciConfig(spec, { cgroupsPath: '/x', user: { uid: 0, gid: 0, additionalGids: [] } }) as any;
  assert.deepEqual(plain.process.args, ['sleep', '1']);
});

function rec(name: string, created: string, over: Partial<ContainerRecord['state']> = {}, labels: Record<string, string> = {}): ContainerRecord {
  return {
    id: name.padEnd(64, '0'), name, created, path: 'sleep', args: [], imageId: 'sha256:img', config: { Labels: labels } as any,
    hostConfig: {} as any, networkMode: 'bridge', networkRequests: {}, state: { ...emptyState(), ...over }, restartCount: 0, endpoints: {},
    hostnamePath: '', hostsPath: '', resolvConfPath: '', logPath: '', stateDir: '',
  };
}

test('container list: Docker\'s order, running by default, -n includes stopped, filters and their errors', () => {
  const run = { Status: 'running' as const, Running: true, StartedAt: '2025-01-01T00:00:00Z' };
  const cs = [
    rec('a', '2025-01-01T00:00:01Z', run, { tier: 'front', team: 'x' }),
    rec('b', '2025-01-01T00:00:02Z', { Status: 'exited', ExitCode: 3, StartedAt: '2025-01-01T00:00:00Z' }),
    rec('c', '2025-01-01T00:00:03Z', { Status: 'restarting', Restarting: true, ExitCode: 1 }, { tier: 'back' }),
    rec('d', '2025-01-01T00:00:04Z'),
  ];
  const summary = () => ({ Ports: [], NetworkSettings: { Networks: { bridge: { NetworkID: 'f00d' } } } });
  const list = (f: Record<string, string[]>, all = false, limit = -1) => listContainers(cs, { all, limit, filters: f, summary, imageId: () => 'sha256:img' }).map((c) => c.name);
  assert.deepEqual(list({}), ['c', 'a']);
  assert.deepEqual(list({}, true), ['d', 'c', 'b', 'a']);
  assert.deepEqual(list({}, false, 2), ['d', 'c']);
  assert.deepEqual(list({ label: ['tier'] }, true), ['c', 'a']);
  assert.deepEqual(list({ label: ['tier', 'team=x'] }, true), ['a']);
  assert.deepEqual(list({ status: ['exited', 'created'] }), ['d', 'b']);
  assert.deepEqual(list({ exited: ['3'] }, true), ['b']);
  assert.deepEqual(list({ name: ['^[ab]$'] }, true), ['b', 'a']);
  assert.deepEqual(list({ before: ['c'] }, true), ['b', 'a']);
  assert.deepEqual(list({ since: ['b'] }, true), ['d', 'c']);
  assert.deepEqual(list({ network: ['f00'] }, true), ['d', 'c', 'b', 'a']);
  assert.throws(() => list({ colour: ['red'] }), /invalid filter 'colour'$/);
  assert.throws(() => list({ status: ['sleeping'] }), /invalid filter 'status=sleeping': invalid value for state \(sleeping\)/);
  assert.throws(() => list({ exited: ['x'] }), /invalid filter 'exited=x'/);
  assert.throws(() => list({ publish: ['80:80'] }), /filter for 'publish' should not contain ':': 80:80/);
  assert.throws(() => list({ before: ['zzz'] }), /No such container: zzz/);
});
