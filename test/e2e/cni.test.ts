// loom as a CNI plugin, against the spec directly: the plugin run as a runtime runs it (CNI_* in the
// environment, the network config on stdin) on a namespace the test made, attached to a loom network by
// the daemon in a sandbox. The namespace reaches loom's containers and they reach it by name. The plugin
// is the C client scripts/setup builds (.cache/bin/loom-cni) when there is one, else bin/loom-cni (Node);
// both only pass the invocation to the daemon, and one test runs the Node client too.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createSandbox, eventually, requireRoot, runCmd, type Sandbox } from '../helpers/sandbox.ts';
import { ok } from '../helpers/assert.ts';

const skip = requireRoot();
const NODE_PLUGIN = path.resolve(import.meta.dirname, '../../bin/loom-cni');
const C_PLUGIN = path.resolve(import.meta.dirname, '../../.cache/bin/loom-cni');
const PLUGIN = fs.existsSync(C_PLUGIN) ? C_PLUGIN : NODE_PLUGIN;
const podNs = `loomt-cni-${process.pid}`;
const podNs2 = `loomt-cni2-${process.pid}`;
const NETNS = `/run/netns/${podNs}`;
let sb: Sandbox;

interface Out { code: number; json: any; raw: string }

/** One plugin run: the spec's environment and stdin, stdout parsed. */
function cni(command: string, conf: Record<string, unknown>, env: Record<string, string> = {}, plugin = PLUGIN): Out {
  const r = spawnSync(plugin, [], {
    encoding: 'utf8',
    input: JSON.stringify({ cniVersion: '1.1.0', name: 'app', type: 'loom', network: 'app', socket: sb.socket, ...conf }),
    env: { PATH: process.env.PATH, CNI_COMMAND: command, CNI_PATH: path.dirname(PLUGIN), ...env },
  });
  return { code: r.status ?? -1, raw: r.stdout, json: r.stdout.trim() ? JSON.parse(r.stdout) : null };
}

const pod = (id: string, ifname = 'eth0', netns = NETNS) => ({ CNI_CONTAINERID: id, CNI_IFNAME: ifname, CNI_NETNS: netns, CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default' });
const inPod = (argv: string[], ns = podNs) => spawnSync('ip', ['netns', 'exec', ns, ...argv], { encoding: 'utf8' });
/** Whether the interface left the namespace: DEL answers before the kernel has finished deleting the veth. */
async function goneFromPod(ifname: string, ns = podNs): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    if (inPod(['ip', 'link', 'show', ifname], ns).status !== 0) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

before(async () => {
  if (skip) return;
  for (const ns of [podNs, podNs2]) {
    spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    assert.equal(spawnSync('ip', ['netns', 'add', ns]).status, 0);
  }
  sb = await createSandbox({ tag: 'cni' });
  await sb.startDaemon();
  await sb.image('box');
  await ok(sb.loom('network', 'create', '--subnet', '10.77.0.0/24', 'app'), 'create app');
  await ok(sb.loom('run', '-d', '--name', 'web', '--network', 'app', 'box', 'httpd', '-f', '-p', '8080', '-h', '/www'), 'run web');
}, { timeout: 120_000 });

after(async () => {
  if (skip) return;
  await sb?.cleanup();
  for (const ns of [podNs, podNs2]) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
});

test('VERSION, and errors shaped by the spec for bad versions, configs and environments', { skip }, () => {
  const v = cni('VERSION', { cniVersion: '1.0.0' });
  assert.equal(v.code, 0);
  assert.deepEqual(v.json, { cniVersion: '1.0.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  const bad = cni('ADD', { cniVersion: '2.0.0' }, pod('x'));
  assert.equal(bad.code, 1);
  assert.equal(bad.json.code, 1);
  assert.match(bad.json.msg, /incompatible CNI versions/);
  const noNet = cni('ADD', { network: 'nosuch' }, pod('x'));
  assert.equal(noNet.json.code, 7);
  assert.equal(noNet.json.msg, 'network nosuch not found');
  assert.equal(noNet.json.cniVersion, '1.1.0');
  const noEnv = cni('ADD', {}, { CNI_IFNAME: 'eth0', CNI_NETNS: NETNS });
  assert.equal(noEnv.json.code, 4);
  assert.match(noEnv.json.msg, /CNI_CONTAINERID/);
  const garbage = spawnSync(PLUGIN, [], { encoding: 'utf8', input: '{not json', env: { PATH: process.env.PATH, CNI_COMMAND: 'ADD', ...pod('x') } });
  assert.equal(JSON.parse(garbage.stdout).code, 6);
  const noDaemon = cni('ADD', { socket: '/nonexistent/loom.sock' }, pod('x'));
  assert.equal(noDaemon.json.code, 11);
  for (const plugin of [NODE_PLUGIN, C_PLUGIN].filter((p) => fs.existsSync(p))) {
    assert.deepEqual(cni('VERSION', { cniVersion: '0.4.0' }, {}, plugin).json, { cniVersion: '0.4.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
    assert.deepEqual(cni('ADD', { socket: '/nonexistent/loom.sock' }, pod('x'), plugin).json,
      { cniVersion: '1.1.0', code: 11, msg: 'the loom daemon at /nonexistent/loom.sock is not answering', details: plugin === NODE_PLUGIN ? 'connect ENOENT /nonexistent/loom.sock' : 'No such file or directory' });
  }
  const st = cni('STATUS', {});
  assert.equal(st.code, 0, st.raw);
  assert.equal(cni('STATUS', { network: 'nosuch' }).json.code, 50);
});

test('ADD attaches a foreign namespace with loom\'s IPAM; it and loom\'s containers reach each other, by name too', { skip }, async () => {
  const r = cni('ADD', {}, { ...pod('podone'), CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=frontend' });
  assert.equal(r.code, 0, r.raw);
  assert.equal(r.json.cniVersion, '1.1.0');
  assert.deepEqual(r.json.interfaces, [{ name: 'eth0', mac: r.json.interfaces[0].mac, sandbox: NETNS }]);
  assert.match(r.json.interfaces[0].mac, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
  assert.deepEqual(r.json.ips, [{ address: '10.77.0.3/24', gateway: '10.77.0.1', interface: 0 }]);
  assert.deepEqual(r.json.routes, [{ dst: '0.0.0.0/0', gw: '10.77.0.1' }]);
  // loom's embedded DNS serves the namespace, as it serves loom's containers
  assert.deepEqual(r.json.dns, { nameservers: ['127.0.0.11'] });
  const addr = inPod(['ip', '-o', 'addr', 'show', 'dev', 'eth0']);
  assert.match(addr.stdout, /inet 10\.77\.0\.3\/24/);
  // the namespace reaches loom's container, and loom's container resolves it by pod name and by id
  const webIp = await ok(sb.loom('inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', 'web'));
  const wget = inPod(['busybox', 'wget', '-qO-', `http://${webIp}:8080/`]);
  assert.equal(wget.stdout.trim(), 'hello from loom', wget.stderr);
  const byName = inPod(['busybox', 'nslookup', 'web', '127.0.0.11']);
  assert.match(byName.stdout, new RegExp(`Address:\\s+${webIp.replace(/\./g, '\\.')}`), byName.stdout + byName.stderr);
  assert.match(await ok(sb.loom('exec', 'web', 'nslookup', 'frontend')), /Address:\s+10\.77\.0\.3/);
  await ok(sb.loom('exec', 'web', 'ping', '-c1', '-W3', 'podone'), 'web pings podone by name');
  // network inspect lists it under the runtime's container id
  const insp = JSON.parse(await ok(sb.loom('network', 'inspect', 'app')))[0];
  assert.equal(insp.Containers.podone.Name, 'frontend');
  assert.equal(insp.Containers.podone.IPv4Address, '10.77.0.3/24');
  const dinsp = JSON.parse(await ok(sb.docker('network', 'inspect', 'app')))[0];
  assert.equal(dinsp.Containers.podone.IPv4Address, '10.77.0.3/24');
  // CHECK with the ADD's result
  const chk = cni('CHECK', { prevResult: r.json }, pod('podone'));
  assert.equal(chk.code, 0, chk.raw);
  const chkNone = cni('CHECK', { prevResult: r.json }, pod('nobody'));
  assert.equal(chkNone.json.code, 3);
  // the same container id and interface again: refused, nothing new allocated
  const again = cni('ADD', {}, pod('podone'));
  assert.equal(again.code, 1);
  assert.equal(again.json.code, 101);
  assert.match(again.json.msg, /already has eth0 attached/);
  const insp2 = JSON.parse(await ok(sb.loom('network', 'inspect', 'app')))[0];
  assert.deepEqual(Object.keys(insp2.Containers).sort(), Object.keys(insp.Containers).sort());
  // the network may not go while the attachment lives
  const rm = await sb.loom('network', 'rm', 'app');
  assert.equal(rm.code, 1);
  assert.match(rm.stderr, /has active endpoints/);
});

test('prevResult chaining: loom\'s interface and addresses follow the previous plugins\' (0.4.0 shapes too)', { skip }, async () => {
  const prev = { cniVersion: '0.4.0', interfaces: [{ name: 'lo0x' }], ips: [{ version: '4', address: '192.0.2.9/32', interface: 0 }], routes: [], dns: { nameservers: ['192.0.2.53'] } };
  const r = cni('ADD', { cniVersion: '0.4.0', prevResult: prev }, pod('podone', 'eth1'));
  assert.equal(r.code, 0, r.raw);
  assert.equal(r.json.cniVersion, '0.4.0');
  assert.equal(r.json.interfaces.length, 2);
  assert.equal(r.json.interfaces[1].name, 'eth1');
  assert.deepEqual(r.json.ips[0], { version: '4', address: '192.0.2.9/32', interface: 0 });
  assert.deepEqual(r.json.ips[1], { version: '4', address: '10.77.0.4/24', gateway: '10.77.0.1', interface: 1 });
  assert.deepEqual(r.json.dns, { nameservers: ['192.0.2.53'] });
  const del = cni('DEL', { cniVersion: '0.4.0', prevResult: r.json }, pod('podone', 'eth1'));
  assert.equal(del.code, 0, del.raw);
  assert.ok(await goneFromPod('eth1'), 'eth1 is gone from the namespace');
});

test('an attachment survives a daemon restart; GC removes those the runtime no longer lists; DEL is idempotent and leaves nothing', { skip }, async () => {
  const two = cni('ADD', {}, pod('podtwo', 'eth0', `/run/netns/${podNs2}`));
  assert.equal(two.code, 0, two.raw);
  await sb.stopDaemon();
  await sb.startDaemon();
  await ok(sb.loom('exec', 'web', 'ping', '-c1', '-W3', 'podone'), 'podone still resolves and answers after a restart');
  const webIp = await ok(sb.loom('inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', 'web'));
  assert.equal(inPod(['busybox', 'wget', '-qO-', `http://${webIp}:8080/`]).stdout.trim(), 'hello from loom', 'podone reaches web after a restart');
  const gc = cni('GC', { 'cni.dev/valid-attachments': [{ containerID: 'podone', ifname: 'eth0' }] });
  assert.equal(gc.code, 0, gc.raw);
  assert.notEqual(inPod(['ip', 'link', 'show', 'eth0'], podNs2).status, 0, 'podtwo\'s interface went with GC');
  assert.equal(inPod(['ip', 'link', 'show', 'eth0']).status, 0, 'podone kept its interface');
  for (let i = 0; i < 2; i++) {
    const del = cni('DEL', {}, pod('podone'));
    assert.equal(del.code, 0, del.raw);
    assert.equal(del.raw, '');
  }
  // DEL without a namespace, for a network that is gone: still fine
  assert.equal(cni('DEL', { network: 'nosuch' }, { CNI_CONTAINERID: 'podone', CNI_IFNAME: 'eth0' }).code, 0);
  const insp = JSON.parse(await ok(sb.loom('network', 'inspect', 'app')))[0];
  assert.deepEqual(Object.values(insp.Containers).map((c: any) => c.Name), ['web']);
  assert.ok(await goneFromPod('eth0'), 'eth0 is gone from the namespace');
  // the container id can be attached again after its DEL (here through the Node client: the same answers)
  const re = cni('ADD', {}, pod('podone'), NODE_PLUGIN);
  assert.equal(re.code, 0, re.raw);
  assert.deepEqual(re.json.dns, { nameservers: ['127.0.0.11'] });
  assert.equal(cni('DEL', {}, pod('podone'), NODE_PLUGIN).code, 0);
  const re3 = cni('ADD', {}, pod('podthree'));
  assert.equal(re3.code, 0, re3.raw);
  assert.equal(cni('DEL', {}, pod('podthree')).code, 0);
  await ok(sb.loom('rm', '-f', 'web'));
  await ok(sb.loom('network', 'rm', 'app'), 'the network goes once nothing is attached');
});

const ctrBin = fs.existsSync('/usr/bin/ctr') && fs.existsSync('/usr/bin/containerd') ? '/usr/bin/ctr' : '';

test('containerd 1.6 `ctr run --cni` attaches its container through loom\'s plugin; it reaches loom\'s container; DEL cleans up', { skip: skip || (ctrBin ? false : 'containerd is not installed (Debian package containerd)') }, async () => {
  await ok(sb.loom('network', 'create', '--subnet', '10.78.0.0/24', 'ctrnet'), 'create ctrnet');
  await ok(sb.loom('run', '-d', '--name', 'web2', '--network', 'ctrnet', 'box', 'httpd', '-f', '-p', '8080', '-h', '/www'), 'run web2');
  const webIp = await ok(sb.loom('inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', 'web2'));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loomt-ctd-'));
  let ctd: ChildProcess | null = null;
  try {
    const sock = path.join(dir, 'c.sock');
    fs.writeFileSync(path.join(dir, 'cfg.toml'), `version = 2\nroot = "${dir}/root"\nstate = "${dir}/state"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "${sock}"\n`);
    let log = '';
    ctd = spawn('nsenter', [`--net=/run/netns/${sb.hostNs}`, '--', 'containerd', '-c', path.join(dir, 'cfg.toml')], { stdio: ['ignore', 'ignore', 'pipe'] });
    ctd.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    const ctr = (...args: string[]) => runCmd(['nsenter', `--net=/run/netns/${sb.hostNs}`, '--', ctrBin, '-a', sock, '-n', 'loomt', ...args]);
    const up = await eventually(() => ctr('version'), (r) => r.code === 0, 30_000);
    assert.equal(up.code, 0, `containerd did not come up: ${log.slice(-2000)}`);
    const tar = path.join(dir, 'box.tar');
    await ok(sb.loom('save', '-o', tar, 'box'), 'loom save box');
    await ok(ctr('images', 'import', '--no-unpack=false', tar), 'ctr images import');
    const img = (await ok(ctr('images', 'ls', '-q'))).split('\n')[0]!;
    // ctr reads /etc/cni/net.d and /opt/cni/bin: both exist only in its own mount namespace (overlays on /etc and /opt)
    for (const d of ['etc-up', 'etc-work', 'opt-up', 'opt-work', 'bin']) fs.mkdirSync(path.join(dir, d));
    fs.symlinkSync(PLUGIN, path.join(dir, 'bin', 'loom'));
    const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'ctrnet', type: 'loom', network: 'ctrnet', socket: sb.socket });
    const script = [
      `mount -t overlay overlay -o lowerdir=/etc,upperdir=${dir}/etc-up,workdir=${dir}/etc-work /etc`,
      `mount -t overlay overlay -o lowerdir=/opt,upperdir=${dir}/opt-up,workdir=${dir}/opt-work /opt`,
      'mkdir -p /etc/cni/net.d /opt/cni/bin',
      `printf '%s' '${conf}' > /etc/cni/net.d/10-loom.conf`,
      `mount --bind ${dir}/bin /opt/cni/bin`,
      `exec ${ctrBin} -a ${sock} -n loomt run --cni --rm ${img} t1 wget -qO- http://${webIp}:8080/`,
    ].join(' && ');
    const run = await runCmd(['nsenter', `--net=/run/netns/${sb.hostNs}`, '--', 'unshare', '-m', '--propagation', 'private', 'sh', '-c', script], { timeoutMs: 120_000 });
    assert.equal(run.code, 0, `ctr run --cni: ${run.stderr}\n${log.slice(-2000)}`);
    assert.equal(run.stdout.trim(), 'hello from loom');
    // --rm: ctr called DEL; the attachment is gone
    const insp = JSON.parse(await ok(sb.loom('network', 'inspect', 'ctrnet')))[0];
    assert.deepEqual(Object.values(insp.Containers).map((c: any) => c.Name), ['web2']);
  } finally {
    if (ctd) {
      ctd.kill('SIGTERM');
      await new Promise((r) => (ctd!.exitCode !== null || ctd!.signalCode ? r(null) : ctd!.once('exit', r)));
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
  await ok(sb.loom('rm', '-f', 'web2'));
  await ok(sb.loom('network', 'rm', 'ctrnet'));
});

const hardLimit = (flag: string) => Number(spawnSync('sh', ['-c', `ulimit -H${flag}`], { encoding: 'utf8' }).stdout.trim()) || 1024;
const HARD = { nofile: hardLimit('n'), nproc: hardLimit('u') };
const podmanBin = fs.existsSync('/usr/bin/podman') ? '/usr/bin/podman' : '';

test('Podman 4.3 with its CNI backend attaches through loom\'s plugin: its container and loom\'s reach each other by name', { skip: skip || (podmanBin ? false : 'podman is not installed (Debian package podman)') }, async () => {
  await ok(sb.loom('network', 'create', '--subnet', '10.79.0.0/24', 'podnet'), 'create podnet');
  await ok(sb.loom('run', '-d', '--name', 'web3', '--network', 'podnet', 'box', 'httpd', '-f', '-p', '8080', '-h', '/www'), 'run web3');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loomt-podman-'));
  // the image library's blob-info cache has a fixed place (/var/lib/containers/cache): removed again after, when the test made it
  const libDirExisted = fs.existsSync('/var/lib/containers');
  // everything of Podman's in this directory: storage, state, its CNI config and plugin dirs, its temp files
  for (const d of ['cni', 'bin', 'tmp']) fs.mkdirSync(path.join(dir, d));
  fs.symlinkSync(PLUGIN, path.join(dir, 'bin', 'loom'));
  fs.writeFileSync(path.join(dir, 'cni', 'podnet.conflist'), JSON.stringify({
    cniVersion: '1.0.0', name: 'podnet', plugins: [{ type: 'loom', network: 'podnet', socket: sb.socket }],
  }));
  fs.writeFileSync(path.join(dir, 'containers.conf'), [
    '[network]', 'network_backend = "cni"', `cni_plugin_dirs = ["${dir}/bin"]`, `network_config_dir = "${dir}/cni"`,
    '[engine]', 'cgroup_manager = "cgroupfs"', 'events_logger = "file"', `events_logfile_path = "${dir}/events.log"`, 'runtime = "runc"',
    `tmp_dir = "${dir}/tmp"`, `static_dir = "${dir}/libpod"`, `volume_path = "${dir}/volumes"`,
    // Podman raises nofile/nproc to the kernel's maximum by default, above this machine's hard limits
    '[containers]', `default_ulimits = ["nofile=${HARD.nofile}:${HARD.nofile}", "nproc=${HARD.nproc}:${HARD.nproc}"]`, '',
  ].join('\n'));
  fs.writeFileSync(path.join(dir, 'storage.conf'), `[storage]\ndriver = "vfs"\nrunroot = "${dir}/run"\ngraphroot = "${dir}/graph"\n`);
  const env = { ...process.env, CONTAINERS_CONF: path.join(dir, 'containers.conf'), CONTAINERS_STORAGE_CONF: path.join(dir, 'storage.conf') };
  const podman = (...args: string[]) => runCmd(['nsenter', `--net=/run/netns/${sb.hostNs}`, '--', podmanBin, ...args], { env, timeoutMs: 120_000 });
  try {
    const tar = path.join(dir, 'box.tar');
    await ok(sb.loom('save', '-o', tar, 'box'), 'loom save box');
    await ok(podman('load', '-i', tar), 'podman load');
    const info = await ok(podman('info', '--format', '{{.Host.NetworkBackend}}'), 'podman info');
    assert.equal(info, 'cni');
    // a Podman container reaches loom's by name (loom's DNS through the CNI result) and serves on its own
    await ok(podman('run', '-d', '--name', 'pc1', '--network', 'podnet', 'box', 'httpd', '-f', '-p', '8080', '-h', '/www'), 'podman run pc1');
    const resolv = await ok(podman('exec', 'pc1', 'cat', '/etc/resolv.conf'));
    assert.match(resolv, /^nameserver 127\.0\.0\.11$/m);
    const got = await ok(podman('exec', 'pc1', 'wget', '-qO-', 'http://web3:8080/'), 'pc1 fetches from web3 by name');
    assert.equal(got, 'hello from loom');
    // and loom's container reaches Podman's by its name (K8S_POD_NAME, which Podman sets to the container's name)
    const back = await ok(sb.loom('exec', 'web3', 'wget', '-qO-', 'http://pc1:8080/'), 'web3 fetches from pc1 by name');
    assert.equal(back, 'hello from loom');
    const insp = JSON.parse(await ok(sb.loom('network', 'inspect', 'podnet')))[0];
    assert.deepEqual(Object.values(insp.Containers).map((c: any) => c.Name).sort(), ['pc1', 'web3']);
    await ok(podman('rm', '-f', 'pc1'), 'podman rm pc1');
    const after = JSON.parse(await ok(sb.loom('network', 'inspect', 'podnet')))[0];
    assert.deepEqual(Object.values(after.Containers).map((c: any) => c.Name), ['web3'], 'Podman\'s DEL took the attachment');
  } finally {
    await podman('rm', '-af');
    fs.rmSync(dir, { recursive: true, force: true });
    if (!libDirExisted) fs.rmSync('/var/lib/containers', { recursive: true, force: true });
  }
  await ok(sb.loom('rm', '-f', 'web3'));
  await ok(sb.loom('network', 'rm', 'podnet'));
});
