import { test } from 'node:test';
import assert from 'node:assert/strict';
import { firewallPorts, linkEnv, parseLinks, portRequests, publishedView } from '../../src/core/publish.ts';
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
  assert.throws(() => portRequests(ctr({ PortBindings: { '80/tcp': [{ HostIp: '', HostPort: '0' }] } }), '0.0.0.0'), /invalid hostPort: 0/);
  assert.throws(() => portRequests(ctr({ PortBindings: { '99999/tcp': [{ HostIp: '', HostPort: '1' }] } }), '0.0.0.0'), /99999/);
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
