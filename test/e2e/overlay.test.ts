// Multi-host overlay networks end to end (dockerd's classic --cluster-store / --cluster-advertise model):
//
//   host A (sandbox ova)        host B (sandbox ovb)           etcd (netns loomt-etcd-<pid>)
//   ul0 203.0.113.1/24          ul0 203.0.113.2/24             ul0 203.0.113.10/24, listens there only
//          \__________ underlay bridge (netns loomt-ul-<pid>) ____________/
//
// Each host runs its own loom daemon with --cluster-store etcd://203.0.113.10:2379 and its underlay address
// as --cluster-advertise; each still has its own "outside world" (198.51.100.2) for egress. Containers talk
// across hosts through VXLAN between the two underlay addresses; nothing leaves the namespaces made here.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { busyboxTar, createSandbox, eventually, requireRoot, runCmd, type Result, type Sandbox } from '../helpers/sandbox.ts';
import { ok } from '../helpers/assert.ts';

const etcdBin = spawnSync('sh', ['-c', 'command -v etcd'], { encoding: 'utf8' }).stdout.trim();
const skip = requireRoot() || (etcdBin ? false : 'etcd is not installed (Debian package etcd-server; scripts/setup installs it)');

const ulNs = `loomt-ul-${process.pid}`;
const etcdNs = `loomt-etcd-${process.pid}`;
const ETCD = '203.0.113.10';
const STORE = `etcd://${ETCD}:2379`;
const ADDR = { a: '203.0.113.1', b: '203.0.113.2' };
let a: Sandbox, b: Sandbox, c: Sandbox;
let etcd: ChildProcess | null = null;
let etcdDir = '';
let etcdLog = '';

const sh = (...argv: string[]) => {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
};

/** A host's leg on the underlay: ul0 in its namespace, the other end on the underlay bridge. */
function plugIntoUnderlay(ns: string, addr: string, port: string): void {
  sh('ip', '-n', ns, 'link', 'add', 'ul0', 'type', 'veth', 'peer', 'name', port, 'netns', ulNs);
  sh('ip', '-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'ul0');
  sh('ip', '-n', ns, 'link', 'set', 'ul0', 'up');
  sh('ip', '-n', ulNs, 'link', 'set', 'dev', port, 'master', 'br0', 'up');
}

// B's lease lives 3 s (dockerd's --cluster-store-opt discovery.ttl), so its death shows within the test;
// A also serves a real dockerd (Debian's 20.10, in A's namespace) as its network plugin.
// --ovs=managed: OVS starts only with the first openvswitch network (the last test's), nothing before
const daemonArgs = (host: 'a' | 'b') => ['--cluster-store', STORE, '--cluster-advertise', ADDR[host], ...(host === 'b' ? ['--cluster-store-opt', 'discovery.ttl=3'] : [])
  , ...(host === 'a' && dockerd ? ['--network-plugin-socket', path.join(a.dir, 'plugins', 'loom.sock'), '--network-plugin-docker-host', `unix://${ddSock()}`] : [])
  , ...(haveOvs ? ['--ovs=managed'] : [])];
const haveOvs = fs.existsSync('/usr/sbin/ovs-vswitchd');
/** The managed OVS daemons run detached (they outlive a loom restart): ended by the test. */
function killOvs(sb: Sandbox | undefined): void {
  for (const f of ['ovs-vswitchd.pid', 'ovsdb-server.pid']) {
    try { if (sb) process.kill(Number(fs.readFileSync(path.join(sb.dir, 'run', 'ovs', f), 'utf8')), 'SIGKILL'); } catch { /* not started */ }
  }
}

const dockerd = fs.existsSync('/usr/sbin/dockerd') ? '/usr/sbin/dockerd' : '';
let dd: ChildProcess | null = null;
let ddLog = '';
const ddSock = () => path.join(a.dir, 'dd', 'docker.sock');
const dk = (...args: string[]) => runCmd(['docker', '-H', `unix://${ddSock()}`, ...args], { timeoutMs: 60_000 });

/** The forwarding entries of host A's tunnel device (the only overlay network's namespace there). */
function fdbOfA(): Promise<Result> {
  const dir = path.join(a.dir, 'run', 'netns');
  return a.hostExec(['nsenter', `--net=${path.join(dir, fs.readdirSync(dir)[0]!)}`, 'bridge', 'fdb', 'show', 'dev', 'vxlan0']);
}

/** The overlay address of a container (its overlay network only: the gateway endpoint is not listed, as in Docker). */
const ipOf = (sb: Sandbox, name: string) => ok(sb.loom('inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', name), `inspect ${name}`);

/** What the host namespace has of overlay leftovers: vxlan devices, veths on loom_gwbridge, sandbox namespaces. */
async function leftovers(sb: Sandbox): Promise<string[]> {
  const out: string[] = [];
  const vx = await ok(sb.hostExec(['ip', '-o', 'link', 'show', 'type', 'vxlan']));
  if (vx) out.push(`vxlan: ${vx}`);
  const gw = await sb.hostExec(['ip', '-o', 'link', 'show', 'master', 'loom_gwbridge']);
  if (gw.code === 0 && gw.stdout.trim()) out.push(`gwbridge ports: ${gw.stdout.trim()}`);
  const dir = path.join(sb.dir, 'run', 'netns');
  if (fs.existsSync(dir) && fs.readdirSync(dir).length) out.push(`sandboxes: ${fs.readdirSync(dir).join(' ')}`);
  return out;
}

before(async () => {
  if (skip) return;
  for (const ns of [ulNs, etcdNs]) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  [a, b, c] = await Promise.all([createSandbox({ tag: 'ova' }), createSandbox({ tag: 'ovb' }), createSandbox({ tag: 'ovc' })]);
  sh('ip', 'netns', 'add', ulNs);
  sh('ip', 'netns', 'add', etcdNs);
  sh('ip', '-n', ulNs, 'link', 'add', 'br0', 'type', 'bridge');
  sh('ip', '-n', ulNs, 'link', 'set', 'br0', 'up');
  plugIntoUnderlay(a.hostNs, ADDR.a, 'ul-a');
  plugIntoUnderlay(b.hostNs, ADDR.b, 'ul-b');
  plugIntoUnderlay(etcdNs, ETCD, 'ul-etcd');
  sh('ip', '-n', etcdNs, 'link', 'set', 'lo', 'up');
  etcdDir = fs.mkdtempSync(path.join(os.tmpdir(), 'loomt-etcd-'));
  etcd = spawn('nsenter', [`--net=/run/netns/${etcdNs}`, '--', etcdBin, '--name', 'ov', '--data-dir', path.join(etcdDir, 'data'),
    '--listen-client-urls', `http://${ETCD}:2379`, '--advertise-client-urls', `http://${ETCD}:2379`,
    '--listen-peer-urls', `http://${ETCD}:2380`, '--initial-advertise-peer-urls', `http://${ETCD}:2380`,
    '--initial-cluster', `ov=http://${ETCD}:2380`, '--logger', 'zap', '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
  etcd.stderr!.on('data', (d: Buffer) => (etcdLog += d.toString()));
  const health = await eventually(() => a.hostExec(['busybox', 'wget', '-qO-', `http://${ETCD}:2379/health`], 3000), (r) => r.code === 0, 20_000);
  assert.equal(health.code, 0, `etcd did not come up: ${etcdLog}`);
  await Promise.all([a.startDaemon(daemonArgs('a')), b.startDaemon(daemonArgs('b')), c.startDaemon()]);
  await Promise.all([a.image('box'), b.image('box'), c.image('box')]);
}, { timeout: 120_000 });

after(async () => {
  if (skip) return;
  if (dd) {
    await dk('rm', '-f', 'dd1').catch(() => {});
    dd.kill('SIGTERM');
    await Promise.race([new Promise((r) => (dd!.exitCode !== null || dd!.signalCode ? r(null) : dd!.once('exit', r))), new Promise((r) => setTimeout(r, 20_000))]);
    if (dd.exitCode === null && !dd.signalCode) dd.kill('SIGKILL');
    const ctdPid = path.join(a.dir, 'dd', 'x', 'containerd', 'containerd.pid');
    if (fs.existsSync(ctdPid)) try { process.kill(Number(fs.readFileSync(ctdPid, 'utf8').trim()), 'SIGKILL'); } catch { /* gone */ }
  }
  if (process.env.OV_LOGS) for (const s of [a, b]) fs.writeFileSync(path.join(process.env.OV_LOGS, `${s.tag}.log`), s.daemonLog);
  for (const s of [a, b]) {
    await s?.stopDaemon('SIGKILL').catch(() => {});
    killOvs(s);
  }
  await Promise.all([a, b, c].filter(Boolean).map((s) => s.cleanup()));
  if (etcd?.pid) {
    etcd.kill('SIGKILL');
    await new Promise((r) => (etcd!.exitCode !== null || etcd!.signalCode ? r(null) : etcd!.once('exit', r)));
  }
  for (const ns of [ulNs, etcdNs]) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  if (etcdDir) fs.rmSync(etcdDir, { recursive: true, force: true });
});

test('without --cluster-store an overlay network is refused with Docker\'s message', { skip }, async () => {
  const r = await c.loom('network', 'create', '-d', 'overlay', 'ov0');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cannot find address space GlobalDefault \(most likely the backing datastore is not configured\)/);
  assert.match(r.stderr, /--cluster-store/);
  const d = await c.docker('network', 'create', '-d', 'overlay', '--subnet', '10.9.0.0/24', 'ov0');
  assert.equal(d.code, 1);
  assert.match(d.stderr, /pool "10\.9\.0\.0\/24".*backing datastore is not configured/);
});

test('an overlay network created on host A is seen on host B (ls, inspect)', { skip }, async () => {
  const id = await ok(a.loom('network', 'create', '-d', 'overlay', '--attachable', 'ov1'), 'create ov1');
  assert.match(id, /^[0-9a-f]{64}$/);
  const ls = await eventually(() => b.loom('network', 'ls', '--filter', 'driver=overlay', '--format', '{{.Name}} {{.Driver}} {{.Scope}}'), (r) => r.stdout.includes('ov1'));
  assert.equal(ls.stdout.trim(), 'ov1 overlay global');
  const inspA = JSON.parse(await ok(a.loom('network', 'inspect', 'ov1')))[0];
  const inspB = JSON.parse(await ok(b.loom('network', 'inspect', 'ov1')))[0];
  assert.equal(inspB.Id, id);
  assert.equal(inspB.Scope, 'global');
  assert.equal(inspB.Driver, 'overlay');
  assert.equal(inspB.Attachable, true);
  // Docker's GlobalDefault pool: 10.0.0.0/24 first, and the first VNI of libnetwork's range
  assert.deepEqual(inspB.IPAM.Config, [{ Subnet: '10.0.0.0/24', Gateway: '10.0.0.1' }]);
  assert.equal(inspB.Options['com.docker.network.driver.overlay.vxlanid_list'], '256');
  assert.deepEqual(inspA.IPAM, inspB.IPAM);
  // the unmodified docker CLI sees it the same way
  const dls = await ok(b.docker('network', 'ls', '--filter', 'name=ov1', '--format', '{{.Name}} {{.Driver}} {{.Scope}}'), 'docker network ls on B');
  assert.equal(dls, 'ov1 overlay global');
  // the name is the cluster's: B cannot create another ov1, and a second overlay gets the next subnet and VNI
  const dup = await b.loom('network', 'create', '-d', 'overlay', 'ov1');
  assert.equal(dup.code, 1);
  assert.match(dup.stderr, /network with name ov1 already exists/);
  await ok(b.loom('network', 'create', '-d', 'overlay', '-o', 'com.docker.network.driver.overlay.vxlanid_list=4097', 'ov2'), 'create ov2');
  const ov2 = JSON.parse(await ok(b.loom('network', 'inspect', 'ov2')))[0];
  assert.equal(ov2.IPAM.Config[0].Subnet, '10.0.1.0/24');
  assert.equal(ov2.Options['com.docker.network.driver.overlay.vxlanid_list'], '4097');
  const taken = await a.loom('network', 'create', '-d', 'overlay', '-o', 'com.docker.network.driver.overlay.vxlanid_list=4097', 'ov3');
  assert.equal(taken.code, 1);
  assert.match(taken.stderr, /vxlan id 4097/);
  const over = await a.loom('network', 'create', '-d', 'overlay', '--subnet', '10.0.1.128/25', 'ov3');
  assert.equal(over.code, 1);
  assert.match(over.stderr, /Pool overlaps/);
  // nothing exists in the kernel before the first endpoint (Docker creates the sandbox at the first join)
  assert.deepEqual(await leftovers(a), []);
  await ok(b.loom('network', 'rm', 'ov2'), 'rm ov2');
  await eventually(() => a.loom('network', 'ls', '-q', '--filter', 'name=ov2'), (r) => r.stdout.trim() === '');
});

test('containers on two hosts reach each other by address and by name; egress goes out through loom_gwbridge', { skip }, async () => {
  await eventually(() => b.loom('network', 'inspect', 'ov1'), (r) => r.code === 0);
  await ok(a.loom('run', '-d', '--name', 'ca', '--network', 'ov1', 'box', 'sleep', '600'), 'run ca');
  await ok(b.loom('run', '-d', '--name', 'cb', '--network', 'ov1', 'box', 'sleep', '600'), 'run cb');
  const ipA = await ipOf(a, 'ca');
  const ipB = await ipOf(b, 'cb');
  assert.equal(ipA, '10.0.0.2');
  assert.equal(ipB, '10.0.0.3', 'B knew of A\'s address and took the next one');
  // Docker's layout: eth0 on the overlay (MTU 1450), eth1 on the gateway bridge with the default route
  const links = await ok(a.loom('exec', 'ca', 'ip', '-o', 'link', 'show', 'eth0'));
  assert.match(links, /mtu 1450/);
  const route = await ok(a.loom('exec', 'ca', 'ip', 'route', 'show', 'default'));
  assert.match(route, /^default via 172\.\d+\.0\.1 dev eth1/);
  // the tunnel: vxlan0 inside the network's namespace, VNI 256, local = the advertise address, port 4789
  const sbox = path.join(a.dir, 'run', 'netns', fs.readdirSync(path.join(a.dir, 'run', 'netns'))[0]!);
  const vx = await ok(a.hostExec(['nsenter', `--net=${sbox}`, 'ip', '-d', 'link', 'show', 'vxlan0']));
  assert.match(vx, /vxlan id 256 local 203\.0\.113\.1 .*dstport 4789 nolearning proxy/);

  await ok(a.loom('exec', 'ca', 'ping', '-c1', '-W3', ipB), 'ca pings cb by address');
  await ok(b.loom('exec', 'cb', 'ping', '-c1', '-W3', ipA), 'cb pings ca by address');
  const ns = await ok(a.loom('exec', 'ca', 'nslookup', 'cb'), 'ca resolves cb');
  assert.match(ns, /Address:\s+10\.0\.0\.3/);
  await ok(a.loom('exec', 'ca', 'ping', '-c1', '-W3', 'cb'), 'ca pings cb by name');
  await ok(b.loom('exec', 'cb', 'ping', '-c1', '-W3', 'ca.ov1'), 'cb pings ca by name.network');
  // the topology (issue 13) shows A's tunnel endpoint and B's container behind B's
  const ov = (await a.api('GET', '/loom/topology')).body.networks.find((n: any) => n.name === 'ov1');
  assert.equal(ov.tunnel.local, ADDR.a);
  assert.deepEqual(ov.tunnel.remotes.map((r: any) => [r.vtep, r.endpoints.map((e: any) => [e.name, e.ipv4])]), [[ADDR.b, [['cb', ipB]]]]);

  // egress: each host's own outside world, masqueraded behind that host's address
  a.spawnExt(['busybox', 'httpd', '-f', '-p', '198.51.100.2:8080', '-h', path.join(a.dir)]);
  fs.writeFileSync(path.join(a.dir, 'index.html'), 'outside\n');
  const body = await eventually(() => a.loom('exec', 'ca', 'wget', '-qO-', 'http://198.51.100.2:8080/index.html'), (r) => r.code === 0);
  assert.equal(body.stdout.trim(), 'outside');
  // docker_gwbridge is a local bridge network of its own, as in Docker
  const gw = JSON.parse(await ok(a.loom('network', 'inspect', 'docker_gwbridge')))[0];
  assert.equal(gw.Scope, 'local');
  assert.equal(gw.Options['com.docker.network.bridge.name'], 'loom_gwbridge');
  assert.equal(gw.Options['com.docker.network.bridge.enable_icc'], 'false');
});

test('concurrent runs on both hosts never hand out one address twice', { skip }, async () => {
  const n = 4;
  const runs = [];
  for (let i = 0; i < n; i++) {
    runs.push(ok(a.loom('run', '-d', '--name', `pa${i}`, '--network', 'ov1', 'box', 'sleep', '600'), `run pa${i}`));
    runs.push(ok(b.loom('run', '-d', '--name', `pb${i}`, '--network', 'ov1', 'box', 'sleep', '600'), `run pb${i}`));
  }
  await Promise.all(runs);
  const ips = [await ipOf(a, 'ca'), await ipOf(b, 'cb')];
  for (let i = 0; i < n; i++) ips.push(await ipOf(a, `pa${i}`), await ipOf(b, `pb${i}`));
  assert.equal(new Set(ips).size, ips.length, `duplicate addresses: ${ips.join(' ')}`);
  // and they all work: the last ones started on B reach the first on A
  await ok(b.loom('exec', `pb${n - 1}`, 'ping', '-c1', '-W3', await ipOf(a, `pa${n - 1}`)), 'pb pings pa');
  const rm = [];
  for (let i = 0; i < n; i++) rm.push(ok(a.loom('rm', '-f', `pa${i}`)), ok(b.loom('rm', '-f', `pb${i}`)));
  await Promise.all(rm);
});

test('network rm is refused on any host while a host has endpoints on it', { skip }, async () => {
  const r = await b.loom('network', 'rm', 'ov1');
  assert.equal(r.code, 1);
  // B's own cb is named by B; A's ca is the cluster's
  assert.match(r.stderr, /has active endpoints/);
  await ok(b.loom('rm', '-f', 'cb'), 'rm cb');
  const r2 = await b.loom('network', 'rm', 'ov1');
  assert.equal(r2.code, 1);
  assert.match(r2.stderr, /network ov1 has active endpoints \(name:"ca" id:"[0-9a-f]{12}"\)/);
  // B has no endpoint left on ov1: its namespace, vxlan device and veths are gone already
  assert.deepEqual(await eventually(() => leftovers(b), []), []);
  // the network still works after the refusal
  await ok(b.loom('run', '-d', '--name', 'cb', '--network', 'ov1', 'box', 'sleep', '600'), 'run cb again');
  await ok(b.loom('exec', 'cb', 'ping', '-c1', '-W3', 'ca'), 'cb pings ca');
});

test('a daemon restart keeps the overlay working on both sides', { skip }, async () => {
  await a.stopDaemon();
  await a.startDaemon(daemonArgs('a'));
  await ok(a.loom('exec', 'ca', 'ping', '-c1', '-W3', await ipOf(b, 'cb')), 'ca pings cb after A restarted');
  await ok(b.loom('exec', 'cb', 'ping', '-c1', '-W3', 'ca'), 'cb resolves and pings ca after A restarted');
  // a new container on the restarted host joins the same sandbox and is reachable from B
  await ok(a.loom('run', '-d', '--name', 'ca2', '--network', 'ov1', 'box', 'sleep', '600'), 'run ca2');
  await ok(b.loom('exec', 'cb', 'ping', '-c1', '-W3', 'ca2'), 'cb pings ca2');
  await ok(a.loom('rm', '-f', 'ca2'));
});

test('a published port of an overlay container answers from outside, through the gateway bridge', { skip }, async () => {
  await ok(a.loom('run', '-d', '--name', 'web', '--network', 'ov1', '-p', '8081:8080', 'box', 'httpd', '-f', '-p', '8080', '-h', '/www'), 'run web');
  const out = await eventually(() => a.extExec(['busybox', 'wget', '-qO-', 'http://198.51.100.1:8081/']), (r) => r.code === 0);
  assert.equal(out.stdout.trim(), 'hello from loom');
  // and over the overlay from the other host, on the container's own port
  const over = await eventually(() => b.loom('exec', 'cb', 'wget', '-qO-', 'http://web:8080/'), (r) => r.code === 0);
  assert.equal(over.stdout.trim(), 'hello from loom');
  await ok(a.loom('rm', '-f', 'web'));
});

test('a host that dies takes its endpoints along when its lease runs out, and publishes them again when back', { skip }, async () => {
  const macB = await ok(b.loom('inspect', '-f', '{{range .NetworkSettings.Networks}}{{.MacAddress}}{{end}}', 'cb'));
  assert.match((await fdbOfA()).stdout, new RegExp(`${macB} dst ${ADDR.b}`));
  await b.stopDaemon('SIGKILL'); // its containers keep running; its lease is no longer renewed
  // (the bridge's own learned entry for that MAC may stay until it ages out: only vxlan0's tunnel entry counts)
  const tunnel = new RegExp(`${macB} dst ${ADDR.b}`);
  const gone = await eventually(fdbOfA, (r) => !tunnel.test(r.stdout), 20_000);
  assert.doesNotMatch(gone.stdout, tunnel, 'A still tunnels to B\'s endpoint after B\'s lease ran out');
  await b.startDaemon(daemonArgs('b'));
  const back = await eventually(fdbOfA, (r) => tunnel.test(r.stdout), 20_000);
  assert.match(back.stdout, new RegExp(`${macB} dst ${ADDR.b}`));
  await ok(a.loom('exec', 'ca', 'ping', '-c1', '-W3', 'cb'), 'ca pings cb once B is back');
});

test('a dual-stack overlay with several subnets, an ip-range and an aux address: IPv4 and IPv6 across hosts, AAAA answers, NDP entries', { skip }, async () => {
  const noV6 = await a.loom('network', 'create', '-d', 'overlay', '--ipv6', 'ov6x');
  assert.equal(noV6.code, 1);
  assert.match(noV6.stderr, /IPv6 address pool.*needs an IPv6 --subnet/);
  const notEnabled = await a.loom('network', 'create', '-d', 'overlay', '--subnet', 'fd00:9::/64', 'ov6x');
  assert.equal(notEnabled.code, 1);
  assert.match(notEnabled.stderr, /invalid subnet fd00:9::\/64: IPv6 has not been enabled for this network/);
  const id = await ok(a.loom('network', 'create', '-d', 'overlay', '--ipv6', '--subnet', '10.0.9.0/24', '--ip-range', '10.0.9.128/25',
    '--aux-address', 'router=10.0.9.129', '--subnet', 'fd00:9::/64', '--subnet', '10.0.10.0/24', 'ov6'), 'create ov6');
  const insp = JSON.parse(await ok(eventually(() => b.loom('network', 'inspect', 'ov6'), (r) => r.code === 0), 'inspect ov6 on B'))[0];
  assert.equal(insp.EnableIPv6, true);
  assert.deepEqual(insp.IPAM.Config, [
    { Subnet: '10.0.9.0/24', IPRange: '10.0.9.128/25', Gateway: '10.0.9.1', AuxiliaryAddresses: { router: '10.0.9.129' } },
    { Subnet: '10.0.10.0/24', Gateway: '10.0.10.1' },
    { Subnet: 'fd00:9::/64', Gateway: 'fd00:9::1' },
  ]);
  // the subnets are the cluster's: another overlay cannot take the IPv6 one
  const over = await b.loom('network', 'create', '-d', 'overlay', '--ipv6', '--subnet', 'fd00:9::/80', 'ov6y');
  assert.equal(over.code, 1);
  assert.match(over.stderr, /Pool overlaps/);

  await ok(a.loom('run', '-d', '--name', 'x6a', '--network', 'ov6', 'box', 'sleep', '600'), 'run x6a');
  await ok(b.loom('run', '-d', '--name', 'x6b', '--network', 'ov6', 'box', 'sleep', '600'), 'run x6b');
  const addrs = (sb: Sandbox, n: string) => ok(sb.loom('inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.GlobalIPv6Address}}{{end}}', n));
  const [v4a, v6a] = (await addrs(a, 'x6a')).split(' ');
  const [v4b, v6b] = (await addrs(b, 'x6b')).split(' ');
  // from the ip-range, past the aux address; IPv6 from the IPv6 subnet, B taking the next of each
  assert.deepEqual([v4a, v6a, v4b, v6b], ['10.0.9.128', 'fd00:9::2', '10.0.9.130', 'fd00:9::3']);
  const eth0 = await ok(b.loom('exec', 'x6b', 'ip', '-o', 'addr', 'show', 'eth0'));
  assert.match(eth0, /inet6 fd00:9::3\/64/);

  await ok(a.loom('exec', 'x6a', 'ping', '-c1', '-W3', v4b), 'x6a pings x6b over IPv4');
  await ok(a.loom('exec', 'x6a', 'ping', '-c1', '-W3', v6b), 'x6a pings x6b over IPv6');
  await ok(b.loom('exec', 'x6b', 'ping', '-c1', '-W3', v6a), 'x6b pings x6a over IPv6');
  // names across hosts: A and AAAA records
  const aaaa = await ok(a.loom('exec', 'x6a', 'nslookup', '-type=AAAA', 'x6b'), 'x6a resolves x6b AAAA');
  assert.match(aaaa, /fd00:9::3/);
  const a4 = await ok(b.loom('exec', 'x6b', 'nslookup', '-type=A', 'x6a'), 'x6b resolves x6a A');
  assert.match(a4, /10\.0\.9\.128/);
  // TCP over IPv6 by name: B's container serves, A's fetches by AAAA
  await ok(b.loom('exec', '-d', 'x6b', 'httpd', '-p', '8080', '-h', '/www'), 'httpd in x6b');
  const body = await eventually(() => a.loom('exec', 'x6a', 'wget', '-qO-', `http://[${v6b}]:8080/`), (r) => r.code === 0);
  assert.equal(body.stdout.trim(), 'hello from loom');
  // the NDP entries on A's tunnel device, as the ARP ones: B's two addresses to B's MAC, the MAC to B
  const sbox = path.join(a.dir, 'run', 'netns', `1-${id.slice(0, 10)}`);
  const macB = await ok(b.loom('inspect', '-f', '{{range .NetworkSettings.Networks}}{{.MacAddress}}{{end}}', 'x6b'));
  const neigh = await ok(a.hostExec(['nsenter', `--net=${sbox}`, 'ip', 'neigh', 'show', 'dev', 'vxlan0']));
  assert.match(neigh, new RegExp(`${v4b} lladdr ${macB} PERMANENT`));
  assert.match(neigh, new RegExp(`fd00:9::3 lladdr ${macB} PERMANENT`));
  assert.match(await ok(a.hostExec(['nsenter', `--net=${sbox}`, 'bridge', 'fdb', 'show', 'dev', 'vxlan0'])), new RegExp(`${macB} dst ${ADDR.b}`));
  // B's container goes: both of its entries go on A
  await ok(b.loom('rm', '-f', 'x6b'));
  const after = await eventually(() => a.hostExec(['nsenter', `--net=${sbox}`, 'ip', 'neigh', 'show', 'dev', 'vxlan0']), (r) => !r.stdout.includes(macB));
  assert.doesNotMatch(after.stdout, new RegExp(macB));
  await ok(a.loom('rm', '-f', 'x6a'));
  await ok(b.loom('network', 'rm', 'ov6'), 'rm ov6');
  assert.equal((await eventually(() => a.loom('network', 'ls', '-q', '--filter', 'name=ov6'), (r) => r.stdout.trim() === '')).stdout.trim(), '');
});

test('real dockerd on host A joins a loom overlay through loom\'s plugin: its container and host B\'s loom container reach each other, by name from B', { skip: skip || (dockerd ? false : 'dockerd is not installed (Debian package docker.io)') }, async () => {
  const ddDir = path.join(a.dir, 'dd');
  fs.mkdirSync(ddDir, { recursive: true });
  // its own mount namespace with a /run of its own: /run/docker/plugins (where dockerd looks) shows A's plugin socket
  const script = `mount -t tmpfs tmpfs /run && mkdir -p /run/docker/plugins && mount --bind ${path.join(a.dir, 'plugins')} /run/docker/plugins && exec ${dockerd} --data-root ${ddDir}/data --exec-root ${ddDir}/x `
    + `--pidfile ${ddDir}/docker.pid -H unix://${ddSock()} --iptables=false --ip6tables=false --bridge=none --userland-proxy=false --storage-driver=vfs`;
  dd = spawn('nsenter', [`--net=/run/netns/${a.hostNs}`, '--', 'unshare', '-m', '--propagation', 'private', 'sh', '-c', script], { stdio: ['ignore', 'ignore', 'pipe'] });
  dd.stderr!.on('data', (d: Buffer) => (ddLog += d.toString()));
  const up = await eventually(() => dk('version', '--format', '{{.Server.Version}}'), (r) => r.code === 0, 60_000);
  assert.equal(up.code, 0, `dockerd did not come up: ${ddLog.slice(-3000)}`);
  await ok(dk('import', busyboxTar(a.dir), 'box'), 'docker import box');

  await ok(a.loom('network', 'create', '-d', 'overlay', '--subnet', '10.0.20.0/24', 'ovd'), 'create ovd');
  await eventually(() => b.loom('network', 'inspect', 'ovd'), (r) => r.code === 0);
  await ok(b.loom('run', '-d', '--name', 'lb', '--network', 'ovd', 'box', 'httpd', '-f', '-p', '8080', '-h', '/www'), 'run lb on B');
  const lbIp = await ipOf(b, 'lb');
  // dockerd's own IPAM would not know other hosts' addresses: refused by name
  const noIpam = await dk('network', 'create', '-d', 'loom', '-o', 'loom.name=ovd', '--subnet', '10.0.20.0/24', 'viaovd');
  assert.equal(noIpam.code, 1);
  assert.match(noIpam.stderr, /ovd is an overlay network: create the docker network with --ipam-driver loom --ipam-opt loom\.name=ovd/);
  await ok(dk('network', 'create', '-d', 'loom', '-o', 'loom.name=ovd', '--ipam-driver', 'loom', '--ipam-opt', 'loom.name=ovd', '--subnet', '10.0.20.0/24', 'viaovd'), `docker network create: ${ddLog.slice(-2000)}`);
  await ok(dk('run', '-d', '--name', 'dd1', '--network', 'viaovd', 'box', 'httpd', '-f', '-p', '8080', '-h', '/www'), `docker run: ${ddLog.slice(-2000)}`);
  const ddIp = await ok(dk('inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', 'dd1'));
  assert.equal(ddIp, '10.0.20.3', 'B\'s container holds .2 cluster-wide');
  // across hosts: dockerd's container (on A) fetches from B's loom container, and B's reaches it by name
  const there = await eventually(() => dk('exec', 'dd1', 'wget', '-qO-', `http://${lbIp}:8080/`), (r) => r.code === 0);
  assert.equal(there.stdout.trim(), 'hello from loom');
  const back = await eventually(() => b.loom('exec', 'lb', 'wget', '-qO-', 'http://dd1:8080/'), (r) => r.code === 0, 20_000);
  assert.equal(back.stdout.trim(), 'hello from loom', back.stderr);
  // its address is the cluster's: network rm on B names it among the active endpoints
  const busy = await b.loom('network', 'rm', 'ovd');
  assert.equal(busy.code, 1);
  assert.match(busy.stderr, /has active endpoints/);
  await ok(dk('rm', '-f', 'dd1'));
  await ok(dk('network', 'rm', 'viaovd'), 'docker network rm');
  await ok(b.loom('rm', '-f', 'lb'));
  await ok(a.loom('network', 'rm', 'ovd'), 'rm ovd once nothing is on it');
});

test('removing the containers, then the network, leaves nothing on either host', { skip }, async () => {
  await ok(a.loom('rm', '-f', 'ca'));
  await ok(b.loom('rm', '-f', 'cb'));
  await ok(a.loom('network', 'rm', 'ov1'), 'rm ov1');
  const gone = await eventually(() => b.loom('network', 'ls', '-q', '--filter', 'driver=overlay'), (r) => r.stdout.trim() === '');
  assert.equal(gone.stdout.trim(), '');
  for (const sb of [a, b]) assert.deepEqual(await eventually(() => leftovers(sb), []), [], `leftovers on ${sb.tag}`);
  // the name and subnet are free again, cluster-wide
  await ok(b.loom('network', 'create', '-d', 'overlay', 'ov1'), 'create ov1 again');
  const seen = await eventually(() => a.loom('network', 'inspect', 'ov1'), (r) => r.code === 0);
  const cfg = JSON.parse(await ok(Promise.resolve(seen), 'inspect ov1 on A'))[0];
  assert.equal(cfg.IPAM.Config[0].Subnet, '10.0.0.0/24');
  await ok(a.loom('network', 'rm', 'ov1'));
});

test('with a cluster store an openvswitch network is global: containers on two hosts ping and fetch over HTTP through the VXLAN port', { skip: skip || (haveOvs ? false : 'Open vSwitch is not installed (openvswitch-switch)') }, async () => {
  await ok(a.loom('network', 'create', '-d', 'openvswitch', '--subnet', '10.77.0.0/24', 'ovsg'), 'create ovsg');
  const seen = await eventually(() => b.loom('network', 'ls', '--filter', 'name=ovsg', '--format', '{{.Driver}} {{.Scope}}'), (r) => r.stdout.trim() === 'openvswitch global', 15_000);
  assert.equal(seen.stdout.trim(), 'openvswitch global');
  await ok(a.loom('run', '-d', '--net', 'ovsg', '--name', 'oa', 'box', 'httpd', '-f', '-p', '80', '-h', '/www'), 'run oa');
  await ok(b.loom('run', '-d', '--net', 'ovsg', '--name', 'ob', 'box', 'httpd', '-f', '-p', '80', '-h', '/www'), 'run ob');
  const [ipA, ipB] = [await ipOf(a, 'oa'), await ipOf(b, 'ob')];
  assert.notEqual(ipA, ipB);
  // inspect on either host: the bridge (the same name everywhere) and each local endpoint's port
  const [insA, insB] = [JSON.parse(await ok(a.loom('network', 'inspect', 'ovsg')))[0], JSON.parse(await ok(b.loom('network', 'inspect', 'ovsg')))[0]];
  assert.equal(insB.Scope, 'global');
  assert.match(insA.Options['loom.ovs.bridge'], /^ovs-[0-9a-f]{11}$/);
  assert.equal(insB.Options['loom.ovs.bridge'], insA.Options['loom.ovs.bridge']);
  assert.match(Object.values(insB.Containers).map((c: any) => c.OvsPort).join(), /^veth/);
  // each host: the OVS bridge with a VXLAN port (a kernel vxlan device: VNI from the store, local = advertise)
  const vsctl = (sb: Sandbox, ...x: string[]) => ok(sb.hostExec(['ovs-vsctl', `--db=unix:${path.join(sb.dir, 'run', 'ovs', 'db.sock')}`, ...x]));
  for (const [sb, addr] of [[a, ADDR.a], [b, ADDR.b]] as const) {
    const br = (await vsctl(sb, 'list-br')).trim();
    assert.match(await vsctl(sb, 'list-ports', br), /^ovx-[0-9a-f]{11}$/m);
    assert.match(await ok(sb.hostExec(['ip', '-d', 'link', 'show', 'type', 'vxlan'])), new RegExp(`ovx-.*vxlan id \\d+ local ${addr.replace(/\./g, '\\.')} .*dstport 4789 nolearning proxy`, 's'));
  }
  // across the tunnel: ICMP by address and name, TCP (HTTP) both ways
  assert.equal((await eventually(() => b.loom('exec', 'ob', 'ping', '-c1', '-W2', ipA), (r) => r.code === 0, 15_000)).code, 0, 'ob pings oa');
  await ok(a.loom('exec', 'oa', 'ping', '-c1', '-W2', 'ob'), 'oa pings ob by name');
  assert.match(await ok(b.loom('exec', 'ob', 'wget', '-qO-', 'http://oa/'), 'ob fetches from oa'), /./);
  assert.match(await ok(a.loom('exec', 'oa', 'wget', '-qO-', `http://${ipB}/`), 'oa fetches from ob'), /./);
  // 2 MiB: full-size segments through the userspace datapath and the tunnel (MTU 1450 inside)
  await ok(a.loom('exec', 'oa', 'dd', 'if=/dev/zero', 'of=/www/big', 'bs=1024', 'count=2048'));
  assert.equal(await ok(b.loom('exec', 'ob', 'sh', '-c', `wget -qO- http://${ipA}/big | wc -c`)), '2097152');
  assert.match(await ok(b.loom('exec', 'ob', 'ip', '-o', 'link', 'show', 'eth0')), /mtu 1450/);
  // a restart of A's daemon (its record comes back from the store): the tunnel still carries both ways
  await a.stopDaemon('SIGTERM');
  await a.startDaemon(daemonArgs('a'));
  assert.equal((await eventually(() => b.loom('exec', 'ob', 'wget', '-qO-', `http://${ipA}/`), (r) => r.code === 0, 15_000)).code, 0, 'ob fetches from oa after A restarted');
  await ok(a.loom('exec', 'oa', 'ping', '-c1', '-W2', ipB), 'oa pings ob after A restarted');
  // enable_icc=false holds across hosts too (the OpenFlow rules drop what comes out of the tunnel port)
  await ok(a.loom('network', 'create', '-d', 'openvswitch', '--subnet', '10.78.0.0/24', '-o', 'com.docker.network.bridge.enable_icc=false', 'ovsq'), 'create ovsq');
  await eventually(() => b.loom('network', 'inspect', 'ovsq'), (r) => r.code === 0, 15_000);
  await ok(a.loom('run', '-d', '--net', 'ovsq', '--name', 'qa', 'box', 'httpd', '-f', '-p', '80', '-h', '/www'));
  await ok(b.loom('run', '-d', '--net', 'ovsq', '--name', 'qb', 'box', 'sleep', '1d'));
  const qa = await ipOf(a, 'qa');
  await ok(b.loom('exec', 'qb', 'ping', '-c1', '-W2', '10.78.0.1'), 'qb reaches its own gateway');
  assert.notEqual((await b.loom('exec', 'qb', 'wget', '-T2', '-qO-', `http://${qa}/`)).code, 0, 'icc=false: qb does not reach qa across hosts');
  await ok(a.loom('rm', '-f', 'qa'));
  await ok(b.loom('rm', '-f', 'qb'));
  await ok(a.loom('network', 'rm', 'ovsq'));
  await ok(a.loom('rm', '-f', 'oa'));
  await ok(b.loom('rm', '-f', 'ob'));
  await ok(b.loom('network', 'rm', 'ovsg'), 'rm ovsg on B');
  await eventually(() => a.loom('network', 'ls', '-q', '--filter', 'name=ovsg'), (r) => r.stdout.trim() === '', 15_000);
  for (const sb of [a, b]) {
    assert.equal(await eventually(async () => (await vsctl(sb, 'list-br')).trim(), ''), '', `no OVS bridge left on ${sb.tag}`);
    assert.equal(await eventually(async () => (await ok(sb.hostExec(['ip', '-o', 'link', 'show', 'type', 'vxlan']))).trim(), ''), '', `no vxlan device left on ${sb.tag}`);
  }
});
