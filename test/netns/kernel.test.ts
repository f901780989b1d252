// The kernel layer against the real kernel, inside namespaces of this test's own (named with its PID):
// a "host" namespace with a bridge, two container namespaces plugged into it by veth pairs whose peers
// are born inside them, a real ping between them, then a teardown that must leave nothing behind.
// The machine's own network namespace is never configured: every link operation goes through a socket
// opened inside one of these namespaces.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import {
  bindNetns, createNetns, deleteNetns, moveNetns, netnsExists, openNetnsFd, sameNetns, withNetns,
} from '../../src/kernel/netns.ts';
import { Rtnl, configureInterface } from '../../src/kernel/rtnl.ts';
import { readSysctl, writeSysctl } from '../../src/kernel/sysctl.ts';

const isRoot = process.getuid?.() === 0;
const pid = process.pid;
const nsName = (s: string) => `loomt-k-${pid}-${s}`;
const nsPath = (s: string) => `/run/netns/${nsName(s)}`; // where `ip netns exec` finds them
const HOST = nsPath('host'), C1 = nsPath('c1'), C2 = nsPath('c2'), ALIAS = nsPath('alias'), MOVED = nsPath('moved');
const ALL = [HOST, C1, C2, ALIAS, MOVED];
const BRIDGE = 'loomtbr0';
const veth = (i: number) => `vethk${(pid % 0xffff).toString(16)}${i}`.slice(0, 15);

const codeOf = (e: unknown) => (e as { code?: string }).code;
const netnsLines = () => spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.includes(`loomt-k-${pid}-`));
const ourMounts = () => fs.readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.includes(`loomt-k-${pid}-`));

/** ping from inside a namespace: iputils if installed, else busybox (scripts/setup installs busybox-static). */
function ping(ns: string, addr: string): { ok: boolean; out: string } {
  const haveIputils = spawnSync('sh', ['-c', 'command -v ping'], { encoding: 'utf8' }).status === 0;
  const cmd = haveIputils ? ['ping'] : ['busybox', 'ping'];
  if (addr.includes(':')) cmd.push('-6');
  const r = spawnSync('ip', ['netns', 'exec', nsName(ns), ...cmd, '-c1', '-W1', addr], { encoding: 'utf8', timeout: 10_000 });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
}

describe('kernel: namespaces, rtnetlink, sysctl', { skip: isRoot ? false : 'needs root: creates network namespaces, bridges and veth pairs' }, () => {
  let hostRt: Rtnl | null = null;
  const opened: Rtnl[] = [];
  const open = (p: string) => {
    const r = Rtnl.open(p);
    opened.push(r);
    return r;
  };
  let before_ns: string[] = [];

  before(() => {
    before_ns = netnsLines();
    for (const p of ALL) deleteNetns(p); // leftovers of a crashed run with a recycled PID
    createNetns(HOST);
    hostRt = open(HOST);
  });

  after(() => {
    for (const r of opened) r.close();
    // Deleting the host namespace takes the bridge and every host-side veth (and so their peers) with it.
    for (const p of ALL) deleteNetns(p);
  });

  test('namespaces: create, exists, EEXIST, enter, compare, bind, move', () => {
    assert.ok(netnsExists(HOST));
    assert.equal(netnsExists('/tmp'), false);
    assert.equal(netnsExists(nsPath('absent')), false);
    assert.throws(() => createNetns(HOST), (e: Error) => codeOf(e) === 'EEXIST' && e.message.includes(HOST));

    const self = fs.readlinkSync('/proc/thread-self/ns/net');
    const hostIno = fs.statSync(HOST).ino;
    const inside = withNetns(HOST, () => fs.readlinkSync('/proc/thread-self/ns/net'));
    assert.equal(inside, `net:[${hostIno}]`);
    assert.equal(fs.readlinkSync('/proc/thread-self/ns/net'), self, 'back in the original namespace');

    // Nesting returns to the outer namespace, and a throwing callback still switches back.
    createNetns(C1);
    withNetns(HOST, () => {
      withNetns(C1, () => assert.equal(fs.readlinkSync('/proc/thread-self/ns/net'), `net:[${fs.statSync(C1).ino}]`));
      assert.equal(fs.readlinkSync('/proc/thread-self/ns/net'), `net:[${hostIno}]`);
    });
    assert.throws(() => withNetns(HOST, () => { throw new Error('boom'); }), /boom/);
    assert.equal(fs.readlinkSync('/proc/thread-self/ns/net'), self);

    assert.ok(sameNetns(HOST, HOST));
    assert.equal(sameNetns(HOST, C1), false);
    assert.equal(sameNetns(HOST, '/proc/thread-self/ns/net'), false);

    bindNetns(C1, ALIAS);
    assert.ok(sameNetns(ALIAS, C1));
    assert.throws(() => bindNetns(C1, ALIAS), (e: Error) => codeOf(e) === 'EEXIST');
    moveNetns(ALIAS, MOVED);
    assert.equal(netnsExists(ALIAS), false);
    assert.equal(fs.existsSync(ALIAS), false);
    assert.ok(sameNetns(MOVED, C1));
    deleteNetns(MOVED);
    deleteNetns(MOVED); // absent: fine
    assert.equal(fs.existsSync(MOVED), false);
    assert.ok(netnsExists(C1), 'the namespace itself lives on under its first name');

    const fd = openNetnsFd(C1);
    fs.closeSync(fd);
    assert.throws(() => openNetnsFd(nsPath('absent')), (e: Error) => codeOf(e) === 'ENOENT');
  });

  test('sysctl: per namespace', () => {
    writeSysctl('net.ipv4.ip_forward', '1', HOST);
    assert.equal(readSysctl('net.ipv4.ip_forward', HOST), '1');
    // a fresh namespace has its own value, copied from the machine's (IPv4 devconf is inherited from init_net)
    const machine = fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
    assert.equal(readSysctl('net/ipv4/ip_forward', C1), machine, 'a fresh namespace has its own value');
    writeSysctl('net.ipv4.conf.all.rp_filter', '2', C1);
    assert.equal(readSysctl('net.ipv4.conf.all.rp_filter', C1), '2');
    assert.throws(() => readSysctl('net.ipv4.no_such_key', HOST), (e: Error) => codeOf(e) === 'ENOENT' && e.message.includes('no_such_key'));
  });

  test('bridge, veth into container namespaces, configureInterface, ping', async () => {
    const rt = hostRt!;
    const br = await rt.createBridge(BRIDGE, { up: true, mac: '02:00:5e:00:00:01' });
    await assert.rejects(rt.createBridge(BRIDGE), (e: Error) => codeOf(e) === 'EEXIST' && e.message.startsWith(`create bridge ${BRIDGE}`));
    const brInfo = await rt.getLink(BRIDGE);
    assert.equal(brInfo?.index, br);
    assert.equal(brInfo?.kind, 'bridge');
    assert.equal(brInfo?.mac, '02:00:5e:00:00:01');
    assert.equal(brInfo?.up, true);
    await rt.addAddress(br, '172.30.0.1/24', { nodad: true });
    await rt.addAddress(br, 'fd00:30::1/64', { nodad: true });
    await rt.addAddress(br, '172.30.0.1/24', { ignoreExisting: true });
    await assert.rejects(rt.addAddress(br, '172.30.0.1/24'), (e: Error) => codeOf(e) === 'EEXIST');

    createNetns(C2);
    const ctrs = [
      { ns: C1, name: 'c1', i: 2, mac: '02:42:ac:1e:00:02' },
      { ns: C2, name: 'c2', i: 3, mac: '02:42:ac:1e:00:03' },
    ];
    for (const c of ctrs) {
      const idx = await rt.createVeth({ name: veth(c.i), peerName: 'eth0', peerNetnsPath: c.ns, peerMac: c.mac, mtu: 1450, master: br, up: true });
      const host = await rt.getLink(idx);
      assert.equal(host?.name, veth(c.i));
      assert.equal(host?.kind, 'veth');
      assert.equal(host?.master, br);
      assert.equal(host?.up, true);
      assert.equal(host?.mtu, 1450);
      await configureInterface(c.ns, {
        ifname: 'eth0',
        addresses: [`172.30.0.${c.i}/24`, `fd00:30::${c.i}/64`],
        gateway4: '172.30.0.1',
        gateway6: 'fd00:30::1',
        loUp: true,
      });
    }
    await assert.rejects(
      rt.createVeth({ name: veth(2), peerName: 'eth1', peerNetnsPath: C1 }),
      (e: Error) => codeOf(e) === 'EEXIST' && e.message.startsWith(`create veth ${veth(2)}`),
    );
    await assert.rejects(rt.createVeth({ name: veth(9), peerName: 'eth0', peerNetnsPath: nsPath('absent') }), (e: Error) => codeOf(e) === 'ENOENT');
    assert.equal(await rt.getLink(veth(9)), null, 'a failed attach leaves no link');

    // What the container sees.
    const c1 = open(C1);
    const eth0 = await c1.getLink('eth0');
    assert.ok(eth0);
    assert.equal(eth0.mac, '02:42:ac:1e:00:02');
    assert.equal(eth0.up, true);
    assert.equal(eth0.mtu, 1450);
    assert.equal((await c1.getLink('lo'))?.up, true);
    const addrs = (await c1.listAddresses(eth0.index)).map((a) => a.cidr);
    assert.ok(addrs.includes('172.30.0.2/24'), addrs.join(' '));
    assert.ok(addrs.includes('fd00:30::2/64'), addrs.join(' '));
    const r4 = await c1.listRoutes(4);
    assert.ok(r4.some((r) => r.dst === 'default' && r.gateway === '172.30.0.1' && r.index === eth0.index), JSON.stringify(r4));
    assert.ok(r4.some((r) => r.dst === '172.30.0.0/24' && r.index === eth0.index));
    const r6 = await c1.listRoutes(6);
    assert.ok(r6.some((r) => r.dst === 'default' && r.gateway === 'fd00:30::1' && r.family === 6), JSON.stringify(r6));
    // configureInterface again: idempotent.
    await configureInterface(C1, { ifname: 'eth0', addresses: ['172.30.0.2/24'], gateway4: '172.30.0.1' });
    await assert.rejects(configureInterface(C1, { ifname: 'nope0', addresses: [] }), (e: Error) => codeOf(e) === 'ENODEV' && e.message.includes('nope0'));

    // The host ends stay out of IPv6 (no link-local address to flood the bridge with).
    const hostAddrs = await rt.listAddresses((await rt.getLink(veth(2)))!.index);
    assert.deepEqual(hostAddrs, []);

    // Real traffic over the bridge: container to container (v4, v6) and container to gateway.
    for (const [from, to] of [['c1', '172.30.0.3'], ['c2', '172.30.0.2'], ['c1', '172.30.0.1'], ['c1', 'fd00:30::3']] as const) {
      const r = ping(from, to);
      assert.ok(r.ok, `ping ${to} from ${from}: ${r.out}`);
    }
    assert.equal(ping('c1', '172.30.0.99').ok, false, 'and ping does fail for an address nobody has');
  });

  test('links, addresses and routes: set, list, delete, absent is fine', async () => {
    const rt = hostRt!;
    const v = (await rt.getLink(veth(2)))!;
    await rt.setLink(v.index, { mtu: 1400 });
    assert.equal((await rt.getLink(v.index))?.mtu, 1400);
    await rt.setLink(v.index, { master: null, up: false });
    let l = await rt.getLink(v.index);
    assert.equal(l?.master, undefined);
    assert.equal(l?.up, false);
    await rt.setLink(v.index, { name: `${veth(2)}x`.slice(0, 15) });
    assert.equal((await rt.getLink(v.index))?.name, `${veth(2)}x`.slice(0, 15));
    await rt.setLink(v.index, { name: veth(2), master: (await rt.getLink(BRIDGE))!.index, up: true, mac: '02:00:00:00:00:aa' });
    l = await rt.getLink(veth(2));
    assert.equal(l?.master, (await rt.getLink(BRIDGE))!.index);
    assert.equal(l?.up, true);
    assert.equal(l?.mac, '02:00:00:00:00:aa');

    // A second interface in a container, IPv4 only: no IPv6 link-local address on it (as Docker does).
    await rt.createVeth({ name: veth(4), peerName: 'eth1', peerNetnsPath: C2, master: (await rt.getLink(BRIDGE))!.index, up: true });
    await configureInterface(C2, { ifname: 'eth1', addresses: ['172.30.0.4/24'], mtu: 1400 });
    const c2 = open(C2);
    const eth1 = (await c2.getLink('eth1'))!;
    assert.equal(eth1.up, true);
    assert.equal(eth1.mtu, 1400);
    assert.deepEqual((await c2.listAddresses(eth1.index)).map((a) => a.cidr), ['172.30.0.4/24']);
    assert.ok((await c2.listAddresses((await c2.getLink('eth0'))!.index)).some((a) => a.cidr.startsWith('fe80:')), 'eth0 (dual stack) keeps its link-local address');
    await rt.deleteLink(veth(4));
    assert.equal(await c2.getLink('eth1'), null);

    const names = (await rt.listLinks()).map((x) => x.name).sort();
    assert.deepEqual(names, ['lo', BRIDGE, veth(2), veth(3)].sort());

    // Many requests at once on one socket: flow control, and dumps (one at a time per socket) interleaved.
    const many = await Promise.all([
      ...Array.from({ length: 150 }, (_, i) => rt.getLink(i % 2 ? BRIDGE : 'loomtnone0')),
      rt.listLinks(), rt.listRoutes(), rt.listAddresses(), rt.listLinks(),
    ]);
    assert.equal(many.filter((x) => x && !Array.isArray(x) && x.name === BRIDGE).length, 75);
    assert.equal(many.filter((x) => x === null).length, 75);
    assert.equal((many[150] as unknown[]).length, 4);

    const br = (await rt.getLink(BRIDGE))!.index;
    await rt.addRoute({ dst: '10.99.0.0/16', gateway: '172.30.0.2' });
    await assert.rejects(rt.addRoute({ dst: '10.99.0.0/16', gateway: '172.30.0.2' }), (e: Error) => codeOf(e) === 'EEXIST' && e.message.includes('10.99.0.0/16'));
    await rt.addRoute({ dst: '10.99.0.0/16', gateway: '172.30.0.3', replace: true });
    await rt.addRoute({ dst: '10.98.0.0/16', index: br });
    await rt.addRoute({ dst: 'fd00:99::/64', gateway: 'fd00:30::2' });
    let routes = await rt.listRoutes();
    assert.ok(routes.some((r) => r.dst === '10.99.0.0/16' && r.gateway === '172.30.0.3' && r.table === 254));
    assert.ok(routes.some((r) => r.dst === '10.98.0.0/16' && r.index === br && !r.gateway));
    assert.ok(routes.some((r) => r.dst === 'fd00:99::/64' && r.gateway === 'fd00:30::2' && r.family === 6));
    await rt.delRoute({ dst: '10.99.0.0/16' });
    await rt.delRoute({ dst: '10.98.0.0/16', index: br });
    await rt.delRoute({ dst: 'fd00:99::/64' });
    await rt.delRoute({ dst: '10.99.0.0/16' }); // absent: fine
    routes = await rt.listRoutes();
    assert.ok(!routes.some((r) => ['10.99.0.0/16', '10.98.0.0/16', 'fd00:99::/64'].includes(r.dst)), JSON.stringify(routes));

    await rt.addAddress(br, '172.31.0.1/24');
    assert.ok((await rt.listAddresses(br)).some((a) => a.cidr === '172.31.0.1/24' && a.family === 4));
    await rt.delAddress(br, '172.31.0.1/24');
    await rt.delAddress(br, '172.31.0.1/24'); // absent: fine
    assert.ok(!(await rt.listAddresses()).some((a) => a.cidr === '172.31.0.1/24'));

    await rt.deleteLink('loomtnone0');
    await rt.deleteLink(999_999);
    await assert.rejects(rt.addAddress(999_999, '10.0.0.1/8'), (e: Error) => codeOf(e) === 'ENODEV' && e.message.includes('10.0.0.1/8'));
    await assert.rejects(rt.addAddress(br, 'not-an-ip/8'), (e: Error) => codeOf(e) === 'EINVAL');
    assert.equal(await rt.getLink('loomtnone0'), null);
  });

  test('teardown leaves nothing behind', async () => {
    const rt = hostRt!;
    await rt.deleteLink(veth(2));
    assert.equal(await rt.getLink(veth(2)), null);
    const c1 = open(C1);
    assert.equal(await c1.getLink('eth0'), null, 'the peer went with the host end');
    await rt.deleteLink(veth(3));
    await rt.deleteLink(BRIDGE);
    assert.deepEqual((await rt.listLinks()).map((l) => l.name), ['lo']);

    for (const r of opened.splice(0)) r.close();
    hostRt = null;
    for (const p of [C1, C2, HOST]) {
      deleteNetns(p);
      assert.equal(netnsExists(p), false);
      assert.equal(fs.existsSync(p), false);
    }
    assert.deepEqual(ourMounts(), []);
    assert.deepEqual(netnsLines(), before_ns);
  });
});

// koffi runs at most 256 asynchronous calls at once in a process and throws beyond; link deletions are
// offloaded to its pool threads, from every socket at once. 400 deletions over 12 sockets must all be
// answered (rtnl.ts shares a budget of offloaded sends across sockets).
describe('kernel: many offloaded link deletions at once', { skip: isRoot ? false : 'needs root' }, () => {
  const NS = nsPath('many');
  after(() => deleteNetns(NS));

  test('400 deletions over 12 sockets: every one answered, nothing left', async () => {
    deleteNetns(NS);
    createNetns(NS);
    const socks = Array.from({ length: 12 }, () => Rtnl.open(NS));
    try {
      const names = Array.from({ length: 400 }, (_, i) => `lmany${i}`);
      for (let i = 0; i < names.length; i += 50) await Promise.all(names.slice(i, i + 50).map((n) => socks[0]!.createBridge(n)));
      await Promise.all(names.map((n, i) => socks[i % socks.length]!.deleteLink(n)));
      assert.deepEqual((await socks[0]!.listLinks()).map((l) => l.name), ['lo']);
    } finally {
      for (const s of socks) s.close();
    }
  });
});
