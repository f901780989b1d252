// `-p` / `--expose` parsing against what the docker CLI (28.x) sends or prints for the same values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addExposed, naturalCompare, parsePublish } from '../../src/cli/portspec.ts';

const b = (spec: string) => parsePublish([spec]).bindings;

test('-p forms docker accepts', () => {
  assert.deepEqual(b('8080:80'), { '80/tcp': [{ HostIp: '', HostPort: '8080' }] });
  assert.deepEqual(b('127.0.0.1::80/udp'), { '80/udp': [{ HostIp: '127.0.0.1', HostPort: '' }] });
  assert.deepEqual(b('[::1]:8080:80'), { '80/tcp': [{ HostIp: '::1', HostPort: '8080' }] });
  assert.deepEqual(b('::1:8080:80'), { '80/tcp': [{ HostIp: '::1', HostPort: '8080' }] });
  assert.deepEqual(b('0:80'), { '80/tcp': [{ HostIp: '', HostPort: '0' }] });
  assert.deepEqual(b('8080:0'), { '0/tcp': [{ HostIp: '', HostPort: '8080' }] }, 'left to the daemon, as docker does');
  assert.deepEqual(b('9000-9009:80'), { '80/tcp': [{ HostIp: '', HostPort: '9000-9009' }] });
  assert.deepEqual(Object.entries(b('8000-8001:8000-8001/UDP')), [['8000/udp', [{ HostIp: '', HostPort: '8000' }]], ['8001/udp', [{ HostIp: '', HostPort: '8001' }]]]);
  assert.deepEqual(b('published=8080,target=80,protocol=udp'), { '80/udp': [{ HostIp: '', HostPort: '8080' }] });
  assert.deepEqual(parsePublish(['8080:80', '127.0.0.1:8081:80']).bindings, { '80/tcp': [{ HostIp: '', HostPort: '8080' }, { HostIp: '127.0.0.1', HostPort: '8081' }] });
  assert.deepEqual(parsePublish(['8080:80']).exposed, { '80/tcp': {} });
});

test('-p values docker refuses, with its messages', () => {
  const cases: [string, string][] = [
    ['70000:80', 'invalid hostPort: 70000'],
    ['8080:70000', 'invalid containerPort: 70000'],
    ['abc:80', 'invalid hostPort: abc'],
    ['8080-8070:80', 'invalid hostPort: 8080-8070'],
    ['8000-8010:80-85', 'invalid ranges specified for container and host Ports: 80-85 and 8000-8010'],
    ['8080:80-81', 'invalid ranges specified for container and host Ports: 80-81 and 8080'],
    ['8080:80/foo', 'invalid proto: foo'],
    ['1.2.3:8080:80', 'invalid IP address: 1.2.3'],
    ['1.2.3.4:80:80:80', 'invalid IP address: 1.2.3.4:80'],
    ['', 'no port specified: <empty>'],
    ['8080:', 'no port specified: 8080:<empty>'],
    ['x', 'invalid containerPort: x'],
    ['a=b,c', "invalid publish opts format (should be name=value but got 'c')"],
  ];
  for (const [spec, msg] of cases) assert.throws(() => b(spec), { message: msg }, spec);
});

test('--expose', () => {
  const x: Record<string, object> = {};
  addExposed(x, ['80', '90-91/udp']);
  assert.deepEqual(Object.keys(x), ['80/tcp', '90/udp', '91/udp']);
  const cases: [string, string][] = [
    ['8080:80', 'invalid port format for --expose: 8080:80'],
    ['80x', 'invalid range format for --expose: 80x, error: strconv.ParseUint: parsing "80x": invalid syntax'],
    ['70000', 'invalid range format for --expose: 70000, error: strconv.ParseUint: parsing "70000": value out of range'],
    ['82-80', 'invalid range format for --expose: 82-80, error: invalid range specified for port: 82-80'],
    ['', 'invalid range format for --expose: , error: empty string specified for ports'],
  ];
  for (const [spec, msg] of cases) assert.throws(() => addExposed({}, [spec]), { message: msg }, spec);
});

test('natural order, as `docker port` prints', () => {
  const lines = ['5000/udp -> 0.0.0.0:5000', '80/tcp -> 127.0.0.1:32768', '80/tcp -> 0.0.0.0:8090', '443/tcp -> 0.0.0.0:443'];
  assert.deepEqual([...lines].sort(naturalCompare), ['80/tcp -> 0.0.0.0:8090', '80/tcp -> 127.0.0.1:32768', '443/tcp -> 0.0.0.0:443', '5000/udp -> 0.0.0.0:5000']);
});
