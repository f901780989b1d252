import { test } from 'node:test';
import assert from 'node:assert/strict';
import { firewallPorts, linkEnv, parseLinks, portRequests, publishedView, validateExposedPorts, validatePortBindings } from '../../src/core/publish.ts';
import type { ContainerRecord } from '../../src/core/types.ts';

function ctr(over: { PortBindings?: Record<string, { HostIp: string; HostPort: string }[]>; ExposedPorts?: Record<string, object>; PublishAllPorts?: boolean; Env?: string[] }): ContainerRecord {
  return {
    name: 'web', id: 'a'.repeat(64),
    config: { ExposedPorts: over.ExposedPorts ?? {}, Env: over.Env ?? [] },
    hostConfig: { PortBindings: over.PortBindings ?? {}, PublishAllPorts: !!over.PublishAllPorts },
  } as unknown as ContainerRecord;
}

test('port requests from bindings and -P', () => {
  const c = ctr({ PortBindings: { '80/tcp': [{ HostIp: '', HostPort: '8080' }], '53/udp': [{ HostIp: '127.0.0.1', HostPort: '' }] }, ExposedPorts: { '80/tcp': {}, '53/udp': {}, '443/tcp': {} }, PublishAllPorts: true });
  const r = portRequests(c, '0.0.0.0');
  assert.deepEqual(r, [
    { proto: 'tcp', containerPort: 80, hostIp: '', hostFrom: 8080, hostTo: 8080 },
    { proto: 'udp', containerPort: 53, hostIp: '127.0.0.1', hostFrom: 0, hostTo: 0 },
    { proto: 'tcp', containerPort: 443, hostIp: '', hostFrom: 0, hostTo: 0 },
  ]);
  assert.deepEqual(portRequests(ctr({ PortBindings: { '80/tcp': [{ HostIp: '', HostPort: '9000-9009' }] } }), '10.0.0.1')[0], { proto: 'tcp', containerPort: 80, hostIp: '10.0.0.1', hostFrom: 9000, hostTo: 9009 });
  // host port 0 is "any free port", as for Docker
  assert.deepEqual(portRequests(ctr({ PortBindings: { '80/tcp': [{ HostIp: '', HostPort: '0' }] } }), '0.0.0.0')[0], { proto: 'tcp', containerPort: 80, hostIp: '', hostFrom: 0, hostTo: 0 });
  assert.throws(() => portRequests(ctr({ PortBindings: { '99999/tcp': [{ HostIp: '', HostPort: '1' }] } }), '0.0.0.0'), { message: 'invalid port specification: "99999/tcp"' });
});

test('create-time validation of PortBindings and ExposedPorts, naming the bad value', () => {
  assert.doesNotThrow(() => validatePortBindings({ '80/tcp': [{ HostIp: '', HostPort: '' }, { HostIp: '127.0.0.1', HostPort: '8080' }], '53/udp': [{ HostIp: '::1', HostPort: '9000-9009' }], '81': null }));
  const bad: [Record<string, { HostIp?: string; HostPort?: string }[]>, string][] = [
    [{ '0/tcp': [{ HostPort: '8080' }] }, 'invalid port specification: "0/tcp"'],
    [{ '70000/tcp': [] }, 'invalid port specification: "70000/tcp"'],
    [{ 'abc/tcp': [] }, 'invalid port specification: "abc/tcp"'],
    [{ '80/icmp': [] }, 'invalid proto: icmp'],
    [{ '80/tcp': [{ HostPort: '70000' }] }, 'invalid port specification: "70000"'],
    [{ '80/tcp': [{ HostPort: '9009-9000' }] }, 'invalid port specification: "9009-9000"'],
    [{ '80/tcp': [{ HostPort: 'x' }] }, 'invalid port specification: "x"'],
    [{ '80/tcp': [{ HostIp: '1.2.3', HostPort: '80' }] }, 'invalid IP address: 1.2.3'],
  ];
  for (const [b, msg] of bad) assert.throws(() => validatePortBindings(b), { message: msg }, msg);
  assert.throws(() => validateExposedPorts({ '0/tcp': {} }), { message: 'invalid port specification: "0/tcp"' });
});

test('consecutive same-number mappings become one firewall range; others stay single', () => {
  const ms = [8000, 8001, 8002].map((p) => ({ proto: 'tcp' as const, containerPort: p, hostIp: '', hostPort: p }));
  ms.push({ proto: 'tcp', containerPort: 80, hostIp: '', hostPort: 9000 }, { proto: 'tcp', containerPort: 81, hostIp: '', hostPort: 9001 });
  const fw = firewallPorts(ms, '172.17.0.2', 'loom0');
  assert.deepEqual(fw.map((p) => `${p.hostPort}-${p.hostPortEnd}>${p.containerPort}-${p.containerPortEnd}`), ['8000-8002>8000-8002', '9000-9000>80-80', '9001-9001>81-81']);
  assert.deepEqual(publishedView(ms.slice(0, 1)), { '8000/tcp': [{ HostIp: '0.0.0.0', HostPort: '8000' }] });
});

test('links: parsing and Docker\'s environment variables', () => {
  assert.deepEqual(parseLinks(['db:database', '/c1', 'c2']), [{ name: 'db', alias: 'database' }, { name: 'c1', alias: 'c1' }, { name: 'c2', alias: 'c2' }]);
  const env = linkEnv('app', 'db', ctr({ ExposedPorts: { '5432/tcp': {}, '80/tcp': {} }, Env: ['PATH=/bin', 'PASSWORD=x'] }), '172.17.0.3');
  assert.deepEqual(env, [
    'DB_PORT=tcp://172.17.0.3:80',
    'DB_PORT_80_TCP=tcp://172.17.0.3:80', 'DB_PORT_80_TCP_ADDR=172.17.0.3', 'DB_PORT_80_TCP_PORT=80', 'DB_PORT_80_TCP_PROTO=tcp',
    'DB_PORT_5432_TCP=tcp://172.17.0.3:5432', 'DB_PORT_5432_TCP_ADDR=172.17.0.3', 'DB_PORT_5432_TCP_PORT=5432', 'DB_PORT_5432_TCP_PROTO=tcp',
    'DB_NAME=/app/db', 'DB_ENV_PASSWORD=x',
  ]);
});

test('link environment as Docker builds it: tcp first, ranges get _START/_END, only - becomes _', () => {
  const env = linkEnv('app', 'my-db.x', ctr({ ExposedPorts: { '53/udp': {}, '8001/tcp': {}, '8000/tcp': {}, '8002/tcp': {}, '9000/tcp': {} }, Env: ['HOME=/root', 'A=1'] }), '10.0.0.2');
  assert.deepEqual(env, [
    'MY_DB.X_PORT=tcp://10.0.0.2:8000',
    'MY_DB.X_PORT_8000_TCP=tcp://10.0.0.2:8000', 'MY_DB.X_PORT_8000_TCP_ADDR=10.0.0.2', 'MY_DB.X_PORT_8000_TCP_PORT=8000', 'MY_DB.X_PORT_8000_TCP_PROTO=tcp',
    'MY_DB.X_PORT_8001_TCP=tcp://10.0.0.2:8001', 'MY_DB.X_PORT_8001_TCP_ADDR=10.0.0.2', 'MY_DB.X_PORT_8001_TCP_PORT=8001', 'MY_DB.X_PORT_8001_TCP_PROTO=tcp',
    'MY_DB.X_PORT_8002_TCP=tcp://10.0.0.2:8002', 'MY_DB.X_PORT_8002_TCP_ADDR=10.0.0.2', 'MY_DB.X_PORT_8002_TCP_PORT=8002', 'MY_DB.X_PORT_8002_TCP_PROTO=tcp',
    'MY_DB.X_PORT_9000_TCP=tcp://10.0.0.2:9000', 'MY_DB.X_PORT_9000_TCP_ADDR=10.0.0.2', 'MY_DB.X_PORT_9000_TCP_PORT=9000', 'MY_DB.X_PORT_9000_TCP_PROTO=tcp',
    'MY_DB.X_PORT_8000_TCP_START=tcp://10.0.0.2:8000', 'MY_DB.X_PORT_8000_TCP_PORT_START=8000', 'MY_DB.X_PORT_8000_TCP_END=tcp://10.0.0.2:8002', 'MY_DB.X_PORT_8000_TCP_PORT_END=8002',
    'MY_DB.X_PORT_53_UDP=udp://10.0.0.2:53', 'MY_DB.X_PORT_53_UDP_ADDR=10.0.0.2', 'MY_DB.X_PORT_53_UDP_PORT=53', 'MY_DB.X_PORT_53_UDP_PROTO=udp',
    'MY_DB.X_NAME=/app/my-db.x', 'MY_DB.X_ENV_A=1',
  ]);
});
