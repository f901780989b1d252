// loom as a CNI plugin, against the spec directly: bin/loom-cni run as a runtime runs it (CNI_* in the
// environment, the network config on stdin) on a namespace the test made, attached to a loom network by
// the daemon in a sandbox. The namespace reaches loom's containers and they reach it by name.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { createSandbox, requireRoot, type Sandbox } from '../helpers/sandbox.ts';
import { ok } from '../helpers/assert.ts';

const skip = requireRoot();
const PLUGIN = path.resolve(import.meta.dirname, '../../bin/loom-cni');
const podNs = `loomt-cni-${process.pid}`;
const podNs2 = `loomt-cni2-${process.pid}`;
const NETNS = `/run/netns/${podNs}`;
let sb: Sandbox;

interface Out { code: number; json: any; raw: string }

/** One plugin run: the spec's environment and stdin, stdout parsed. */
function cni(command: string, conf: Record<string, unknown>, env: Record<string, string> = {}): Out {
  const r = spawnSync(PLUGIN, [], {
    encoding: 'utf8',
    input: JSON.stringify({ cniVersion: '1.1.0', name: 'app', type: 'loom', network: 'app', socket: sb.socket, ...conf }),
    env: { PATH: process.env.PATH, CNI_COMMAND: command, CNI_PATH: path.dirname(PLUGIN), ...env },
  });
  return { code: r.status ?? -1, raw: r.stdout, json: r.stdout.trim() ? JSON.parse(r.stdout) : null };
}

const pod = (id: string, ifname = 'eth0', netns = NETNS) => ({ CNI_CONTAINERID: id, CNI_IFNAME: ifname, CNI_NETNS: netns, CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default' });
const inPod = (argv: string[], ns = podNs) => spawnSync('ip', ['netns', 'exec', ns, ...argv], { encoding: 'utf8' });

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
  const addr = inPod(['ip', '-o', 'addr', 'show', 'dev', 'eth0']);
  assert.match(addr.stdout, /inet 10\.77\.0\.3\/24/);
  // the namespace reaches loom's container, and loom's container resolves it by pod name and by id
  const webIp = await ok(sb.loom('inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', 'web'));
  const wget = inPod(['busybox', 'wget', '-qO-', `http://${webIp}:8080/`]);
  assert.equal(wget.stdout.trim(), 'hello from loom', wget.stderr);
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

test('prevResult chaining: loom\'s interface and addresses follow the previous plugins\' (0.4.0 shapes too)', { skip }, () => {
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
  assert.notEqual(inPod(['ip', 'link', 'show', 'eth1']).status, 0, 'eth1 is gone from the namespace');
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
  assert.notEqual(inPod(['ip', 'link', 'show', 'eth0']).status, 0);
  // the container id can be attached again after its DEL
  const re = cni('ADD', {}, pod('podone'));
  assert.equal(re.code, 0, re.raw);
  assert.equal(cni('DEL', {}, pod('podone')).code, 0);
  const re3 = cni('ADD', {}, pod('podthree'));
  assert.equal(re3.code, 0, re3.raw);
  assert.equal(cni('DEL', {}, pod('podthree')).code, 0);
  await ok(sb.loom('rm', '-f', 'web'));
  await ok(sb.loom('network', 'rm', 'app'), 'the network goes once nothing is attached');
});
