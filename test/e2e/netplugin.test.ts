// loom as a Docker network plugin: a real dockerd (Debian's 20.10) in the sandbox's host namespace finds
// loom's socket in /run/docker/plugins (bind-mounted from the sandbox, in a mount namespace of dockerd's
// own), `docker network create -d loom` makes a loom network, and dockerd's containers join it and talk
// to loom's containers on it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { busyboxTar, createSandbox, eventually, requireRoot, runCmd, type Sandbox } from '../helpers/sandbox.ts';
import { ok } from '../helpers/assert.ts';

const dockerd = fs.existsSync('/usr/sbin/dockerd') ? '/usr/sbin/dockerd' : '';
const skip = requireRoot() || (dockerd ? false : 'dockerd is not installed (Debian package docker.io)');

let sb: Sandbox;
let dd: ChildProcess | null = null;
let ddLog = '';
let ddDir = '';
let ddSock = '';

const dk = (...args: string[]) => runCmd(['docker', '-H', `unix://${ddSock}`, ...args]);

before(async () => {
  if (skip) return;
  sb = await createSandbox({ tag: 'dnp' });
  const pluginDir = path.join(sb.dir, 'plugins');
  ddDir = path.join(sb.dir, 'dd');
  fs.mkdirSync(ddDir);
  ddSock = path.join(ddDir, 'docker.sock');
  // loom asks dockerd for its containers' names (for loom's DNS)
  await sb.startDaemon(['--network-plugin-socket', path.join(pluginDir, 'loom.sock'), '--network-plugin-docker-host', `unix://${ddSock}`]);
  await sb.image('box');
  // its own mount namespace, with a /run of its own: /run/docker/plugins (where dockerd looks, not
  // configurable, and which it makes whatever its exec root) shows loom's socket; nothing of it on the machine
  const script = `mount -t tmpfs tmpfs /run && mkdir -p /run/docker/plugins && mount --bind ${pluginDir} /run/docker/plugins && exec ${dockerd} --data-root ${ddDir}/data --exec-root ${ddDir}/x `
    + `--pidfile ${ddDir}/docker.pid -H unix://${ddSock} --iptables=false --ip6tables=false --bridge=none --userland-proxy=false --storage-driver=vfs`;
  dd = spawn('nsenter', [`--net=/run/netns/${sb.hostNs}`, '--', 'unshare', '-m', '--propagation', 'private', 'sh', '-c', script], { stdio: ['ignore', 'ignore', 'pipe'] });
  dd.stderr!.on('data', (d: Buffer) => (ddLog += d.toString()));
  const up = await eventually(() => dk('version', '--format', '{{.Server.Version}}'), (r) => r.code === 0, 60_000);
  assert.equal(up.code, 0, `dockerd did not come up: ${ddLog.slice(-3000)}`);
  await ok(dk('import', busyboxTar(sb.dir), 'box'), 'docker import box');
}, { timeout: 180_000 });

after(async () => {
  if (skip) return;
  if (dd) {
    await dk('rm', '-f', 'dc', 'dc2').catch(() => {});
    dd.kill('SIGTERM');
    await Promise.race([new Promise((r) => (dd!.exitCode !== null || dd!.signalCode ? r(null) : dd!.once('exit', r))), new Promise((r) => setTimeout(r, 20_000))]);
    if (dd.exitCode === null && !dd.signalCode) dd.kill('SIGKILL');
  }
  if (process.env.OV_LOGS) fs.writeFileSync(path.join(process.env.OV_LOGS, 'dockerd.log'), ddLog);
  if (process.env.OV_LOGS && sb) fs.writeFileSync(path.join(process.env.OV_LOGS, 'dnp.log'), sb.daemonLog);
  await sb?.cleanup();
  // dockerd's own containerd, by its pid file, if dockerd died without stopping it
  const ctdPid = path.join(ddDir, 'x', 'containerd', 'containerd.pid');
  if (ddDir && fs.existsSync(ctdPid)) try { process.kill(Number(fs.readFileSync(ctdPid, 'utf8').trim()), 'SIGKILL'); } catch { /* gone */ }
});

test('docker network create -d loom on a real dockerd makes a loom network; dockerd\'s containers join it and reach loom\'s', { skip }, async () => {
  const id = await ok(dk('network', 'create', '-d', 'loom', '--subnet', '10.1.0.0/24', 'viadocker'), `network create -d loom: ${ddLog.slice(-2000)}`);
  const name = `dockerd-${id.slice(0, 12)}`;
  const net = JSON.parse(await ok(sb.loom('network', 'inspect', name), 'loom sees the network'))[0];
  assert.deepEqual(net.IPAM.Config, [{ Subnet: '10.1.0.0/24', Gateway: '10.1.0.1' }]);
  assert.equal(net.Labels['loom.dockerd.network'], id);
  await ok(dk('run', '-d', '--name', 'dc', '--network', 'viadocker', 'box', 'httpd', '-f', '-p', '8080', '-h', '/www'), `docker run on a loom network: ${ddLog.slice(-2000)}`);
  const ip = await ok(dk('inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', 'dc'));
  assert.equal(ip, '10.1.0.2');
  // loom's own container on the same network reaches dockerd's, and the address is taken in loom's IPAM
  await ok(sb.loom('run', '-d', '--name', 'lc', '--network', name, 'box', 'sleep', '600'), 'loom run on that network');
  const lip = await ok(sb.loom('inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', 'lc'));
  assert.notEqual(lip, ip);
  const body = await eventually(() => sb.loom('exec', 'lc', 'wget', '-qO-', `http://${ip}:8080/`), (r) => r.code === 0);
  assert.equal(body.stdout.trim(), 'hello from loom');
  await ok(dk('exec', 'dc', 'ping', '-c1', '-W3', lip), 'dockerd\'s container pings loom\'s');
  // loom's container reaches dockerd's by its name (loom asked dockerd which container has the endpoint)
  const byName = await eventually(() => sb.loom('exec', 'lc', 'wget', '-qO-', 'http://dc:8080/'), (r) => r.code === 0);
  assert.equal(byName.stdout.trim(), 'hello from loom', byName.stderr);
  // network rm is refused by dockerd while a container is on it; once gone, the loom network goes too
  await ok(sb.loom('rm', '-f', 'lc'));
  await ok(dk('rm', '-f', 'dc'));
  await ok(dk('network', 'rm', 'viadocker'), 'docker network rm');
  const gone = await sb.loom('network', 'inspect', name);
  assert.equal(gone.code, 1);
  // the sandbox's own ext0 aside, no veth is left
  const veths = (await ok(sb.hostExec(['ip', '-o', 'link', 'show', 'type', 'veth']))).split('\n').filter((l) => l && !/ ext0@/.test(l));
  assert.deepEqual(veths, [], 'no veth left behind');
});

test('dockerd refuses what loom\'s plugin cannot make, by name', { skip }, async () => {
  await ok(sb.loom('network', 'create', '-d', 'macvlan', '--subnet', '10.4.0.0/24', '-o', 'parent=ext0', 'mv'), 'create mv');
  const r = await dk('network', 'create', '-d', 'loom', '-o', 'loom.name=mv', '--ipam-driver', 'loom', '--ipam-opt', 'loom.name=mv', '--subnet', '10.4.0.0/24', 'viamv');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /network mv is a macvlan network: dockerd can join loom bridge and overlay networks/);
  const d = await dk('network', 'create', '-d', 'loom', '-o', 'loom.driver=overlay', 'viaov');
  assert.equal(d.code, 1);
  assert.match(d.stderr, /-o loom\.driver: dockerd makes loom bridge networks; for an overlay, create it in loom/);
  await ok(sb.loom('network', 'rm', 'mv'));
});

test('with --ipam-driver loom, dockerd joins an existing loom network and its addresses come from loom\'s IPAM', { skip }, async () => {
  await ok(sb.loom('network', 'create', '--subnet', '10.3.0.0/24', 'shared'), 'create shared');
  await ok(sb.loom('run', '-d', '--name', 'lc2', '--network', 'shared', 'box', 'sleep', '600'), 'run lc2');
  assert.equal(await ok(sb.loom('inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', 'lc2')), '10.3.0.2');
  await ok(runCmd(['docker', '-H', `unix://${ddSock}`, 'network', 'create', '-d', 'loom', '--ipam-driver', 'loom', '--ipam-opt', 'loom.name=shared', '-o', 'loom.name=shared', '--subnet', '10.3.0.0/24', 'viashared'], { timeoutMs: 20_000 }), 'network create with loom IPAM');
  const dn = JSON.parse(await ok(dk('network', 'inspect', 'viashared')))[0];
  assert.equal(dn.IPAM.Config[0].Subnet, '10.3.0.0/24');
  await ok(dk('run', '-d', '--name', 'dc2', '--network', 'viashared', 'box', 'httpd', '-f', '-p', '8080', '-h', '/www'), `docker run: ${ddLog.slice(-2000)}`);
  const ip = await ok(dk('inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', 'dc2'));
  assert.equal(ip, '10.3.0.3', 'loom\'s IPAM knew 10.3.0.2 was lc2\'s');
  const body = await eventually(() => sb.loom('exec', 'lc2', 'wget', '-qO-', `http://${ip}:8080/`), (r) => r.code === 0);
  assert.equal(body.stdout.trim(), 'hello from loom');
  // a loom container started now does not get dockerd's address either
  await ok(sb.loom('run', '-d', '--name', 'lc3', '--network', 'shared', 'box', 'sleep', '600'), 'run lc3');
  assert.equal(await ok(sb.loom('inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', 'lc3')), '10.3.0.4');
  // loom's side refuses to remove the network while dockerd's container is on it
  const busy = await sb.loom('network', 'rm', 'shared');
  assert.equal(busy.code, 1);
  assert.match(busy.stderr, /has active endpoints/);
  await ok(dk('rm', '-f', 'dc2'));
  await ok(dk('network', 'rm', 'viashared'), 'docker network rm');
  // the loom network dockerd used stays
  await ok(sb.loom('network', 'inspect', 'shared'), 'shared is still there');
  await ok(sb.loom('rm', '-f', 'lc2', 'lc3'));
  await ok(sb.loom('network', 'rm', 'shared'));
});
