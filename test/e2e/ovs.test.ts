// Open vSwitch networks (issue 16): the daemon runs with --ovs=managed, so it starts its own ovsdb-server
// and ovs-vswitchd (Debian's openvswitch-switch) inside the sandbox's host namespace, userspace datapath.
// Two containers on an openvswitch network talk by name over ICMP and TCP, go out masqueraded, publish a
// port, are isolated from a bridge network; `ovs-vsctl show` sees the bridge and its ports, and nothing of
// either is left after removal; `network inspect` shows the bridge and each endpoint's port. ovs-vswitchd
// and ovsdb-server killed while the daemon runs are started again by loom's supervisor, and the existing
// containers talk again (ICMP and TCP). enable_icc=false (OpenFlow rules) keeps two containers apart but
// not from their gateway. Without --ovs, -d openvswitch is refused naming what to do.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createSandbox, eventually, type Sandbox } from '../helpers/sandbox.ts';
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
  // network inspect: the bridge in Options, each endpoint's port in Containers
  const insp = JSON.parse(await loom('network', 'inspect', 'foo'))[0];
  assert.equal(insp.Options['loom.ovs.bridge'], bridge);
  assert.match(insp.Options['loom.ovs.datapath_type'], /^(netdev|system)$/);
  assert.deepEqual(Object.values(insp.Containers).map((c: any) => c.OvsPort).sort(), [...ports].sort());

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

  // ovs-vswitchd, then ovsdb-server, killed under the running daemon: its supervisor starts them again
  for (const which of ['ovs-vswitchd', 'ovsdb-server']) {
    const pidFile = path.join(ovsDir(), `${which}.pid`);
    const old = Number(fs.readFileSync(pidFile, 'utf8'));
    process.kill(old, 'SIGKILL');
    let pid = old;
    for (let i = 0; i < 100 && (pid === old || !fs.existsSync(`/proc/${pid}`)); i++) {
      await new Promise((r) => setTimeout(r, 100));
      try { pid = Number(fs.readFileSync(pidFile, 'utf8')); } catch { /* being written */ }
    }
    assert.notEqual(pid, old, `${which} started again`);
    assert.equal(await eventually(async () => (await sb.loom('exec', 'busybox', 'ping', '-c1', '-W1', 'web')).code, 0, 15_000), 0, `ping after ${which} restarted`);
    // TCP between the existing endpoints, a new one joining, published port and egress
    assert.match(await loom('exec', 'busybox', 'wget', '-qO-', 'http://web/'), /./, `TCP after ${which} restarted`);
    await loom('run', '-d', '--net=foo', '--name', 'late', 'box', 'sleep', '1d');
    assert.match(await loom('exec', 'late', 'wget', '-qO-', 'http://web/'), /./);
    assert.match(await ok(sb.extExec(['busybox', 'wget', '-qO-', 'http://198.51.100.1:8088/'])), /./);
    await loom('rm', '-f', 'late');
  }
  assert.match(sb.daemonLog, /Open vSwitch died: starting it again/);

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

test('enable_icc=false: containers reach their gateway, the outside and their published ports, not each other; other networks stay apart', { skip, timeout: 180_000 }, async () => {
  await loom('network', 'create', '-d', 'openvswitch', '--subnet', '192.168.3.0/24', '-o', 'com.docker.network.bridge.enable_icc=false', 'noicc');
  await loom('network', 'create', '-d', 'openvswitch', '--subnet', '192.168.4.0/24', 'other');
  await loom('run', '-d', '--net=noicc', '--name', 'a', '-p', '8089:80', 'box', 'httpd', '-f', '-p', '80', '-h', '/www');
  await loom('run', '-d', '--net=noicc', '--name', 'b', 'box', 'httpd', '-f', '-p', '80', '-h', '/www');
  await loom('run', '-d', '--net=other', '--name', 'c', 'box', 'httpd', '-f', '-p', '80', '-h', '/www');
  const ip = (n: string, net: string) => loom('inspect', '-f', `{{.NetworkSettings.Networks.${net}.IPAddress}}`, n);
  const [aIp, bIp, cIp] = [await ip('a', 'noicc'), await ip('b', 'noicc'), await ip('c', 'other')];
  const bridge = JSON.parse(await loom('network', 'inspect', 'noicc'))[0].Options['loom.ovs.bridge'];
  assert.match(await vsctl('--', 'get', 'Bridge', bridge, 'name'), new RegExp(bridge));
  const dump = await ok(sb.hostExec(['env', `OVS_RUNDIR=${ovsDir()}`, 'ovs-ofctl', 'dump-flows', bridge]));
  assert.match(dump, /priority=70 actions=drop/, dump);
  // not each other, neither by ICMP nor TCP
  assert.notEqual((await sb.loom('exec', 'a', 'ping', '-c1', '-W1', bIp)).code, 0, 'icc=false: a does not reach b');
  assert.notEqual((await sb.loom('exec', 'b', 'wget', '-T2', '-qO-', `http://${aIp}/`)).code, 0, 'icc=false: b does not reach a over TCP');
  // the gateway, the outside world (masqueraded), a published port from outside
  assert.equal((await sb.loom('exec', 'a', 'ping', '-c1', '-W2', '192.168.3.1')).code, 0);
  assert.match(await loom('exec', 'b', 'wget', '-qO-', 'http://198.51.100.2:9000/'), /peer=198\.51\.100\.1\b/);
  assert.match(await ok(sb.extExec(['busybox', 'wget', '-qO-', 'http://198.51.100.1:8089/'])), /./);
  // another openvswitch network does not reach this one, nor this one it
  assert.notEqual((await sb.loom('exec', 'c', 'wget', '-T2', '-qO-', `http://${aIp}/`)).code, 0, 'other does not reach noicc');
  assert.notEqual((await sb.loom('exec', 'a', 'wget', '-T2', '-qO-', `http://${cIp}/`)).code, 0, 'noicc does not reach other');
  await loom('rm', '-f', 'a', 'b', 'c');
  await loom('network', 'rm', 'noicc', 'other');
  assert.equal((await vsctl('list-br')).trim(), '');
});

test('refused: loom.ovs.* and an uplink on openvswitch; without --ovs, naming what to do', { skip, timeout: 120_000 }, async () => {
  await fails(sb.loom('network', 'create', '-d', 'openvswitch', '-o', 'loom.ovs.bridge=mine', 'x'), /loom\.ovs\.bridge is set by loom/);
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
