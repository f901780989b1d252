// Open vSwitch networks (issue 16): the daemon runs with --ovs=managed, so it starts its own ovsdb-server
// and ovs-vswitchd (Debian's openvswitch-switch) inside the sandbox's host namespace, userspace datapath.
// Two containers on an openvswitch network talk by name over ICMP and TCP, go out masqueraded, publish a
// port, are isolated from a bridge network; `ovs-vsctl show` sees the bridge and its ports, and nothing of
// either is left after removal. Without --ovs, -d openvswitch is refused naming what to do.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createSandbox, type Sandbox } from '../helpers/sandbox.ts';
import { ok, fails } from '../helpers/assert.ts';

const BINS = ['/usr/sbin/ovsdb-server', '/usr/sbin/ovs-vswitchd', '/usr/bin/ovsdb-tool', '/usr/bin/ovs-vsctl'];
const skip = process.getuid?.() !== 0 ? 'needs root (network namespaces, runc)'
  : BINS.some((b) => !fs.existsSync(b)) ? 'Open vSwitch is not installed (apt-get install openvswitch-switch; scripts/setup does)' : false;

const PEER_ECHO = `require('net').createServer(s=>{s.end('HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\npeer='+s.remoteAddress.replace('::ffff:','')+'\\n')}).listen(9000,'198.51.100.2')`;

let sb: Sandbox;
const loom = (...a: string[]) => ok(sb.loom(...a), `loom ${a.join(' ')}`);
const ovsDir = () => path.join(sb.dir, 'run', 'ovs');
const vsctl = (...a: string[]) => ok(sb.hostExec(['ovs-vsctl', `--db=unix:${path.join(ovsDir(), 'db.sock')}`, ...a]));

/** The managed OVS daemons run detached (they outlive a daemon restart): the test ends them. */
function killOvs(): void {
  for (const f of ['ovs-vswitchd.pid', 'ovsdb-server.pid']) {
    try {
      process.kill(Number(fs.readFileSync(path.join(ovsDir(), f), 'utf8')), 'SIGKILL');
    } catch { /* not started */ }
  }
}

before(async () => {
  if (skip) return;
  sb = await createSandbox({ tag: 'ovs', daemonArgs: ['--ovs=managed'] });
  sb.spawnExt([process.execPath, '-e', PEER_ECHO]);
  await sb.startDaemon();
  await sb.image('box');
}, { timeout: 120_000 });

after(async () => {
  if (!sb) return;
  await sb.stopDaemon('SIGKILL');
  killOvs();
  await sb.cleanup();
});

test('openvswitch network: ICMP and TCP by name, NAT egress, a published port, isolation, nothing left', { skip, timeout: 180_000 }, async () => {
  await loom('network', 'create', '-d', 'openvswitch', '--subnet', '192.168.1.0/24', 'foo');
  const br = await loom('network', 'inspect', '-f', '{{.Driver}}', 'foo');
  assert.equal(br, 'openvswitch');
  await loom('run', '-d', '--net=foo', '--name', 'web', '-p', '8088:80', 'box', 'httpd', '-f', '-p', '80', '-h', '/www');
  await ok(sb.docker('run', '-d', '--net=foo', '--name=busybox', 'box', 'sleep', '1d'));
  const show = await vsctl('show');
  const bridge = (await vsctl('list-br')).trim();
  assert.match(bridge, /^ovs-[0-9a-f]{11}$/);
  const ports = (await vsctl('list-ports', bridge)).split('\n').filter(Boolean);
  assert.equal(ports.length, 2, show);
  assert.match(show, /datapath_type: (netdev|system)/);

  await loom('exec', 'busybox', 'ping', '-c1', '-W2', 'web');
  // TCP through the userspace datapath (fails silently without userspace TSO)
  assert.match(await loom('exec', 'busybox', 'wget', '-qO-', 'http://web/'), /./);
  // out through the host, masqueraded to its address
  assert.match(await loom('exec', 'busybox', 'wget', '-qO-', 'http://198.51.100.2:9000/'), /peer=198\.51\.100\.1\b/);
  // a published port from the outside world
  assert.match(await ok(sb.extExec(['busybox', 'wget', '-qO-', 'http://198.51.100.1:8088/'])), /./);
  // isolation from a bridge network
  await loom('network', 'create', '--subnet', '10.88.0.0/24', 'plain');
  await loom('run', '-d', '--net=plain', '--name', 'stranger', 'box', 'sleep', '1d');
  const webIp = await loom('inspect', '-f', '{{.NetworkSettings.Networks.foo.IPAddress}}', 'web');
  assert.notEqual((await sb.loom('exec', 'stranger', 'ping', '-c1', '-W1', webIp)).code, 0, 'a bridge network does not reach an openvswitch one');

  // a restart keeps it (the switch runs on), and the ports stay
  await sb.stopDaemon('SIGTERM');
  await sb.startDaemon();
  assert.match(await loom('exec', 'busybox', 'wget', '-qO-', 'http://web/'), /./);

  await loom('rm', '-f', 'web', 'busybox', 'stranger');
  assert.deepEqual((await vsctl('list-ports', bridge)).split('\n').filter(Boolean), [], 'no port left');
  await loom('network', 'rm', 'foo', 'plain');
  assert.equal((await vsctl('list-br')).trim(), '', 'no OVS bridge left');
  assert.doesNotMatch(await ok(sb.hostExec(['ip', '-o', 'link'])), /ovs-[0-9a-f]{11}/, 'no device left');
});

test('killed with a port plugged (endpoint.joined): the restart removes the orphan port, the run can be repeated', { skip, timeout: 120_000 }, async () => {
  await loom('network', 'create', '-d', 'openvswitch', '--subnet', '192.168.2.0/24', 'crashnet');
  const bridge = (await vsctl('list-br')).trim();
  await sb.stopDaemon('SIGTERM');
  process.env.LOOM_FAILPOINTS = 'endpoint.joined';
  try {
    await sb.startDaemon();
  } finally {
    delete process.env.LOOM_FAILPOINTS;
  }
  assert.notEqual((await sb.loom('run', '-d', '--net', 'crashnet', '--name', 'victim', 'box', 'sleep', '1d')).code, 0);
  for (let i = 0; i < 100 && sb.daemon; i++) await new Promise((r) => setTimeout(r, 100));
  assert.match(sb.daemonLog, /failpoint endpoint\.joined/);
  await sb.startDaemon();
  let ports: string[] = ['?'];
  for (let i = 0; i < 50 && ports.length; i++) {
    ports = (await vsctl('list-ports', bridge)).split('\n').filter(Boolean);
    if (ports.length) await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual(ports, [], 'the orphan port is gone');
  await sb.loom('rm', '-f', 'victim');
  await loom('run', '-d', '--net', 'crashnet', '--name', 'victim', 'box', 'sleep', '1d');
  assert.equal((await vsctl('list-ports', bridge)).split('\n').filter(Boolean).length, 1);
  await loom('rm', '-f', 'victim');
  await loom('network', 'rm', 'crashnet');
  assert.equal((await vsctl('list-br')).trim(), '');
});

test('refused: icc=false and an uplink on openvswitch; without --ovs, naming what to do', { skip, timeout: 120_000 }, async () => {
  await fails(sb.loom('network', 'create', '-d', 'openvswitch', '-o', 'com.docker.network.bridge.enable_icc=false', 'x'), /enable_icc=false is not supported by the openvswitch driver/);
  await fails(sb.loom('network', 'create', '-d', 'openvswitch', '-o', 'loom.bridge.uplink=ext0', 'x'), /option of the bridge driver/);
  await sb.stopDaemon('SIGTERM');
  await sb.startDaemon(['--ovs=']);
  try {
    await fails(sb.loom('network', 'create', '-d', 'openvswitch', 'x'), /openvswitch driver is not enabled: install Open vSwitch \(Debian: openvswitch-switch\) and start the daemon with --ovs=managed/);
  } finally {
    await sb.stopDaemon('SIGTERM');
  }
  await sb.startDaemon();
  assert.equal((await sb.loom('network', 'ls', '-q', '--filter', 'name=^x$')).stdout.trim(), '');
});
