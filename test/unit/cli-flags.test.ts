import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFlags, f } from '../../src/cli/flags.ts';
import { parsePublish } from '../../src/cli/container.ts';

const specs = [f('-d,--detach'), f('-i,--interactive'), f('-t,--tty'), f('--name', 'string'), f('-e,--env', 'list'), f('--network,--net', 'string', 'network')];

test('docker-style flags: combined shorts, --x=v, lists, stop at the image', () => {
  const p = parseFlags(['-dit', '--name=c1', '-e', 'A=1', '-eB=2', '--net', 'none', 'box', 'sh', '-c', 'echo -n hi'], specs, { interspersed: false });
  assert.deepEqual(p.flags, { detach: true, interactive: true, tty: true, name: 'c1', env: ['A=1', 'B=2'], network: 'none' });
  assert.deepEqual(p.args, ['box', 'sh', '-c', 'echo -n hi']);
});

test('unknown flags are refused by name', () => {
  assert.throws(() => parseFlags(['--bogus', 'x'], specs, { interspersed: true }), /unknown flag: --bogus/);
  assert.throws(() => parseFlags(['--name'], specs, { interspersed: true }), /flag needs an argument: --name/);
});

test('-p forms', () => {
  assert.deepEqual(parsePublish(['8080:80']).bindings, { '80/tcp': [{ HostIp: '', HostPort: '8080' }] });
  assert.deepEqual(parsePublish(['127.0.0.1::80/udp']).bindings, { '80/udp': [{ HostIp: '127.0.0.1', HostPort: '' }] });
  assert.deepEqual(parsePublish(['80']).bindings, { '80/tcp': [{ HostIp: '', HostPort: '' }] });
  assert.deepEqual(Object.keys(parsePublish(['8000-8002:8000-8002']).bindings), ['8000/tcp', '8001/tcp', '8002/tcp']);
  assert.equal(parsePublish(['8000-8002:8000-8002']).bindings['8001/tcp']![0]!.HostPort, '8001');
  assert.equal(parsePublish(['9000-9009:80']).bindings['80/tcp']![0]!.HostPort, '9000-9009');
  assert.deepEqual(parsePublish(['0:80']).bindings, { '80/tcp': [{ HostIp: '', HostPort: '0' }] }); // as docker: host port 0 = any
  assert.throws(() => parsePublish(['8080:70000']), /70000/);
  assert.throws(() => parsePublish(['8080:80/xyz']), /invalid proto: xyz/);
  assert.throws(() => parsePublish(['8000-8002:80-81']), /invalid ranges/);
});
