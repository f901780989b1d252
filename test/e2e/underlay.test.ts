// Underlay and remote network drivers end to end: macvlan on the sandbox host's ext0 (containers get
// addresses of the outside world's own subnet and talk to it directly, without NAT), ipvlan where the
// kernel lacks it (a clear error, nothing left behind), and a remote driver plugin written in this test
// (a node HTTP server on a unix socket in the test's plugin dir) driving a real container through both
// bin/loom and the docker CLI. All traffic stays inside the sandbox's namespaces.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createSandbox, eventually, runCmd, type Result, type Sandbox } from '../helpers/sandbox.ts';
import { ok, fails } from '../helpers/assert.ts';

let sb: Sandbox;
let pluginDir: string;
const skip = process.getuid?.() !== 0 ? 'needs root (network namespaces, runc)' : false;

/** A TCP server in the outside world that answers with the peer address it sees (no NAT: the container's own). */
const PEER_ECHO = `require('net').createServer(s=>{s.end('HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\npeer='+s.remoteAddress.replace('::ffff:','')+'\\n')}).listen(9000,'198.51.100.2')`;

const loom = (...a: string[]) => ok(sb.loom(...a), `loom ${a.join(' ')}`);
const ns = (ctr: string) => `${sb.netnsPrefix}${ctr}`;
const inNs = (ctr: string, argv: string[]) => runCmd(['ip', 'netns', 'exec', ns(ctr), ...argv]);

async function hostLinks(): Promise<string[]> {
  const out = await ok(sb.hostExec(['ip', '-o', 'link', 'show']));
  // without links network rm / disconnect retired (lmdel…), deleted in the background
  return out.split('\n').map((l) => l.split(': ')[1]!.split('@')[0]!).filter((l) => !l.startsWith('lmdel')).sort();
}

async function netnsNames(): Promise<string[]> {
  const r = await runCmd(['ip', 'netns', 'list']);
  return r.stdout.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(sb.netnsPrefix));
}

let linksAtStart: string[];
let hasIpvlan = false;

before(async () => {
  if (skip) return;
  sb = await createSandbox();
  pluginDir = path.join(sb.dir, 'plugins');
  fs.mkdirSync(pluginDir);
  sb.spawnExt([process.execPath, '-e', PEER_ECHO]);
  await sb.startDaemon(['--plugins-dir', pluginDir]);
  await sb.image('box');
  // whether this kernel can make ipvlan links at all
  hasIpvlan = (await runCmd(['ip', '-n', sb.hostNs, 'link', 'add', 'link', 'ext0', 'name', 'ivprobe', 'type', 'ipvlan', 'mode', 'l2'])).code === 0;
  if (hasIpvlan) await runCmd(['ip', '-n', sb.hostNs, 'link', 'del', 'ivprobe']);
  linksAtStart = await hostLinks();
}, { timeout: 120_000 });

after(async () => {
  if (sb) await sb.cleanup();
});

const MV = ['network', 'create', '-d', 'macvlan', '--subnet', '198.51.100.0/24', '--ip-range', '198.51.100.128/25', '--gateway', '198.51.100.2'];

test('macvlan: containers on ext0 reach each other and the outside world directly, by name too', { skip }, async () => {
  const id = await loom(...MV, '-o', 'parent=ext0', 'mv');
  assert.match(id, /^[0-9a-f]{64}$/);
  const [net] = JSON.parse(await loom('network', 'inspect', 'mv'));
  assert.equal(net.Driver, 'macvlan');
  assert.equal(net.Scope, 'local');
  assert.deepEqual(net.Options, { parent: 'ext0' });
  assert.deepEqual(net.IPAM, { Driver: 'default', Options: {}, Config: [{ Subnet: '198.51.100.0/24', IPRange: '198.51.100.128/25', Gateway: '198.51.100.2' }] });
  // the gateway is the outside router's address: nothing of the network is on the host
  assert.deepEqual(await hostLinks(), linksAtStart);

  await Promise.all([
    loom('run', '-d', '--name', 'm1', '--network', 'mv', 'box', 'sleep', '600'),
    loom('run', '-d', '--name', 'm2', '--network', 'mv', '-p', '8080:80', 'box', 'sleep', '600'),
  ]);
  const ip1 = await loom('inspect', '-f', '{{.NetworkSettings.Networks.mv.IPAddress}}', 'm1');
  const ip2 = await loom('inspect', '-f', '{{.NetworkSettings.Networks.mv.IPAddress}}', 'm2');
  assert.deepEqual([ip1, ip2].sort(), ['198.51.100.128', '198.51.100.129']);
  // eth0 is a macvlan port of ext0 in bridge mode, with Docker's MAC, address and default route
  const link = await ok(inNs('m1', ['ip', '-d', '-o', 'link', 'show', 'eth0']));
  assert.match(link, /macvlan mode bridge/);
  const mac1 = await loom('inspect', '-f', '{{.NetworkSettings.Networks.mv.MacAddress}}', 'm1');
  assert.equal(mac1, `02:42:${ip1.split('.').map((b) => Number(b).toString(16).padStart(2, '0')).join(':')}`);
  assert.match(link, new RegExp(mac1));
  assert.match(await ok(inNs('m1', ['ip', '-o', '-4', 'addr', 'show', 'eth0'])), new RegExp(`inet ${ip1.replace(/\./g, '\\.')}/24`));
  assert.match(await loom('exec', 'm1', 'ip', 'route'), /default via 198\.51\.100\.2 dev eth0/);
  // no host side at all: the host's links are those it had
  assert.deepEqual(await hostLinks(), linksAtStart);

  await loom('exec', 'm1', 'ping', '-c1', '-W2', ip2);
  await loom('exec', 'm2', 'ping', '-c1', '-W2', '198.51.100.2');
  // by name, through the embedded DNS as on any user-defined network
  assert.match(await loom('exec', 'm1', 'ping', '-c1', '-W2', 'm2'), new RegExp(`from ${ip2.replace(/\./g, '\\.')}`));
  assert.match(await loom('exec', 'm1', 'cat', '/etc/resolv.conf'), /^nameserver 127\.0\.0\.11$/m);
  // the outside world sees the container's own address: no NAT
  assert.equal(await loom('exec', 'm1', 'wget', '-qO-', 'http://198.51.100.2:9000/'), `peer=${ip1}`);
  // ... and reaches it directly
  await ok(sb.extExec(['busybox', 'ping', '-c1', '-W2', ip1]), 'outside world pings m1');
  // no published ports on macvlan (Docker ignores -p there): nothing is held or forwarded
  assert.doesNotMatch(await ok(sb.hostExec(['nft', 'list', 'ruleset'])), /8080/);
  // the host cannot reach its own macvlan ports through the parent (macvlan's known property)
  const fromHost = await sb.hostExec(['busybox', 'ping', '-c1', '-W1', ip1]);
  assert.notEqual(fromHost.code, 0, 'the host should not reach a macvlan port of its own interface');
});

test('macvlan: docker CLI creates, inspects and uses a macvlan network', { skip }, async () => {
  await ok(sb.docker('network', 'create', '-d', 'macvlan', '--subnet', '203.0.113.0/24', '-o', 'parent=ext0', '-o', 'macvlan_mode=private', 'dmv'), 'docker network create');
  assert.equal(await ok(sb.docker('network', 'inspect', '-f', '{{.Driver}} {{.Options.parent}} {{.Options.macvlan_mode}}', 'dmv')), 'macvlan ext0 private');
  assert.match(await ok(sb.docker('network', 'ls', '--filter', 'driver=macvlan', '--format', '{{.Name}} {{.Driver}} {{.Scope}}')), /^dmv macvlan local$/m);
  await ok(sb.docker('run', '-d', '--name', 'dm1', '--network', 'dmv', '--ip', '203.0.113.50', 'box', 'sleep', '600'), 'docker run');
  assert.match(await ok(inNs('dm1', ['ip', '-d', '-o', 'link', 'show', 'eth0'])), /macvlan mode private/);
  assert.match(await ok(sb.docker('exec', 'dm1', 'ip', 'route')), /default via 203\.0\.113\.1 dev eth0/);
  // a second network: connect gives eth1, a macvlan port too; disconnect removes it from the namespace
  await ok(sb.docker('network', 'connect', 'mv', 'dm1'), 'docker network connect');
  assert.match(await ok(inNs('dm1', ['ip', '-d', '-o', 'link', 'show', 'eth1'])), /macvlan mode bridge/);
  await ok(sb.docker('exec', 'dm1', 'ping', '-c1', '-W2', '198.51.100.2'), 'ping through eth1');
  await ok(sb.docker('network', 'disconnect', 'mv', 'dm1'), 'docker network disconnect');
  assert.notEqual((await inNs('dm1', ['ip', 'link', 'show', 'eth1'])).code, 0, 'eth1 is gone');
  await ok(sb.docker('rm', '-f', 'dm1'));
  await ok(sb.docker('network', 'rm', 'dmv'));
  // --internal: an address on the segment, no default route, no gateway on the endpoint
  await ok(sb.docker('network', 'create', '-d', 'macvlan', '--internal', '--subnet', '10.5.0.0/24', '-o', 'parent=ext0', 'mvi'), 'internal macvlan');
  await ok(sb.docker('run', '-d', '--name', 'di1', '--network', 'mvi', 'box', 'sleep', '600'));
  assert.doesNotMatch(await ok(sb.docker('exec', 'di1', 'ip', 'route')), /default/);
  assert.equal(await ok(sb.docker('inspect', '-f', '{{.NetworkSettings.Networks.mvi.IPAddress}}/{{.NetworkSettings.Networks.mvi.Gateway}}', 'di1')), '10.5.0.2/');
  await ok(sb.docker('rm', '-f', 'di1'));
  await ok(sb.docker('network', 'rm', 'mvi'));
  assert.match(await ok(sb.docker('info', '--format', '{{.Plugins.Network}}')), /^\[bridge host ipvlan macvlan null.*\]$/);
});

test('macvlan: bad options and parents are refused with Docker\'s messages, leaving nothing', { skip }, async () => {
  const before = await hostLinks();
  await fails(sb.loom('network', 'create', '-d', 'macvlan', '--subnet', '10.1.0.0/24', '-o', 'parent=ext0', '-o', 'macvlan_mode=bogus', 'x1'),
    /requested macvlan mode 'bogus' is not valid, 'bridge' mode is the macvlan driver default/);
  await fails(sb.loom('network', 'create', '-d', 'macvlan', '--subnet', '10.1.0.0/24', '-o', 'parent=lo', 'x1'),
    /loopback interface is not a valid macvlan parent link/);
  await fails(sb.loom('network', 'create', '-d', 'macvlan', '--subnet', '10.1.0.0/24', '-o', 'parent=eth9', 'x1'),
    /invalid subinterface vlan name eth9, example formatting is eth0\.10/);
  await fails(sb.loom('network', 'create', '-d', 'macvlan', '--subnet', '10.1.0.0/24', '-o', 'parent=nope0.10', 'x1'),
    /-o parent interface was not found on the host: nope0/);
  await fails(sb.loom('network', 'create', '-d', 'macvlan', '--subnet', '10.1.0.0/24', '-o', 'parent=ext0.x', 'x1'),
    /unable to parse a valid vlan id from: x/);
  await fails(sb.loom('network', 'create', '-d', 'macvlan', '--subnet', '10.1.0.0/24', '-o', 'parent=ext0.5000', 'x1'),
    /vlan id must be between 1-4094, received: 5000/);
  // 802.1Q sub-interfaces and dummy parents need kernel modules this machine lacks: the error names them
  const vlan = await sb.loom('network', 'create', '-d', 'macvlan', '--subnet', '10.1.0.0/24', '-o', 'parent=ext0.10', 'x1');
  if (vlan.code !== 0) assert.match(vlan.stderr, /failed to create ext0\.10 vlan link: operation not supported: .*802\.1Q.*8021q/);
  else await loom('network', 'rm', 'x1');
  const dummy = await sb.loom('network', 'create', '-d', 'macvlan', '--subnet', '10.1.0.0/24', 'x1');
  if (dummy.code !== 0) assert.match(dummy.stderr, /failed to create the dummy parent link dm-[0-9a-f]{12} of macvlan network x1: operation not supported: .*module dummy/);
  else {
    // where the kernel has dummy links: the network is internal to its dummy parent, removed with it
    assert.ok((await hostLinks()).some((l) => /^dm-[0-9a-f]{12}$/.test(l)));
    await loom('network', 'rm', 'x1');
  }
  // the same subnet twice: IPAM refuses the overlap
  await fails(sb.loom(...MV, '-o', 'parent=ext0', 'x2'), /Pool overlaps with other one on this address space/);
  // passthru takes the whole parent
  await fails(sb.loom('network', 'create', '-d', 'macvlan', '--subnet', '10.2.0.0/24', '-o', 'parent=ext0', '-o', 'macvlan_mode=passthru', 'x3'),
    /cannot use mode passthru, macvlan network [0-9a-f]{64} is already using parent interface ext0/);
  await fails(sb.loom('network', 'create', '-d', 'nosuchdriver', 'x4'), /plugin "nosuchdriver" not found/);
  assert.deepEqual(await netNames(), ['bridge', 'host', 'mv', 'none']);
  assert.deepEqual(await hostLinks(), before);
});

async function netNames(): Promise<string[]> {
  return (await loom('network', 'ls', '--format', '{{.Name}}')).split('\n').sort();
}

test('macvlan: endpoints survive a daemon restart', { skip }, async () => {
  const ip2 = await loom('inspect', '-f', '{{.NetworkSettings.Networks.mv.IPAddress}}', 'm2');
  await sb.stopDaemon('SIGKILL');
  // the ports live in the container namespaces: traffic goes on without the daemon
  await ok(inNs('m1', ['busybox', 'ping', '-c1', '-W2', ip2]), 'm1 pings m2 while the daemon is down');
  await sb.startDaemon(['--plugins-dir', pluginDir]);
  assert.equal(await loom('inspect', '-f', '{{.State.Running}}', 'm1'), 'true');
  await loom('exec', 'm1', 'ping', '-c1', '-W2', 'm2');
  await loom('exec', 'm2', 'ping', '-c1', '-W2', '198.51.100.2');
  // a container restart makes a new namespace and a new port in it
  await loom('restart', '-t', '0', 'm1');
  const ip1 = await loom('inspect', '-f', '{{.NetworkSettings.Networks.mv.IPAddress}}', 'm1');
  assert.match(await loom('exec', 'm2', 'ping', '-c1', '-W2', 'm1'), new RegExp(`from ${ip1.replace(/\./g, '\\.')}`));
  assert.equal(await loom('exec', 'm1', 'wget', '-qO-', 'http://198.51.100.2:9000/'), `peer=${ip1}`);
});

test('ipvlan: options and parents checked as Docker does', { skip }, async () => {
  await fails(sb.loom('network', 'create', '-d', 'ipvlan', '--subnet', '10.3.0.0/24', '-o', 'parent=ext0', '-o', 'ipvlan_mode=l4', 'iv'),
    /requested ipvlan mode 'l4' is not valid, 'l2' mode is the ipvlan driver default/);
  await fails(sb.loom('network', 'create', '-d', 'ipvlan', '--subnet', '10.3.0.0/24', '-o', 'parent=ext0', '-o', 'ipvlan_flag=open', 'iv'),
    /requested ipvlan flag 'open' is not valid, 'bridge' is the ipvlan driver default/);
  await fails(sb.loom('network', 'create', '-d', 'ipvlan', '--subnet', '10.3.0.0/24', '-o', 'parent=lo', 'iv'), /loopback interface is not a valid ipvlan parent link/);
  await loom('network', 'create', '-d', 'ipvlan', '--subnet', '10.3.0.0/24', '-o', 'parent=ext0', '-o', 'ipvlan_mode=l2', 'iv');
  // one ipvlan network per parent (Docker names the other network by its dummy name)
  await fails(sb.loom('network', 'create', '-d', 'ipvlan', '--subnet', '10.4.0.0/24', '-o', 'parent=ext0', 'iv2'),
    /network di-[0-9a-f]{12} is already using parent interface ext0/);
  assert.equal(await loom('network', 'inspect', '-f', '{{.Driver}} {{.Scope}} {{.Options.parent}} {{.Options.ipvlan_mode}}', 'iv'), 'ipvlan local ext0 l2');
});

test('ipvlan: without kernel support an endpoint fails naming it, and leaves nothing', { skip }, async (t) => {
  if (hasIpvlan) return t.skip('this kernel has ipvlan: the traffic test covers it');
  const before = await hostLinks();
  const r = await fails(sb.loom('run', '-d', '--name', 'i1', '--network', 'iv', 'box', 'sleep', '600'),
    /failed to create the ipvlan port: operation not supported: this kernel has no ipvlan support \(module ipvlan/);
  assert.equal(r.code, 125);
  assert.deepEqual(await hostLinks(), before);
  assert.ok(!(await netnsNames()).includes(ns('i1')), 'no namespace left for i1');
  assert.equal(await loom('network', 'inspect', '-f', '{{len .Containers}}', 'iv'), '0');
  assert.equal(await loom('inspect', '-f', '{{.State.Status}}', 'i1'), 'created');
  await loom('rm', '-f', 'i1');
  await loom('network', 'rm', 'iv');
});

test('ipvlan: real traffic where the kernel has it', { skip }, async (t) => {
  if (!hasIpvlan) return t.skip('this kernel has no ipvlan support (ip link add type ipvlan fails)');
  await loom('network', 'rm', 'iv');
  // its own parent: ext0 carries macvlan ports, and a device takes one kind of ports only
  const sh = (argv: string[]) => ok(runCmd(argv), argv.join(' '));
  await sh(['ip', '-n', sb.hostNs, 'link', 'add', 'iv0', 'type', 'veth', 'peer', 'name', 'iv0', 'netns', sb.extNs]);
  await sh(['ip', '-n', sb.hostNs, 'link', 'set', 'iv0', 'up']);
  await sh(['ip', '-n', sb.extNs, 'addr', 'add', '10.3.0.254/24', 'dev', 'iv0']);
  await sh(['ip', '-n', sb.extNs, 'link', 'set', 'iv0', 'up']);
  await loom('network', 'create', '-d', 'ipvlan', '--subnet', '10.3.0.0/24', '--gateway', '10.3.0.254', '-o', 'parent=iv0', 'iv');
  await loom('run', '-d', '--name', 'i1', '--network', 'iv', 'box', 'sleep', '600');
  await loom('run', '-d', '--name', 'i2', '--network', 'iv', 'box', 'sleep', '600');
  assert.match(await ok(inNs('i1', ['ip', '-d', '-o', 'link', 'show', 'eth0'])), /ipvlan/);
  await loom('exec', 'i1', 'ping', '-c1', '-W2', 'i2');
  await loom('exec', 'i1', 'ping', '-c1', '-W2', '10.3.0.254');
  await loom('rm', '-f', 'i1', 'i2');
  await loom('network', 'rm', 'iv');
  await sh(['ip', '-n', sb.hostNs, 'link', 'del', 'iv0']);
});

test('macvlan: rm of containers and network leaves no link', { skip }, async () => {
  await loom('rm', '-f', 'm1', 'm2');
  await eventually(() => netnsNames(), []);
  await loom('network', 'rm', 'mv');
  assert.deepEqual(await hostLinks(), linksAtStart);
  assert.deepEqual(await netNames(), ['bridge', 'host', 'none']);
});

// ------------------------------------------------------------------------------------------ remote plugins

/**
 * A network driver and IPAM plugin speaking Docker's legacy plugin protocol on a unix socket: a bridge
 * `tnbr-<net>` per network holding the gateway address, a veth pair per endpoint (SrcName given to loom
 * on Join), every call logged as a JSON line {method, accept, body}. Networks created with -o fail=X
 * make step X fail. As IPAM it hands out 10.77.0.0/24 (gateway .1, endpoints from .10).
 */
const PLUGIN = String.raw`
const http = require('http'), fs = require('fs'), { execFileSync } = require('child_process');
const [sock, logFile, implementsList] = process.argv.slice(2);
const nets = new Map();
const ip = (...a) => { try { execFileSync('ip', a, { stdio: 'pipe' }); } catch (e) { if (!String(e.stderr).match(/Cannot find device|No such device/)) throw new Error('ip ' + a.join(' ') + ': ' + e.stderr); } };
const short = (id) => id.slice(0, 7);
let next = 10;
const handlers = {
  'Plugin.Activate': () => ({ Implements: implementsList.split(',') }),
  'NetworkDriver.GetCapabilities': () => ({ Scope: 'local', ConnectivityScope: 'local' }),
  'NetworkDriver.CreateNetwork': (b) => {
    const opts = b.Options['com.docker.network.generic'] || {};
    if (opts.fail === 'create') return [500, { Err: 'refusing to create network (asked to)' }];
    if (opts.fail === 'create200') return { Err: 'told to fail politely' };
    const br = 'tnbr-' + b.NetworkID.slice(0, 6);
    ip('link', 'add', br, 'type', 'bridge'); ip('link', 'set', br, 'up');
    for (const d of b.IPv4Data) if (d.Gateway) ip('addr', 'add', d.Gateway, 'dev', br);
    nets.set(b.NetworkID, { br, opts, gw: (b.IPv4Data[0] && b.IPv4Data[0].Gateway || '').split('/')[0] });
    return {};
  },
  'NetworkDriver.DeleteNetwork': (b) => { const n = nets.get(b.NetworkID); if (n) ip('link', 'del', n.br); nets.delete(b.NetworkID); return {}; },
  'NetworkDriver.CreateEndpoint': (b) => (b.Interface.MacAddress ? {} : { Interface: { MacAddress: '02:aa:00:00:00:' + (next++).toString(16).padStart(2, '0') } }),
  'NetworkDriver.Join': (b) => {
    const n = nets.get(b.NetworkID);
    if (!n) return [404, { Err: 'no such network ' + b.NetworkID }];
    if (n.opts.fail === 'join') return { Err: 'join refused (asked to)' };
    const host = 'tn' + short(b.EndpointID), peer = 'tp' + short(b.EndpointID);
    ip('link', 'add', host, 'type', 'veth', 'peer', 'name', peer);
    ip('link', 'set', host, 'master', n.br); ip('link', 'set', host, 'up');
    if (n.opts.fail === 'badgw') return { InterfaceName: { SrcName: peer, DstPrefix: 'eth' }, Gateway: 'not-an-ip' };
    return { InterfaceName: { SrcName: peer, DstPrefix: n.opts.prefix || 'eth' }, Gateway: n.gw, StaticRoutes: [{ Destination: '203.0.113.0/24', RouteType: 0, NextHop: n.gw }, { Destination: '192.0.2.0/24', RouteType: 1 }] };
  },
  'NetworkDriver.Leave': () => ({}),
  'NetworkDriver.DeleteEndpoint': (b) => {
    // whether loom gave the link back (under its SrcName, in the host) before this call
    let back = true;
    try { execFileSync('ip', ['link', 'show', 'tp' + short(b.EndpointID)], { stdio: 'pipe' }); } catch { back = false; }
    fs.appendFileSync(logFile, JSON.stringify({ method: 'srcBack', body: { endpoint: b.EndpointID, back } }) + '\n');
    ip('link', 'del', 'tp' + short(b.EndpointID)); ip('link', 'del', 'tn' + short(b.EndpointID));
    return {};
  },
  'NetworkDriver.EndpointOperInfo': () => ({ Value: { plugin: 'testnet' } }),
  'IpamDriver.GetCapabilities': () => ({ RequiresMACAddress: false }),
  'IpamDriver.GetDefaultAddressSpaces': () => ({ LocalDefaultAddressSpace: 'tlocal', GlobalDefaultAddressSpace: 'tglobal' }),
  'IpamDriver.RequestPool': (b) => (b.Options && b.Options.fail === 'pool' ? { Error: 'no pool for you' } : { PoolID: 'tpool-' + (b.V6 ? '6' : '4'), Pool: b.Pool || (b.V6 ? 'fd77::/64' : '10.77.0.0/24'), Data: {} }),
  'IpamDriver.RequestAddress': (b) => {
    if (b.Options && b.Options.RequestAddressType === 'com.docker.network.gateway') return { Address: (b.Address || '10.77.0.1') + '/24' };
    return { Address: (b.Address || '10.77.0.' + next++) + '/24' };
  },
  'IpamDriver.ReleaseAddress': () => ({}),
  'IpamDriver.ReleasePool': () => ({}),
};
http.createServer((req, res) => {
  let body = '';
  req.on('data', (d) => (body += d));
  req.on('end', () => {
    const method = req.url.slice(1);
    let parsed = null;
    try { parsed = body ? JSON.parse(body) : null; } catch {}
    fs.appendFileSync(logFile, JSON.stringify({ method, accept: req.headers.accept, body: parsed }) + '\n');
    const h = handlers[method];
    let out = h ? (() => { try { return h(parsed || {}); } catch (e) { return [500, { Err: String(e.message) }]; } })() : [404, { Err: 'unknown method ' + method }];
    const [status, json] = Array.isArray(out) ? out : [200, out];
    res.writeHead(status, { 'Content-Type': 'application/vnd.docker.plugins.v1+json' });
    res.end(JSON.stringify(json));
  });
}).listen(sock, () => fs.writeFileSync(sock + '.ready', ''));
`;

let pluginLog: string;

interface Call { method: string; accept: string; body: any }
const calls = (): Call[] => fs.readFileSync(pluginLog, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const callsOf = (m: string) => calls().filter((c) => c.method === m);

async function startPlugin(name: string, impl: string, log: string): Promise<void> {
  const script = path.join(sb.dir, 'plugin.cjs');
  fs.writeFileSync(script, PLUGIN);
  fs.writeFileSync(log, '');
  const sock = path.join(pluginDir, `${name}.sock`);
  sb.spawnHost([process.execPath, script, sock, log, impl]);
  await eventually(async () => fs.existsSync(`${sock}.ready`), true, 10_000);
  assert.ok(fs.existsSync(`${sock}.ready`), `plugin ${name} did not come up`);
}

const pluginLinks = async () => (await hostLinks()).filter((l) => /^(tn|tp)[0-9a-f]{7}$/.test(l));

test('remote driver: a plugin network carries real containers, through bin/loom', { skip }, async () => {
  pluginLog = path.join(sb.dir, 'plugin.log');
  await startPlugin('testnet', 'NetworkDriver,IpamDriver', pluginLog);
  const id = await loom('network', 'create', '-d', 'testnet', '--subnet', '10.66.0.0/24', '-o', 'color=blue', 'tn1');
  const create = callsOf('NetworkDriver.CreateNetwork').at(-1)!;
  assert.equal(create.accept, 'application/vnd.docker.plugins.v1.2+json');
  assert.equal(callsOf('Plugin.Activate').length, 1);
  assert.equal(create.body.NetworkID, id);
  assert.deepEqual(create.body.IPv4Data, [{ AddressSpace: 'LocalDefault', Pool: '10.66.0.0/24', Gateway: '10.66.0.1/24' }]);
  assert.deepEqual(create.body.Options['com.docker.network.generic'], { color: 'blue' });
  const [net] = JSON.parse(await loom('network', 'inspect', 'tn1'));
  assert.equal(net.Driver, 'testnet');
  assert.deepEqual(net.Options, { color: 'blue' });

  await loom('run', '-d', '--name', 'r1', '--network', 'tn1', 'box', 'sleep', '600');
  await loom('run', '-d', '--name', 'r2', '--network', 'tn1', 'box', 'sleep', '600');
  const [join] = callsOf('NetworkDriver.Join');
  assert.equal(join!.body.SandboxKey, `/run/netns/${ns('r1')}`);
  assert.equal(callsOf('NetworkDriver.CreateEndpoint')[0]!.body.Interface.Address, '10.66.0.2/24');
  // the plugin's link is the container's eth0, with the plugin's MAC, the address, gateway and routes
  const eth0 = await ok(inNs('r1', ['ip', '-d', '-o', 'link', 'show', 'eth0']));
  assert.match(eth0, /veth/);
  assert.match(eth0, /02:aa:00:00:00:0a/);
  assert.equal(await loom('inspect', '-f', '{{.NetworkSettings.Networks.tn1.MacAddress}} {{.NetworkSettings.Networks.tn1.IPAddress}} {{.NetworkSettings.Networks.tn1.Gateway}}', 'r1'),
    '02:aa:00:00:00:0a 10.66.0.2 10.66.0.1');
  const routes = await loom('exec', 'r1', 'ip', 'route');
  assert.match(routes, /default via 10\.66\.0\.1 dev eth0/);
  assert.match(routes, /203\.0\.113\.0\/24 via 10\.66\.0\.1 dev eth0/);
  assert.match(routes, /192\.0\.2\.0\/24 dev eth0/);
  // what moved in left the host: only the plugin's host ends stay there
  assert.deepEqual((await pluginLinks()).filter((l) => l.startsWith('tp')), []);
  await loom('exec', 'r1', 'ping', '-c1', '-W2', '10.66.0.1');
  assert.match(await loom('exec', 'r1', 'ping', '-c1', '-W2', 'r2'), /from 10\.66\.0\.3/);
  // ProgramExternalConnectivity is optional (this plugin answers 404): the join still succeeded

  await loom('rm', '-f', 'r1', 'r2');
  // each endpoint: Leave, then DeleteEndpoint, which found its link back in the host under its SrcName
  assert.equal(callsOf('NetworkDriver.Leave').length, 2);
  assert.equal(callsOf('NetworkDriver.DeleteEndpoint').length, 2);
  assert.deepEqual(callsOf('srcBack').map((c) => c.body.back), [true, true]);
  const order = calls().map((c) => c.method).filter((m) => /Leave|DeleteEndpoint/.test(m));
  assert.deepEqual(order, ['NetworkDriver.Leave', 'NetworkDriver.DeleteEndpoint', 'NetworkDriver.Leave', 'NetworkDriver.DeleteEndpoint']);
  assert.deepEqual(await pluginLinks(), []);
  await loom('network', 'rm', 'tn1');
  assert.equal(callsOf('NetworkDriver.DeleteNetwork').at(-1)!.body.NetworkID, id);
  assert.deepEqual(await hostLinks(), linksAtStart);
});

test('remote driver: docker network create -d <plugin>, run, connect, restart, rm', { skip }, async () => {
  await ok(sb.docker('network', 'create', '-d', 'testnet', 'tn2'), 'docker network create');
  assert.match(await ok(sb.docker('network', 'ls', '--format', '{{.Name}} {{.Driver}} {{.Scope}}')), /^tn2 testnet local$/m);
  const subnet = await ok(sb.docker('network', 'inspect', '-f', '{{range .IPAM.Config}}{{.Subnet}}{{end}}', 'tn2'));
  assert.match(subnet, /^172\.\d+\.0\.0\/16$/);
  await ok(sb.docker('run', '-d', '--name', 'd1', '--network', 'tn2', 'box', 'sleep', '600'), 'docker run');
  await ok(sb.docker('run', '-d', '--name', 'd2', 'box', 'sleep', '600'), 'docker run on the default bridge');
  await ok(sb.docker('network', 'connect', 'tn2', 'd2'), 'docker network connect');
  assert.match(await ok(inNs('d2', ['ip', '-d', '-o', 'link', 'show', 'eth1'])), /veth/);
  await ok(sb.docker('exec', 'd2', 'ping', '-c1', '-W2', 'd1'), 'd2 pings d1 over the plugin network');
  await ok(sb.docker('network', 'disconnect', 'tn2', 'd2'), 'docker network disconnect');
  assert.notEqual((await inNs('d2', ['ip', 'link', 'show', 'eth1'])).code, 0);
  // the daemon restarts: the plugin driver is looked up again, the container keeps its link
  await sb.stopDaemon();
  await sb.startDaemon(['--plugins-dir', pluginDir]);
  assert.equal(await ok(sb.docker('inspect', '-f', '{{.State.Running}}', 'd1')), 'true');
  await ok(sb.docker('exec', 'd1', 'ping', '-c1', '-W2', (await ok(sb.docker('network', 'inspect', '-f', '{{range .IPAM.Config}}{{.Gateway}}{{end}}', 'tn2')))));
  await ok(sb.docker('rm', '-f', 'd1', 'd2'));
  await ok(sb.docker('network', 'rm', 'tn2'));
  assert.deepEqual(await pluginLinks(), []);
});

test('remote driver: plugin errors become API errors naming the plugin; nothing is left', { skip }, async () => {
  const before = await hostLinks();
  await fails(sb.loom('network', 'create', '-d', 'testnet', '-o', 'fail=create', 'bad1'),
    /NetworkDriver\.CreateNetwork: refusing to create network \(asked to\) \(network plugin testnet\)/);
  await fails(sb.docker('network', 'create', '-d', 'testnet', '-o', 'fail=create200', 'bad1'), /remote: told to fail politely \(network plugin testnet\)/);
  await fails(sb.docker('network', 'create', '-d', 'unknownplugin', 'bad1'), /plugin "unknownplugin" not found/);
  await fails(sb.loom('network', 'create', '--ipam-driver', 'unknownipam', 'bad1'), /plugin "unknownipam" not found/);
  assert.ok(!(await netNames()).includes('bad1'));
  // a Join that fails: the run fails with the plugin's error, the endpoint is deleted again
  await loom('network', 'create', '-d', 'testnet', '-o', 'fail=join', 'tnj');
  const deletes = callsOf('NetworkDriver.DeleteEndpoint').length;
  const r = await fails(sb.loom('run', '-d', '--name', 'j1', '--network', 'tnj', 'box', 'sleep', '600'), /remote: join refused \(asked to\) \(network plugin testnet\); rolled back/);
  assert.equal(r.code, 125);
  assert.equal(callsOf('NetworkDriver.DeleteEndpoint').length, deletes + 1);
  assert.ok(!(await netnsNames()).includes(ns('j1')));
  // a Join whose answer is unusable (bad gateway): loom refuses it, moves the link back, Leave + DeleteEndpoint
  await loom('network', 'create', '-d', 'testnet', '-o', 'fail=badgw', 'tng');
  await fails(sb.loom('run', '-d', '--name', 'g1', '--network', 'tng', 'box', 'sleep', '600'), /unable to parse Gateway "not-an-ip"; rolled back/);
  await loom('rm', '-f', 'j1', 'g1');
  await loom('network', 'rm', 'tnj', 'tng');
  assert.deepEqual(await hostLinks(), before);
});

test('remote IPAM: --ipam-driver <plugin> gives pools, gateway and addresses, and gets them back', { skip }, async () => {
  await startPlugin('onlyipam', 'IpamDriver', path.join(sb.dir, 'onlyipam.log'));
  await fails(sb.loom('network', 'create', '-d', 'onlyipam', 'x'), /Plugin does not implement the requested driver: plugin="onlyipam", requested implementation="NetworkDriver"/);
  await fails(sb.loom('network', 'create', '--ipam-driver', 'testnet', '--ipam-opt', 'fail=pool', 'x'), /remote: no pool for you \(IPAM plugin testnet\)/);
  const before = calls().length;
  await loom('network', 'create', '--ipam-driver', 'testnet', 'ipn');
  // the default address spaces, a pool, then its gateway (the pool's answer named none)
  const ipamCalls = calls().slice(before).map((c) => c.method).filter((m) => m !== 'IpamDriver.GetCapabilities');
  assert.deepEqual(ipamCalls.slice(0, 3), ['IpamDriver.GetDefaultAddressSpaces', 'IpamDriver.RequestPool', 'IpamDriver.RequestAddress']);
  assert.equal(calls().slice(before).find((c) => c.method === 'IpamDriver.RequestAddress')!.body.Options.RequestAddressType, 'com.docker.network.gateway');
  assert.equal(callsOf('IpamDriver.RequestPool').at(-1)!.body.AddressSpace, 'tlocal');
  const [net] = JSON.parse(await loom('network', 'inspect', 'ipn'));
  assert.equal(net.IPAM.Driver, 'testnet');
  assert.deepEqual(net.IPAM.Config, [{ Subnet: '10.77.0.0/24', Gateway: '10.77.0.1' }]);
  await loom('run', '-d', '--name', 'p1', '--network', 'ipn', 'box', 'sleep', '600');
  const ip = await loom('inspect', '-f', '{{.NetworkSettings.Networks.ipn.IPAddress}}', 'p1');
  assert.match(ip, /^10\.77\.0\.\d+$/);
  assert.equal(callsOf('IpamDriver.RequestAddress').at(-1)!.body.PoolID, 'tpool-4');
  await loom('exec', 'p1', 'ping', '-c1', '-W2', '10.77.0.1');
  await loom('rm', '-f', 'p1');
  assert.deepEqual(callsOf('IpamDriver.ReleaseAddress').at(-1)!.body, { PoolID: 'tpool-4', Address: ip });
  await loom('network', 'rm', 'ipn');
  assert.deepEqual(callsOf('IpamDriver.ReleasePool').at(-1)!.body, { PoolID: 'tpool-4' });
  assert.deepEqual(await pluginLinks(), []);
});
