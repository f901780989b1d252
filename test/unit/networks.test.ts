// Pure parts of network handling: the API's list and prune filters, the CLI's IPAM consolidation and sort.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { filterNetworks, pruneFilter, matchLabels } from '../../src/core/networks.ts';
import { consolidateIpam, naturalCompare } from '../../src/cli/network.ts';
import type { NetworkRecord } from '../../src/core/types.ts';

const net = (name: string, over: Partial<NetworkRecord> = {}): NetworkRecord => ({
  id: `${name.padEnd(8, 'x')}`.replace(/[^a-f0-9]/g, 'a').padEnd(64, '0'), name, driver: 'bridge', scope: 'local', created: '2026-01-01T00:00:00.000000000Z',
  enableIPv6: false, ipam: { driver: 'default', options: {}, config: [] }, internal: false, attachable: false, options: {}, labels: {}, ...over,
});

test('list filters as Docker applies them', () => {
  const nets = [net('bridge'), net('host', { driver: 'host' }), net('none', { driver: 'null' }), net('front', { labels: { team: 'a', tier: '' } }), net('back'), net('frontier')];
  const used = (n: NetworkRecord) => (n.name === 'back' ? 1 : 0);
  const names = (f: Record<string, string[]>) => filterNetworks(nets, f, used).map((n) => n.name).sort();
  assert.deepEqual(names({ name: ['front'] }), ['front', 'frontier'], 'name: a regular expression');
  assert.deepEqual(names({ name: ['^front$'] }), ['front']);
  assert.deepEqual(names({ name: ['front', 'back'] }), ['back', 'front', 'frontier'], 'values of one key: any');
  assert.deepEqual(names({ driver: ['null'] }), ['none']);
  assert.deepEqual(names({ driver: ['brid'] }), [], 'driver: exact');
  assert.deepEqual(names({ type: ['builtin'] }), ['bridge', 'host', 'none']);
  assert.deepEqual(names({ type: ['custom'] }), ['back', 'front', 'frontier']);
  assert.deepEqual(names({ label: ['team=a'] }), ['front']);
  assert.deepEqual(names({ label: ['team=a', 'tier'] }), ['front'], 'labels: all of them');
  assert.deepEqual(names({ label: ['team=b'] }), []);
  assert.deepEqual(names({ dangling: ['true'] }), ['front', 'frontier']);
  assert.deepEqual(names({ dangling: ['0'] }), ['back', 'bridge', 'host', 'none']);
  assert.deepEqual(names({ id: [nets[4]!.id.slice(0, 5)] }).includes('back'), true);
  assert.throws(() => names({ color: ['red'] }), /invalid filter 'color'/);
  assert.throws(() => names({ type: ['odd'] }), /invalid filter 'type=odd'/);
  assert.throws(() => names({ dangling: ['maybe'] }), /invalid value for filter 'dangling'/);
  assert.throws(() => names({ dangling: ['true', 'false'] }), /more than one value/);
});

test('prune filters: until, label, label!', () => {
  const old = net('old', { created: '2020-01-01T00:00:00Z', labels: { keep: 'yes' } });
  const fresh = net('fresh', { created: new Date().toISOString() });
  assert.deepEqual([old, fresh].filter(pruneFilter({ until: ['2021-01-01T00:00:00Z'] })).map((n) => n.name), ['old']);
  assert.deepEqual([old, fresh].filter(pruneFilter({ until: ['24h'] })).map((n) => n.name), ['old']);
  assert.deepEqual([old, fresh].filter(pruneFilter({ until: [String(Date.now() / 1000 + 60)] })).map((n) => n.name), ['old', 'fresh']);
  assert.deepEqual([old, fresh].filter(pruneFilter({ 'label!': ['keep=yes'] })).map((n) => n.name), ['fresh']);
  assert.deepEqual([old, fresh].filter(pruneFilter({ label: ['keep'] })).map((n) => n.name), ['old']);
  assert.throws(() => pruneFilter({ until: ['soon'] }), /failed to parse value as time or duration: "soon"/);
  assert.throws(() => pruneFilter({ name: ['x'] }), /invalid filter 'name'/);
  assert.ok(matchLabels([], {}) && !matchLabels(['a'], {}));
});

test('the CLI gives ranges, gateways and aux addresses to the subnet that holds them', () => {
  assert.deepEqual(consolidateIpam(['10.1.0.0/16', '10.2.0.0/16'], ['10.2.5.0/24'], ['10.2.0.254', '10.1.0.1'], { r: '10.1.0.9' }), [
    { Subnet: '10.1.0.0/16', Gateway: '10.1.0.1', AuxiliaryAddresses: { r: '10.1.0.9' } },
    { Subnet: '10.2.0.0/16', IPRange: '10.2.5.0/24', Gateway: '10.2.0.254' },
  ]);
  assert.deepEqual(consolidateIpam(['192.168.0.0/16'], [], ['192.168.0.1'], {}), [{ Subnet: '192.168.0.0/16', Gateway: '192.168.0.1' }]);
  assert.deepEqual(consolidateIpam(['10.0.0.0/33'], [], [], {}), [{ Subnet: '10.0.0.0/33' }], 'a lone bad subnet is the daemon\'s to refuse');
  const err = (f: () => unknown, re: RegExp) => assert.throws(f, re);
  err(() => consolidateIpam([], [], ['10.0.0.1'], {}), /every ip-range or gateway must have a corresponding subnet/);
  err(() => consolidateIpam(['10.0.0.0/8', '10.1.0.0/16'], [], [], {}), /multiple overlapping subnet configuration is not supported/);
  err(() => consolidateIpam(['10.1.0.0/16'], [], ['10.2.0.1'], {}), /no matching subnet for gateway 10\.2\.0\.1/);
  err(() => consolidateIpam(['10.1.0.0/16'], ['10.2.0.0/24'], [], {}), /no matching subnet for range 10\.2\.0\.0\/24/);
  err(() => consolidateIpam(['10.1.0.0/16'], [], [], { a: '10.2.0.9' }), /no matching subnet for aux-address 10\.2\.0\.9/);
  err(() => consolidateIpam(['10.1.0.0/16'], [], ['10.1.0.1', '10.1.0.2'], {}), /every ip-range or gateway must have a corresponding subnet/);
  err(() => consolidateIpam(['10.1.0.0/16', '10.2.0.0/16'], [], ['10.1.0.1', '10.1.0.2'], {}), /cannot configure multiple gateways \(10\.1\.0\.2, 10\.1\.0\.1\) for the same subnet \(10\.1\.0\.0\/16\)/);
  err(() => consolidateIpam(['10.1.0.0/33', '10.2.0.0/16'], [], ['10.2.0.1'], {}), /^Error: invalid CIDR address: 10\.1\.0\.0\/33$/);
  err(() => consolidateIpam(['10.1.0.0/33'], [], ['10.2.0.1'], {}), /invalid subnet: invalid CIDR address: 10\.1\.0\.0\/33/);
});

test('network ls sorts names in natural order', () => {
  assert.deepEqual(['net10', 'net2', 'bridge', 'net1', 'Net3'].sort(naturalCompare), ['Net3', 'bridge', 'net1', 'net2', 'net10']);
});
