// The cluster logic of overlay networks (src/core/cluster.ts) between simulated hosts sharing one
// in-process store with etcd's semantics (src/store/cluster.ts's MemoryCluster): network records, the
// cluster-wide index of names, subnets and VNIs, address claims, removal checks, leases, remote peers and
// names. The real store (etcd) and the kernel side are exercised by test/e2e/overlay.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryCluster, type MemoryClusterStore } from '../../src/store/cluster.ts';
import { Cluster, KEYS, noClusterStoreError, parseClusterFlags } from '../../src/core/cluster.ts';
import { describeEtcdError, parseEtcdUrl } from '../../src/store/etcd.ts';
import { parseVxlanIds, validateOverlayOptions, type Peer } from '../../src/drivers/overlay.ts';
import { DnsNames } from '../../src/core/dnsnames.ts';
import type { EndpointRecord, NetworkRecord } from '../../src/core/types.ts';
import type { Logger } from '../../src/util/log.ts';
import { LoomError } from '../../src/util/errors.ts';
import { parseCidr } from '../../src/ipam/ipam.ts';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

class Host {
  readonly nets = new Map<string, NetworkRecord>();
  readonly peers = new Map<string, Peer>();
  readonly dns = new DnsNames();
  readonly cluster: Cluster;
  readonly store: MemoryClusterStore;
  constructor(m: MemoryCluster, id: string, advertise: string) {
    this.store = m.client();
    this.cluster = new Cluster(this.store, { hostId: id, advertise, ttl: 5, log: quiet });
    this.cluster.attach({
      list: () => [...this.nets.values()],
      adoptGlobal: async (n) => { this.nets.set(n.id, n); },
      dropGlobal: async (id) => { this.nets.delete(id); },
    }, {
      addPeer: async (netId, p) => { this.peers.set(`${netId}/${p.ip}`, p); },
      removePeer: async (netId, ip) => { this.peers.delete(`${netId}/${ip}`); },
    }, this.dns);
    this.dns.onAdd = (e, netName) => this.cluster.updateNames(e, netName);
  }
}

let seq = 0;
const overlay = (name: string, over: Partial<NetworkRecord> = {}): NetworkRecord => ({
  id: `${(++seq).toString(16).padStart(4, '0')}${'0'.repeat(60)}`, name, driver: 'overlay', scope: 'global', created: '2026-01-01T00:00:00Z',
  enableIPv6: false, ipam: { driver: 'default', options: {}, config: [] }, internal: false, attachable: false, options: {}, labels: {}, ...over,
});

const endpoint = (n: NetworkRecord, ip: string, id = `ep${ip}`): EndpointRecord => ({
  id, networkId: n.id, networkName: n.name, ifname: 'eth0', mac: `02:42:0a:00:00:${Number(ip.split('.')[3]).toString(16).padStart(2, '0')}`,
  ipv4: ip, prefix4: 24, gateway4: '10.0.0.1', aliases: [], phase: 'creating',
});

async function twoHosts() {
  const m = new MemoryCluster();
  const a = new Host(m, 'host-a', '203.0.113.1');
  const b = new Host(m, 'host-b', '203.0.113.2');
  await a.cluster.start();
  await b.cluster.start();
  const settle = async () => {
    await a.cluster.flush();
    await b.cluster.flush();
  };
  return { m, a, b, settle };
}

const rejects = async (p: Promise<unknown>, status: number, re: RegExp) => {
  await assert.rejects(p, (e: unknown) => e instanceof LoomError && e.status === status && re.test(e.message));
};

test('a network created on one host is every host\'s: Docker\'s GlobalDefault subnets, VNIs from 256', async () => {
  const { a, b, settle } = await twoHosts();
  const n1 = overlay('ov1');
  await a.cluster.createNetwork(n1, []);
  assert.deepEqual(n1.ipam.config, [{ Subnet: '10.0.0.0/24', Gateway: '10.0.0.1' }]);
  assert.equal(n1.options['com.docker.network.driver.overlay.vxlanid_list'], '256');
  await settle();
  assert.deepEqual(b.nets.get(n1.id)?.ipam, n1.ipam);
  // the next one skips what the cluster has and what this host uses locally
  const n2 = overlay('ov2');
  await b.cluster.createNetwork(n2, [parseCidr('10.0.1.0/24')]);
  assert.equal(n2.ipam.config[0]!.Subnet, '10.0.2.0/24');
  assert.equal(n2.options['com.docker.network.driver.overlay.vxlanid_list'], '257');
  await rejects(b.cluster.createNetwork(overlay('ov1'), []), 409, /network with name ov1 already exists/);
  await rejects(a.cluster.createNetwork(overlay('ov3', { ipam: { driver: 'default', options: {}, config: [{ Subnet: '10.0.0.128/25', Gateway: '10.0.0.129' }] } }), []), 403, /Pool overlaps/);
  await rejects(a.cluster.createNetwork(overlay('ov3', { options: { 'com.docker.network.driver.overlay.vxlanid_list': '257' } }), []), 403, /failed to reserve vxlan id 257/);
  const n4 = overlay('ov4', { options: { 'com.docker.network.driver.overlay.vxlanid_list': '4097' } });
  await a.cluster.createNetwork(n4, []);
  assert.equal(n4.options['com.docker.network.driver.overlay.vxlanid_list'], '4097');
});

test('two hosts creating the same name at once: one wins, the other hears Docker\'s conflict', async () => {
  const { m, a, b, settle } = await twoHosts();
  m.delayMs = 2;
  const results = await Promise.allSettled([a.cluster.createNetwork(overlay('same'), []), b.cluster.createNetwork(overlay('same'), [])]);
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
  assert.match(String(lost.reason.message), /network with name same already exists/);
  // and two different ones at once get different subnets and VNIs
  const x = overlay('x'), y = overlay('y');
  await Promise.all([a.cluster.createNetwork(x, []), b.cluster.createNetwork(y, [])]);
  assert.notEqual(x.ipam.config[0]!.Subnet, y.ipam.config[0]!.Subnet);
  assert.notEqual(x.options['com.docker.network.driver.overlay.vxlanid_list'], y.options['com.docker.network.driver.overlay.vxlanid_list']);
  await settle();
  assert.equal([...a.nets.values()].length, 3);
});

test('an address is one host\'s: a second claim loses, concurrent claims have one winner', async () => {
  const { m, a, b, settle } = await twoHosts();
  const n = overlay('ov');
  await a.cluster.createNetwork(n, []);
  await settle();
  assert.equal(await a.cluster.claim(n, endpoint(n, '10.0.0.2', 'e1')), true);
  await settle();
  assert.equal(b.cluster.isTaken(n.id, '10.0.0.2'), true);
  assert.equal(await b.cluster.claim(n, endpoint(n, '10.0.0.2', 'e2')), false);
  m.delayMs = 2;
  const wins = await Promise.all([a.cluster.claim(n, endpoint(n, '10.0.0.3', 'e3')), b.cluster.claim(n, endpoint(n, '10.0.0.3', 'e4'))]);
  assert.deepEqual(wins.filter(Boolean).length, 1);
  // B's own endpoint becomes A's peer: its MAC behind B's tunnel address
  m.delayMs = 0;
  assert.equal(await b.cluster.claim(n, endpoint(n, '10.0.0.9', 'e9')), true);
  await settle();
  assert.deepEqual(a.peers.get(`${n.id}/10.0.0.9`), { ip: '10.0.0.9', mac: '02:42:0a:00:00:09', vtep: '203.0.113.2' });
  b.cluster.release(endpoint(n, '10.0.0.9', 'e9'));
  await settle();
  assert.equal(a.peers.has(`${n.id}/10.0.0.9`), false);
  assert.equal(a.cluster.isTaken(n.id, '10.0.0.9'), false);
});

test('names of endpoints on other hosts resolve; network rm is refused while any host has endpoints', async () => {
  const { a, b, settle } = await twoHosts();
  const n = overlay('ov');
  await a.cluster.createNetwork(n, []);
  await settle();
  const ep = endpoint(n, '10.0.0.5', 'ffffeeeeddddcccc');
  assert.equal(await b.cluster.claim(n, ep), true);
  b.dns.add({ containerId: 'c-b', networkId: n.id, names: ['web', 'c-b-short'], ipv4: '10.0.0.5', ptrName: 'web.ov' }, 'ov');
  await settle();
  // a container of A on the network asks for B's container
  a.dns.add({ containerId: 'c-a', networkId: n.id, names: ['client'], ipv4: '10.0.0.2', ptrName: 'client.ov' }, 'ov');
  assert.deepEqual(a.dns.lookup('c-a', 'web', 4), ['10.0.0.5']);
  assert.equal(a.dns.reverse('c-a', '10.0.0.5'), 'web.ov');
  await rejects(a.cluster.removeNetwork(n), 403, /^error while removing network: network ov has active endpoints \(name:"web" id:"ffffeeeedddd"\)$/);
  // the refusal leaves the network usable
  assert.equal(await a.cluster.claim(n, endpoint(n, '10.0.0.6', 'e6')), true);
  a.cluster.release(endpoint(n, '10.0.0.6', 'e6'));
  b.cluster.release(ep);
  await settle();
  assert.equal(a.dns.lookup('c-a', 'web', 4), null);
  await a.cluster.removeNetwork(n);
  await settle();
  assert.equal(b.nets.has(n.id), false);
  // gone from the index too: the name and subnet are free
  const again = overlay('ov');
  await b.cluster.createNetwork(again, []);
  assert.equal(again.ipam.config[0]!.Subnet, '10.0.0.0/24');
});

test('no endpoint slips in while a removal counts them', async () => {
  const { a, b, settle } = await twoHosts();
  const n = overlay('ov');
  await a.cluster.createNetwork(n, []);
  await settle();
  // the record is marked first: a claim that starts then is refused
  const cur = (await a.store.get(KEYS.network(n.id)))!;
  await a.store.txn([], [{ put: KEYS.network(n.id), value: JSON.stringify({ ...JSON.parse(cur.value), deleting: true }) }]);
  await rejects(b.cluster.claim(n, endpoint(n, '10.0.0.2')), 409, /network ov is being removed/);
});

test('a host whose lease runs out loses its endpoints everywhere, and puts them back when it can', async () => {
  const { m, a, b, settle } = await twoHosts();
  const n = overlay('ov');
  await a.cluster.createNetwork(n, []);
  await settle();
  assert.equal(await b.cluster.claim(n, endpoint(n, '10.0.0.7', 'e7')), true);
  b.dns.add({ containerId: 'c7', networkId: n.id, names: ['seven'], ipv4: '10.0.0.7', ptrName: 'seven.ov' }, 'ov');
  a.dns.add({ containerId: 'c-a', networkId: n.id, names: ['client'], ipv4: '10.0.0.2', ptrName: 'client.ov' }, 'ov');
  await settle();
  assert.ok(a.peers.has(`${n.id}/10.0.0.7`));
  assert.deepEqual(a.dns.lookup('c-a', 'seven', 4), ['10.0.0.7']);
  m.expireLease(b.store.lease);
  await a.cluster.flush();
  // (B hears of it too and republishes, in the background; until then A has no peer and no name for it)
  for (let i = 0; i < 200 && !a.peers.has(`${n.id}/10.0.0.7`); i++) await new Promise((r) => setImmediate(r)).then(settle);
  assert.ok(a.peers.has(`${n.id}/10.0.0.7`), 'B put its endpoint back under a new lease');
  assert.deepEqual(a.dns.lookup('c-a', 'seven', 4), ['10.0.0.7']);
  // and a dead host (no republishing) leaves nothing behind
  await b.cluster.close();
  m.expireLease(b.store.lease);
  await a.cluster.flush();
  assert.equal(a.peers.has(`${n.id}/10.0.0.7`), false);
  assert.equal(a.dns.lookup('c-a', 'seven', 4), null);
  assert.equal(a.cluster.isTaken(n.id, '10.0.0.7'), false);
});

test('after a restart, reconcile writes this host\'s endpoints again and drops records of endpoints gone', async () => {
  const m = new MemoryCluster();
  const a = new Host(m, 'host-a', '203.0.113.1');
  await a.cluster.start();
  const n = overlay('ov');
  await a.cluster.createNetwork(n, []);
  await a.cluster.flush();
  const keep = endpoint(n, '10.0.0.2', 'keep');
  await a.cluster.claim(n, keep);
  await a.cluster.claim(n, endpoint(n, '10.0.0.3', 'gone'));
  await a.cluster.close();
  // the same host again (same id), with only `keep` still running
  const a2 = new Host(m, 'host-a', '203.0.113.1');
  await a2.cluster.start();
  await a2.cluster.flush();
  a2.dns.add({ containerId: 'ck', networkId: n.id, names: ['keeper'], ipv4: '10.0.0.2', ptrName: 'keeper.ov' }, 'ov');
  await a2.cluster.reconcile([keep]);
  await a2.cluster.flush();
  const { kvs } = await a2.store.list(KEYS.epsOf(n.id));
  assert.deepEqual(kvs.map((k) => k.key), [KEYS.ep(n.id, '10.0.0.2')]);
  assert.deepEqual(JSON.parse(kvs[0]!.value).names, ['keeper']);
  // under the new lease: the old one's expiry takes nothing
  m.expireLease(a.store.lease);
  assert.equal((await a2.store.list(KEYS.epsOf(n.id))).kvs.length, 1);
});

test('daemon flags and options, checked as dockerd does', () => {
  assert.equal(parseClusterFlags(undefined, undefined, []), null);
  assert.throws(() => parseClusterFlags(undefined, '203.0.113.1', []), /--cluster-advertise must be accompanied by --cluster-store configuration/);
  assert.throws(() => parseClusterFlags('etcd://203.0.113.10:2379', undefined, []), /--cluster-store must be accompanied by --cluster-advertise/);
  assert.deepEqual(parseClusterFlags('etcd://203.0.113.10:2379', '203.0.113.1:2376', []), { advertise: '203.0.113.1', ttl: 20, connection: {} });
  assert.deepEqual(parseClusterFlags('etcd://e:2379', '203.0.113.1', ['discovery.ttl=5', 'discovery.heartbeat=2']), { advertise: '203.0.113.1', ttl: 5, connection: {} });
  // Docker's TLS option names for the store, and etcd's user authentication
  assert.deepEqual(parseClusterFlags('etcd://e:2379', '203.0.113.1', ['kv.cacertfile=/c/ca.pem', 'kv.certfile=/c/c.pem', 'kv.keyfile=/c/k.pem', 'kv.username=loom', 'kv.password=a=b'])!.connection,
    { caFile: '/c/ca.pem', certFile: '/c/c.pem', keyFile: '/c/k.pem', username: 'loom', password: 'a=b' });
  assert.throws(() => parseClusterFlags('etcd://e:2379', '203.0.113.1', ['kv.certfile=/c/c.pem', 'kv.cacertfile=/c/ca.pem']), /kv\.certfile and kv\.keyfile go together/);
  assert.throws(() => parseClusterFlags('etcd://e:2379', '203.0.113.1', ['kv.password=x']), /kv\.password needs kv\.username/);
  assert.throws(() => parseClusterFlags('etcd://e:2379', '203.0.113.1', ['kv.cacertfile=']), /kv\.cacertfile needs a value/);
  assert.throws(() => parseClusterFlags('etcd://e:2379', '203.0.113.1', ['kv.tls=1']), /unsupported --cluster-store-opt kv\.tls=1/);
  assert.deepEqual(parseEtcdUrl('etcd://a:1,b', true), ['https://a:1', 'https://b:2379']);
  // what gRPC says becomes a few words under the store's name
  assert.deepEqual(describeEtcdError(new Error('14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED 203.0.113.10:2379')), { status: 503, reason: 'connection refused' });
  assert.deepEqual(describeEtcdError(new Error('4 DEADLINE_EXCEEDED: Deadline exceeded')), { status: 503, reason: 'no answer within 4.5 s' });
  assert.equal(describeEtcdError(Object.assign(new Error('etcdserver: authentication failed, invalid user ID or password'), { name: 'EtcdAuthenticationFailedError' })).status, 500);
  assert.throws(() => parseClusterFlags('etcd://e:2379', '203.0.113.1', ['discovery.ttl=x']), /discovery\.ttl/);
  assert.throws(() => parseClusterFlags('etcd://e:2379', 'no-such-if0', []), /discovery advertise parsing failed/);
  assert.equal(parseClusterFlags('etcd://e:2379', 'lo:2376', [])!.advertise, '127.0.0.1');
  assert.deepEqual(parseEtcdUrl('etcd://203.0.113.10:2379'), ['http://203.0.113.10:2379']);
  assert.deepEqual(parseEtcdUrl('etcd://a:1,b/path'), ['http://a:1', 'http://b:2379']);
  assert.throws(() => parseEtcdUrl('consul://c:8500'), /etcd only/);
  assert.throws(() => parseEtcdUrl('203.0.113.10:2379'), /expected etcd:\/\/HOST:PORT/);
  assert.deepEqual(parseVxlanIds('256,4097'), [256, 4097]);
  assert.throws(() => parseVxlanIds('abc'), /invalid vxlan id value "abc" passed/);
  assert.throws(() => parseVxlanIds('16777216'), /invalid vxlan id value "16777216" passed/);
  assert.throws(() => validateOverlayOptions(overlay('v6', { enableIPv6: true })), /IPv6/);
  assert.throws(() => validateOverlayOptions(overlay('m', { options: { 'com.docker.network.driver.mtu': 'big' } })), /failed to parse big/);
  const e = noClusterStoreError({ Subnet: '10.9.0.0/24' });
  assert.equal(e.status, 400);
  assert.match(e.message, /^failed to parse pool request for address space "GlobalDefault" pool "10\.9\.0\.0\/24" subpool "": cannot find address space GlobalDefault \(most likely the backing datastore is not configured\)/);
});

test('dual-stack overlays: an IPv4 subnet from the pool next to a given IPv6 one; each address claimed on its own; peers, A and AAAA across hosts', async () => {
  const { a, b, settle } = await twoHosts();
  const v6only = overlay('ov6', { enableIPv6: true, ipam: { driver: 'default', options: {}, config: [{ Subnet: 'fd00:9::/64', Gateway: 'fd00:9::1' }] } });
  await a.cluster.createNetwork(v6only, []);
  assert.deepEqual(v6only.ipam.config, [{ Subnet: '10.0.0.0/24', Gateway: '10.0.0.1' }, { Subnet: 'fd00:9::/64', Gateway: 'fd00:9::1' }]);
  await rejects(b.cluster.createNetwork(overlay('ov6b', { enableIPv6: true, ipam: { driver: 'default', options: {}, config: [{ Subnet: 'fd00:9::/80', Gateway: 'fd00:9::1' }] } }), []), 403, /Pool overlaps/);
  await settle();
  const n = v6only;
  const ep = { ...endpoint(n, '10.0.0.2', 'e1'), ipv6: 'fd00:9::2', prefix6: 64 };
  assert.equal(await a.cluster.claim(n, ep), true);
  a.dns.add({ containerId: 'c-a', networkId: n.id, names: ['web'], ipv4: '10.0.0.2', ipv6: 'fd00:9::2', ptrName: 'web.ov6' }, 'ov6');
  await settle();
  // B: two peers (ARP and NDP entries) to one MAC behind A, and the names with both addresses
  assert.deepEqual(b.peers.get(`${n.id}/10.0.0.2`), { ip: '10.0.0.2', mac: ep.mac, vtep: '203.0.113.1' });
  assert.deepEqual(b.peers.get(`${n.id}/fd00:9::2`), { ip: 'fd00:9::2', mac: ep.mac, vtep: '203.0.113.1' });
  b.dns.add({ containerId: 'c-b', networkId: n.id, names: ['client'], ipv4: '10.0.0.3', ptrName: 'client.ov6' }, 'ov6');
  assert.deepEqual(b.dns.lookup('c-b', 'web', 6), ['fd00:9::2']);
  assert.deepEqual(b.dns.lookup('c-b', 'web', 4), ['10.0.0.2']);
  assert.equal(b.cluster.remoteEndpoints(n.id).length, 1);
  // an endpoint whose IPv6 address is taken loses its claim, though its IPv4 one is free
  assert.equal(b.cluster.isTaken(n.id, 'fd00:9::2'), true);
  assert.equal(await b.cluster.claim(n, { ...endpoint(n, '10.0.0.4', 'e2'), ipv6: 'fd00:9::2', prefix6: 64 }), false);
  assert.equal(b.cluster.isTaken(n.id, '10.0.0.4'), false);
  // network rm names the endpoint once
  await rejects(b.cluster.removeNetwork(n), 403, /has active endpoints \(name:"web" id:"e1"\)$/);
  // released: both peers and the names go
  a.cluster.release(ep);
  await settle();
  assert.equal(b.peers.size, 0);
  assert.equal(b.dns.lookup('c-b', 'web', 6), null);
  assert.equal(b.cluster.isTaken(n.id, 'fd00:9::2'), false);
});
