// The bridged underlay (issue 16, reference 001's "Underlay"): `-o loom.bridge.uplink=ext0` on a bridge
// network. The sandbox's outside world plays the physical segment (198.51.100.0/24, its router .2), the
// sandbox host's ext0 is the uplink. Checked: the host's addresses and routes before, during and after
// (exactly as before once the network goes, after a refusal, after a failure at any step, after a crash
// at any step and the restart that repairs it), a restart that moves nothing twice, containers that are
// machines of the segment (reached directly by their address, no NAT, seen in the segment's ARP cache).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createSandbox, type Sandbox } from '../helpers/sandbox.ts';
import { ok, fails } from '../helpers/assert.ts';
import { UPLINK_FAILPOINTS } from '../../src/util/failpoint.ts';

let sb: Sandbox;
const skip = process.getuid?.() !== 0 ? 'needs root (network namespaces, runc)' : false;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A TCP server on the segment that answers with the peer address it sees (no NAT: the container's own). */
const PEER_ECHO = `require('net').createServer(s=>{s.end('HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\npeer='+s.remoteAddress.replace('::ffff:','')+'\\n')}).listen(9000,'198.51.100.2')`;

const loom = (...a: string[]) => ok(sb.loom(...a), `loom ${a.join(' ')}`);
const LAN = ['network', 'create', '-d', 'bridge', '--subnet', '198.51.100.0/24', '--gateway', '198.51.100.2', '-o', 'com.docker.network.bridge.name=mydr0', '-o', 'loom.bridge.uplink=ext0'];

/**
 * The host namespace's addresses (every link's, with scope, flags, label, lifetimes), its links' masters
 * and every route of every table: what a move must give back exactly.
 */
async function hostNet(): Promise<{ addrs: unknown[]; routes: unknown[] }> {
  const addrs = JSON.parse(await ok(sb.hostExec(['ip', '-j', 'addr', 'show']))) as any[];
  const routes = JSON.parse(await ok(sb.hostExec(['ip', '-j', 'route', 'show', 'table', 'all']))) as any[];
  const routes6 = JSON.parse(await ok(sb.hostExec(['ip', '-j', '-6', 'route', 'show', 'table', 'all']))) as any[];
  // IPv6 link-local addresses and their routes are each device's own, made by the kernel when DAD ends
  // (whenever that is): the move neither takes nor gives them
  const linkLocal = (a: any) => a.family === 'inet6' && a.scope === 'link';
  return {
    addrs: addrs.map((l) => ({ ifname: l.ifname, master: l.master, address: l.address, up: l.flags.includes('UP'), addr_info: l.addr_info.filter((a: any) => !linkLocal(a)) })),
    routes: [...routes, ...routes6].filter((r) => !/^(fe80|ff)/.test(r.dst)),
  };
}

async function restartDaemon(signal: NodeJS.Signals = 'SIGTERM', failpoints?: string): Promise<void> {
  if (sb.daemon) await sb.stopDaemon(signal);
  if (failpoints) process.env.LOOM_FAILPOINTS = failpoints;
  else delete process.env.LOOM_FAILPOINTS;
  try {
    await sb.startDaemon();
  } finally {
    delete process.env.LOOM_FAILPOINTS;
  }
}

/** Waits for a daemon that killed itself at a failpoint to be seen gone. */
async function died(fp: string): Promise<void> {
  for (let i = 0; i < 100 && sb.daemon; i++) await sleep(100);
  assert.equal(sb.daemon, null, `the daemon died at ${fp}`);
  assert.match(sb.daemonLog, new RegExp(`failpoint ${fp.replace('.', '\\.')}`));
}

let before0: { addrs: unknown[]; routes: unknown[] };
let during: { addrs: unknown[]; routes: unknown[] };

before(async () => {
  if (skip) return;
  sb = await createSandbox({ tag: 'uplink' });
  sb.spawnExt([process.execPath, '-e', PEER_ECHO]);
  await sb.startDaemon();
  await sb.image('box');
  before0 = await hostNet();
}, { timeout: 120_000 });

after(async () => {
  delete process.env.LOOM_FAILPOINTS;
  if (sb) await sb.cleanup();
});

test('the uplink moves to the bridge; containers are machines of the segment; network rm gives everything back', { skip, timeout: 180_000 }, async () => {
  const extMac = JSON.parse(await ok(sb.hostExec(['ip', '-j', 'link', 'show', 'ext0'])))[0].address;
  await loom(...LAN, 'lan');
  during = await hostNet();
  const link = (n: string) => (during.addrs as any[]).find((l) => l.ifname === n);
  assert.equal(link('ext0').master, 'mydr0', 'ext0 is a port of mydr0');
  assert.deepEqual(link('ext0').addr_info.filter((a: any) => a.family === 'inet'), [], 'ext0 has no IPv4 address left');
  assert.deepEqual(link('mydr0').addr_info.filter((a: any) => a.family === 'inet').map((a: any) => `${a.local}/${a.prefixlen}`), ['198.51.100.1/24']);
  assert.equal(link('mydr0').address, extMac, 'the bridge answers with the uplink\'s MAC');
  const def = (during.routes as any[]).find((r) => r.dst === 'default' && !r.table);
  assert.equal(def?.dev, 'mydr0');
  assert.equal(def?.gateway, '198.51.100.2');
  // the host still reaches its segment and its router
  await ok(sb.hostExec(['busybox', 'ping', '-c1', '-W2', '198.51.100.2']));

  // the network: the router is the gateway, the host's own address is never handed out
  const [net] = JSON.parse(await loom('network', 'inspect', 'lan'));
  assert.equal(net.Options['loom.bridge.uplink'], 'ext0');
  assert.deepEqual(net.IPAM.Config[0].AuxiliaryAddresses, { 'host-ext0': '198.51.100.1' });
  await loom('run', '-d', '--network', 'lan', '--ip', '198.51.100.20', '--name', 'web', 'box', 'httpd', '-f', '-p', '80', '-h', '/www');
  await loom('run', '-d', '--network', 'lan', '--name', 'other', 'box', 'sleep', '1d');
  const otherIp = await loom('inspect', '-f', '{{.NetworkSettings.Networks.lan.IPAddress}}', 'other');
  assert.ok(!['198.51.100.1', '198.51.100.2', '198.51.100.20'].includes(otherIp), `other got ${otherIp}`);
  assert.equal(await loom('inspect', '-f', '{{.NetworkSettings.Networks.lan.Gateway}}', 'web'), '198.51.100.2');

  // another machine of the segment reaches the container by its own address; the container reaches it,
  // unNATed, and the segment's ARP cache holds the container's MAC
  assert.match(await ok(sb.extExec(['busybox', 'wget', '-qO-', 'http://198.51.100.20/'])), /./);
  assert.match(await loom('exec', 'web', 'wget', '-qO-', 'http://198.51.100.2:9000/'), /peer=198\.51\.100\.20\b/);
  const webMac = await loom('inspect', '-f', '{{.NetworkSettings.Networks.lan.MacAddress}}', 'web');
  assert.match(await ok(sb.extExec(['ip', 'neigh', 'show', '198.51.100.20'])), new RegExp(`lladdr ${webMac}`));
  // names as on any user network
  await loom('exec', 'other', 'ping', '-c1', '-W2', 'web');
  // no masquerade, no DNAT for it
  assert.doesNotMatch(await ok(sb.hostExec(['nft', 'list', 'ruleset'])), /mydr0/);

  // the docker CLI sees the same network
  assert.equal((await ok(sb.docker('network', 'inspect', '-f', '{{index .Options "loom.bridge.uplink"}}', 'lan'))), 'ext0');

  // a restart keeps it working and moves nothing twice
  const withContainers = await hostNet();
  await restartDaemon('SIGTERM');
  assert.deepEqual(await hostNet(), withContainers, 'a restart changes nothing on the host');
  assert.match(await ok(sb.extExec(['busybox', 'wget', '-qO-', 'http://198.51.100.20/'])), /./);
  await restartDaemon('SIGKILL');
  assert.deepEqual(await hostNet(), withContainers, 'a restart after a crash changes nothing on the host');
  assert.equal(JSON.parse(await ok(sb.hostExec(['ip', '-j', 'link', 'show', 'ext0'])))[0].master, 'mydr0', 'the uplink is not swept as a leftover veth');

  await fails(sb.loom('network', 'rm', 'lan'), /active endpoints/);
  await loom('rm', '-f', 'web', 'other');
  await loom('network', 'rm', 'lan');
  assert.deepEqual(await hostNet(), before0, 'network rm gives the host back exactly what it had');
  await ok(sb.hostExec(['busybox', 'ping', '-c1', '-W2', '198.51.100.2']));
});

test('refused: a missing uplink, loom\'s own bridge, an enslaved one, --internal, no subnet; nothing changes', { skip, timeout: 120_000 }, async () => {
  await fails(sb.loom(...LAN.slice(0, -1), 'loom.bridge.uplink=nope0', 'x'), /loom\.bridge\.uplink interface was not found on the host: nope0/);
  const defBridge = await loom('network', 'inspect', '-f', '{{index .Options "com.docker.network.bridge.name"}}', 'bridge');
  await fails(sb.loom(...LAN.slice(0, -1), `loom.bridge.uplink=${defBridge}`, 'x'), new RegExp(`cannot be ${defBridge}: it is the bridge of network bridge`));
  await fails(sb.loom(...LAN.slice(0, -1), 'loom.bridge.uplink=lo', 'x'), /cannot be the loopback interface lo/);
  await fails(sb.loom(...LAN, '--internal', 'x'), /cannot be --internal/);
  await fails(sb.loom('network', 'create', '-o', 'loom.bridge.uplink=ext0', 'x'), /needs --subnet/);
  await fails(sb.loom('network', 'create', '--subnet', '198.51.100.0/24', '--gateway', '198.51.100.1', '-o', 'loom.bridge.uplink=ext0', 'x'), /gateway 198\.51\.100\.1 is ext0's own address: give --gateway the segment's router/);
  assert.deepEqual(await hostNet(), before0);
  await loom(...LAN, 'lan');
  await fails(sb.loom('network', 'create', '--subnet', '203.0.113.0/24', '-o', 'loom.bridge.uplink=ext0', 'lan2'), /ext0 is already a port of mydr0 \(network lan\)/);
  await fails(sb.loom('network', 'create', '--subnet', '203.0.113.0/24', '-o', 'loom.bridge.uplink=mydr0', 'lan2'), /cannot be mydr0: it is the bridge of network lan/);
  assert.deepEqual(await hostNet(), during);
  await loom('network', 'rm', 'lan');
  assert.deepEqual(await hostNet(), before0);
  assert.equal((await sb.loom('network', 'ls', '-q', '--filter', 'name=^x$')).stdout.trim(), '');
});

test('refused: an uplink that carries the only route to the cluster store; a store reached otherwise is no reason', { skip, timeout: 120_000 }, async () => {
  // a store on the segment (unreachable: the daemon starts without it and retries), reached through ext0 alone
  await restartDaemon();
  await sb.stopDaemon('SIGTERM');
  await sb.startDaemon(['--cluster-store', 'etcd://198.51.100.7:2379', '--cluster-advertise', '198.51.100.1']);
  try {
    await fails(sb.loom(...LAN, 'lan'), /loom\.bridge\.uplink cannot be ext0: it carries the daemon's only route to its cluster store 198\.51\.100\.7 \(--cluster-store etcd:\/\/198\.51\.100\.7:2379\)/);
    assert.deepEqual(await hostNet(), before0);
  } finally {
    await sb.stopDaemon('SIGTERM');
  }
  // one of its endpoints on loopback: the store stays in reach whatever ext0 does
  await sb.startDaemon(['--cluster-store', 'etcd://127.0.0.1:2,198.51.100.7:2379', '--cluster-advertise', '198.51.100.1']);
  try {
    await loom(...LAN, 'lan');
    await loom('network', 'rm', 'lan');
    assert.deepEqual(await hostNet(), before0);
  } finally {
    await sb.stopDaemon('SIGTERM');
  }
  await sb.startDaemon();
});

describe('a failure at each step is undone by the daemon itself', { skip }, () => {
  for (const fp of UPLINK_FAILPOINTS.filter((f) => f !== 'uplink.restore')) {
    test(`${fp} fails: the create fails and the host is as before`, { timeout: 60_000 }, async () => {
      await restartDaemon('SIGTERM', `${fp}:error`);
      await fails(sb.loom(...LAN, 'lan'), new RegExp(`failpoint ${fp.replace('.', '\\.')}`));
      assert.deepEqual(await hostNet(), before0);
      await fails(sb.loom('network', 'inspect', 'lan'), /not found/);
    });
  }
});

describe('a crash at each step is repaired by the restart', { skip }, () => {
  for (const fp of [...UPLINK_FAILPOINTS.filter((f) => f !== 'uplink.restore'), 'network.create.kernel']) {
    test(`killed at ${fp} creating: after the restart the host is as before, and the create can be repeated`, { timeout: 90_000 }, async () => {
      await restartDaemon('SIGTERM', fp);
      assert.notEqual((await sb.loom(...LAN, 'lan')).code, 0);
      await died(fp);
      await restartDaemon();
      assert.deepEqual(await hostNet(), before0, 'the half-made move is undone');
      await fails(sb.loom('network', 'inspect', 'lan'), /not found/);
      await loom(...LAN, 'lan');
      assert.deepEqual(await hostNet(), during);
      await loom('network', 'rm', 'lan');
      assert.deepEqual(await hostNet(), before0);
    });
  }
  for (const fp of ['uplink.restore', 'network.rm.kernel']) {
    test(`killed at ${fp} removing: after the restart the network is whole again, and rm works`, { timeout: 90_000 }, async () => {
      await restartDaemon();
      await loom(...LAN, 'lan');
      await restartDaemon('SIGTERM', fp);
      assert.notEqual((await sb.loom('network', 'rm', 'lan')).code, 0);
      await died(fp);
      await restartDaemon();
      assert.deepEqual(await hostNet(), during, 'the network is whole: the uplink moved once');
      await loom('run', '-d', '--network', 'lan', '--ip', '198.51.100.20', '--name', 'web', 'box', 'httpd', '-f', '-p', '80', '-h', '/www');
      assert.match(await ok(sb.extExec(['busybox', 'wget', '-qO-', 'http://198.51.100.20/'])), /./);
      await loom('rm', '-f', 'web');
      await loom('network', 'rm', 'lan');
      assert.deepEqual(await hostNet(), before0);
    });
  }
});
