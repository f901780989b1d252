import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DnsNames } from '../../src/core/dnsnames.ts';

test('names resolve only on shared networks; aliases give every address; PTR; removal', () => {
  const d = new DnsNames();
  d.add({ containerId: 'A', networkId: 'n1', names: ['c1', 'aaaaaaaaaaaa', 'web'], ipv4: '10.1.0.2', ptrName: 'c1.net1' }, 'net1');
  d.add({ containerId: 'B', networkId: 'n1', names: ['c2', 'web'], ipv4: '10.1.0.3', ipv6: 'fd00::3', ptrName: 'c2.net1' }, 'net1');
  d.add({ containerId: 'C', networkId: 'n2', names: ['c3'], ipv4: '10.2.0.2', ptrName: 'c3.net2' }, 'net2');
  assert.deepEqual(d.lookup('B', 'C1.', 4), ['10.1.0.2']);
  assert.deepEqual(d.lookup('B', 'c1.net1', 4), ['10.1.0.2']);
  assert.deepEqual(d.lookup('A', 'web', 4)!.sort(), ['10.1.0.2', '10.1.0.3']);
  assert.deepEqual(d.lookup('A', 'c2', 6), ['fd00::3']);
  assert.deepEqual(d.lookup('A', 'c1', 6), []);
  assert.equal(d.lookup('A', 'c3', 4), null, 'c3 is on another network');
  assert.equal(d.lookup('C', 'c1', 4), null);
  assert.equal(d.reverse('B', '10.1.0.2'), 'c1.net1');
  assert.equal(d.reverse('C', '10.1.0.2'), null);
  d.removeContainer('A');
  assert.equal(d.lookup('B', 'c1', 4), null);
  assert.deepEqual(d.lookup('B', 'web', 4), ['10.1.0.3']);
});

test('a name of ours followed by one of the asker\'s search domains is ours (busybox nslookup asks that way)', () => {
  const d = new DnsNames();
  d.add({ containerId: 'A', networkId: 'n1', names: ['c1'], ipv4: '10.1.0.2', ptrName: 'c1.net1' }, 'net1');
  d.add({ containerId: 'B', networkId: 'n1', names: ['c2'], ipv4: '10.1.0.3', ptrName: 'c2.net1' }, 'net1');
  assert.equal(d.lookup('B', 'c1.example.test', 4), null, 'no search list yet: forwarded');
  d.setSearch('B', ['Example.Test.', 'corp.test']);
  assert.deepEqual(d.lookup('B', 'c1.example.test', 4), ['10.1.0.2']);
  assert.deepEqual(d.lookup('B', 'C1.corp.test.', 4), ['10.1.0.2']);
  assert.deepEqual(d.lookup('B', 'c1.net1.corp.test', 4), ['10.1.0.2']);
  assert.equal(d.lookup('B', 'other.example.test', 4), null);
  assert.equal(d.lookup('B', 'example.test', 4), null);
  assert.equal(d.lookup('A', 'c2.example.test', 4), null, 'per container');
  d.removeContainer('B');
  d.add({ containerId: 'B', networkId: 'n1', names: ['c2'], ipv4: '10.1.0.3', ptrName: 'c2.net1' }, 'net1');
  assert.equal(d.lookup('B', 'c1.example.test', 4), null, 'forgotten with the container');
});

test('a --link alias on a user-defined network resolves for the linking container only, to the linked one', () => {
  const d = new DnsNames();
  d.add({ containerId: 'DB', networkId: 'n1', names: ['db1'], ipv4: '10.1.0.2', ptrName: 'db1.net1' }, 'net1');
  d.add({ containerId: 'APP', networkId: 'n1', names: ['app'], ipv4: '10.1.0.3', ptrName: 'app.net1' }, 'net1');
  d.add({ containerId: 'OTHER', networkId: 'n1', names: ['other'], ipv4: '10.1.0.4', ptrName: 'other.net1' }, 'net1');
  d.setLinks('APP', [{ alias: 'Database', name: 'db1' }]);
  assert.deepEqual(d.lookup('APP', 'database', 4), ['10.1.0.2']);
  assert.equal(d.lookup('OTHER', 'database', 4), null, 'the alias is the linking container\'s own');
  assert.deepEqual(d.lookup('OTHER', 'app', 4), ['10.1.0.3'], 'and no name of the linking container');
  d.removeContainer('APP');
  d.add({ containerId: 'APP', networkId: 'n1', names: ['app'], ipv4: '10.1.0.3', ptrName: 'app.net1' }, 'net1');
  assert.equal(d.lookup('APP', 'database', 4), null, 'links go with the container');
});
