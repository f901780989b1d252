// The cluster's edges, in the multi-host world of overlay.test.ts, with etcd as an operator would run it:
// TLS with client certificates (made here with openssl), user/password auth, and two endpoints of which
// the first answers nothing (connection refused), so every call fails over to the second.
//
//   host A (sandbox cla)        host B (sandbox clb)           etcd (netns loomt-cetcd-<pid>)
//   ul0 203.0.113.1/24          ul0 203.0.113.2/24             ul0 203.0.113.10 (etcd, https) + .11 (nothing)
//          \__________ underlay bridge (netns loomt-cul-<pid>) ____________/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createSandbox, eventually, requireRoot, type Sandbox } from '../helpers/sandbox.ts';
import { ok } from '../helpers/assert.ts';

const etcdBin = spawnSync('sh', ['-c', 'command -v etcd'], { encoding: 'utf8' }).stdout.trim();
const opensslBin = spawnSync('sh', ['-c', 'command -v openssl'], { encoding: 'utf8' }).stdout.trim();
const skip = requireRoot() || (etcdBin ? false : 'etcd is not installed (Debian package etcd-server)') || (opensslBin ? false : 'openssl is not installed');

const ulNs = `loomt-cul-${process.pid}`;
const etcdNs = `loomt-cetcd-${process.pid}`;
const ETCD = '203.0.113.10';
const DEAD = '203.0.113.11';
const STORE = `etcd://${DEAD}:2379,${ETCD}:2379`;
const ADDR = { a: '203.0.113.1', b: '203.0.113.2' };
const ROOT_PW = 'loomt-root-pw';
let a: Sandbox, b: Sandbox;
let etcd: ChildProcess | null = null;
let dir = '';
let etcdLog = '';

const sh = (...argv: string[]) => {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
  return r.stdout;
};

function plugIntoUnderlay(ns: string, addr: string, port: string): void {
  sh('ip', '-n', ns, 'link', 'add', 'ul0', 'type', 'veth', 'peer', 'name', port, 'netns', ulNs);
  sh('ip', '-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'ul0');
  sh('ip', '-n', ns, 'link', 'set', 'ul0', 'up');
  sh('ip', '-n', ulNs, 'link', 'set', 'dev', port, 'master', 'br0', 'up');
}

/** A CA, etcd's server certificate (both addresses) and loom's client certificate. */
function makeCerts(): void {
  const o = (...args: string[]) => sh(opensslBin, ...args);
  const f = (n: string) => path.join(dir, n);
  const key = (n: string) => o('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', f(n));
  key('ca.key');
  o('req', '-x509', '-new', '-key', f('ca.key'), '-subj', '/CN=loomt-ca', '-days', '2', '-out', f('ca.pem'));
  for (const [n, cn, ext] of [['server', 'etcd', `subjectAltName=IP:${ETCD},IP:${DEAD}\nextendedKeyUsage=serverAuth,clientAuth\n`], ['client', 'root', 'extendedKeyUsage=clientAuth\n']] as const) {
    key(`${n}.key`);
    o('req', '-new', '-key', f(`${n}.key`), '-subj', `/CN=${cn}`, '-out', f(`${n}.csr`));
    fs.writeFileSync(f(`${n}.ext`), ext);
    o('x509', '-req', '-in', f(`${n}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', f(`${n}.ext`), '-out', f(`${n}.pem`));
  }
}

function startEtcd(): void {
  etcd = spawn('nsenter', [`--net=/run/netns/${etcdNs}`, '--', etcdBin, '--name', 'cl', '--data-dir', path.join(dir, 'data'),
    '--listen-client-urls', `https://${ETCD}:2379`, '--advertise-client-urls', `https://${ETCD}:2379`,
    '--cert-file', path.join(dir, 'server.pem'), '--key-file', path.join(dir, 'server.key'),
    '--trusted-ca-file', path.join(dir, 'ca.pem'), '--client-cert-auth',
    '--listen-peer-urls', `http://${ETCD}:2380`, '--initial-advertise-peer-urls', `http://${ETCD}:2380`,
    '--initial-cluster', `cl=http://${ETCD}:2380`, '--logger', 'zap', '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
  etcd.stderr!.on('data', (d: Buffer) => (etcdLog += d.toString()));
}

/** Inside etcd's namespace, with the etcd3 client: waits for etcd, makes root with a password, enables auth. */
function enableAuth(): void {
  const script = `
    const fs = require('fs');
    const { Etcd3 } = require('etcd3');
    const c = new Etcd3({ hosts: 'https://${ETCD}:2379', credentials: {
      rootCertificate: fs.readFileSync('${dir}/ca.pem'), certChain: fs.readFileSync('${dir}/client.pem'), privateKey: fs.readFileSync('${dir}/client.key') } });
    (async () => {
      for (let i = 0; ; i++) {
        try { await c.get('x').string(); break; } catch (e) { if (i > 100) throw e; await new Promise((r) => setTimeout(r, 200)); }
      }
      await c.role('root').create();
      await c.user('root').create(${JSON.stringify(ROOT_PW)});
      await c.user('root').addRole('root');
      await c.auth.authEnable();
      c.close();
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const r = spawnSync('nsenter', [`--net=/run/netns/${etcdNs}`, '--', process.execPath, '-e', script], { encoding: 'utf8', cwd: process.cwd(), timeout: 60_000 });
  if (r.status !== 0) throw new Error(`cannot enable etcd auth: ${r.stderr}\n${etcdLog}`);
}

const tlsOpts = () => ['--cluster-store-opt', `kv.cacertfile=${path.join(dir, 'ca.pem')}`, '--cluster-store-opt', `kv.certfile=${path.join(dir, 'client.pem')}`,
  '--cluster-store-opt', `kv.keyfile=${path.join(dir, 'client.key')}`, '--cluster-store-opt', 'kv.username=root', '--cluster-store-opt', `kv.password=${ROOT_PW}`];
// B's lease lives 3 s, so its loss shows within the test
const daemonArgs = (host: 'a' | 'b') => ['--cluster-store', STORE, '--cluster-advertise', ADDR[host], ...tlsOpts(), ...(host === 'b' ? ['--cluster-store-opt', 'discovery.ttl=3'] : [])];

before(async () => {
  if (skip) return;
  for (const ns of [ulNs, etcdNs]) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loomt-cluster-'));
  makeCerts();
  [a, b] = await Promise.all([createSandbox({ tag: 'cla' }), createSandbox({ tag: 'clb' })]);
  sh('ip', 'netns', 'add', ulNs);
  sh('ip', 'netns', 'add', etcdNs);
  sh('ip', '-n', ulNs, 'link', 'add', 'br0', 'type', 'bridge');
  sh('ip', '-n', ulNs, 'link', 'set', 'br0', 'up');
  plugIntoUnderlay(a.hostNs, ADDR.a, 'ul-a');
  plugIntoUnderlay(b.hostNs, ADDR.b, 'ul-b');
  plugIntoUnderlay(etcdNs, ETCD, 'ul-etcd');
  sh('ip', '-n', etcdNs, 'addr', 'add', `${DEAD}/24`, 'dev', 'ul0');
  sh('ip', '-n', etcdNs, 'link', 'set', 'lo', 'up');
  startEtcd();
  enableAuth();
  await Promise.all([a.startDaemon(daemonArgs('a')), b.startDaemon(daemonArgs('b'))]);
  await a.image('box');
}, { timeout: 120_000 });

after(async () => {
  if (skip) return;
  if (process.env.OV_LOGS) for (const s of [a, b]) if (s) fs.writeFileSync(path.join(process.env.OV_LOGS, `${s.tag}.log`), s.daemonLog);
  await Promise.all([a, b].filter(Boolean).map((s) => s.cleanup()));
  if (etcd?.pid) {
    etcd.kill('SIGCONT');
    etcd.kill('SIGKILL');
    await new Promise((r) => (etcd!.exitCode !== null || etcd!.signalCode ? r(null) : etcd!.once('exit', r)));
  }
  for (const ns of [ulNs, etcdNs]) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const nodeIdOf = async (sb: Sandbox) => (await sb.api('GET', '/info')).body.Swarm.NodeID as string;

test('node ls lists both hosts (ready, their tunnel address, this daemon marked), through bin/loom, the API and the docker CLI', { skip }, async () => {
  const idA = await nodeIdOf(a);
  const idB = await nodeIdOf(b);
  assert.match(idA, /^[0-9a-z]{25}$/);
  const ls = await eventually(() => a.loom('node', 'ls', '--format', '{{.ID}} {{.Status}} {{.Address}} {{.EngineVersion}} {{.Self}}'), (r) => r.stdout.trim().split('\n').length === 2);
  assert.deepEqual(ls.stdout.trim().split('\n').sort(), [`${idA} Ready ${ADDR.a} 0.1.0 true`, `${idB} Ready ${ADDR.b} 0.1.0 false`].sort());
  const table = await ok(a.loom('node', 'ls'));
  assert.match(table, /^ID\s+HOSTNAME\s+STATUS\s+ADDRESS\s+ENGINE VERSION\s+LAST SEEN$/m);
  assert.match(table, new RegExp(`^${idA} \\*\\s+\\S+\\s+Ready\\s+${ADDR.a.replace(/\./g, '\\.')}\\s+0\\.1\\.0\\s+now$`, 'm'));
  // swarm's Node shape, as the docker CLI renders it: its own node marked with "*"
  const nodes = (await a.api('GET', '/nodes')).body;
  const self = nodes.find((n: any) => n.ID === idA);
  assert.equal(self.Status.State, 'ready');
  assert.equal(self.Status.Addr, ADDR.a);
  assert.equal(self.Spec.Role, 'worker');
  assert.equal(self.Description.Engine.EngineVersion, '0.1.0');
  const dls = await ok(a.docker('node', 'ls'), 'docker node ls');
  assert.match(dls, /^ID\s+HOSTNAME\s+STATUS\s+AVAILABILITY\s+MANAGER STATUS\s+ENGINE VERSION$/m);
  assert.match(dls, new RegExp(`^${idA} \\*\\s+\\S+\\s+Ready\\s+Active\\s+0\\.1\\.0$`, 'm'));
  assert.match(dls, new RegExp(`^${idB}\\s+\\S+\\s+Ready\\s+Active\\s+0\\.1\\.0$`, 'm'));
  const dq = await ok(b.docker('node', 'ls', '-q'));
  assert.deepEqual(dq.split('\n').sort(), [idA, idB].sort());
  // info: the store, this host's address, the members
  const info = await ok(a.loom('info'));
  assert.match(info, new RegExp(`Cluster Store: ${STORE.replace(/\./g, '\\.')}`));
  assert.match(info, new RegExp(`Cluster Advertise: ${ADDR.a.replace(/\./g, '\\.')}`));
  assert.match(info, /Cluster Members: 2 \(2 ready\)/);
  const i = (await a.api('GET', '/info')).body;
  assert.equal(i.ClusterStore, STORE);
  assert.equal(i.ClusterMembers, 2);
  assert.equal(i.Swarm.NodeAddr, ADDR.a);
  // a node that is up cannot be removed; an unknown one is not found
  const rmUp = await a.docker('node', 'rm', idB);
  assert.equal(rmUp.code, 1);
  assert.match(rmUp.stderr, new RegExp(`node ${idB} is not down and can't be removed`));
  const rmNone = await a.loom('node', 'rm', 'nosuchnode');
  assert.equal(rmNone.code, 1);
  assert.match(rmNone.stderr, /node nosuchnode not found/);
});

test('overlay networks work over TLS etcd with user auth and a dead first endpoint', { skip }, async () => {
  await ok(a.loom('network', 'create', '-d', 'overlay', '--subnet', '10.20.0.0/24', 'clov'), 'create clov');
  const seen = await eventually(() => b.loom('network', 'inspect', '-f', '{{.Scope}} {{range .IPAM.Config}}{{.Subnet}}{{end}}', 'clov'), (r) => r.code === 0);
  assert.equal(seen.stdout.trim(), 'global 10.20.0.0/24');
});

test('a host whose lease ran out shows as down until it is removed, and as ready again when back', { skip }, async () => {
  const idB = await nodeIdOf(b);
  await b.stopDaemon('SIGKILL');
  const down = await eventually(() => a.loom('node', 'ls', '--format', '{{.ID}} {{.Status}}'), (r) => r.stdout.includes(`${idB} Down`), 20_000);
  assert.match(down.stdout, new RegExp(`${idB} Down`));
  const api = (await a.api('GET', `/nodes/${idB}`)).body;
  assert.equal(api.Status.State, 'down');
  assert.match((await ok(a.loom('info'))), /Cluster Members: 2 \(1 ready\)/);
  await ok(a.docker('node', 'rm', idB), 'docker node rm of a down node');
  const after1 = await ok(a.loom('node', 'ls', '-q'));
  assert.equal(after1, await nodeIdOf(a));
  const gone = await a.api('GET', `/nodes/${idB}`);
  assert.equal(gone.status, 404);
  await b.startDaemon(daemonArgs('b'));
  const back = await eventually(() => a.loom('node', 'ls', '--format', '{{.ID}} {{.Status}}'), (r) => r.stdout.includes(`${idB} Ready`), 20_000);
  assert.match(back.stdout, new RegExp(`${idB} Ready`));
});

test('etcd out of reach: overlay operations fail naming the store, info and node ls say so; all is well when it returns', { skip }, async () => {
  etcd!.kill('SIGSTOP'); // answers nothing: every call has to give up on its own
  try {
    const t0 = Date.now();
    const r = await a.loom('network', 'create', '-d', 'overlay', 'clov2');
    const took = Date.now() - t0;
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`cluster store ${STORE.replace(/\./g, '\\.')} is unreachable: `));
    assert.doesNotMatch(r.stderr, /UNAVAILABLE|DEADLINE|grpc/i);
    console.log(`overlay create with etcd stopped failed after ${took} ms`);
    const run = await a.loom('run', '--rm', '--network', 'clov', 'box', 'true');
    assert.equal(run.code, 125);
    assert.match(run.stderr, /cluster store .* is unreachable: /);
    const nls = await a.loom('node', 'ls');
    assert.equal(nls.code, 1);
    assert.match(nls.stderr, /cluster store .* is unreachable: /);
    const info = await a.loom('info');
    assert.equal(info.code, 0, 'info answers while the store is away');
    assert.match(info.stdout, /Cluster Store Status: cluster store .* is unreachable: /);
    assert.match(info.stderr, /WARNING: cluster store .* is unreachable: /);
    // local networks are not affected
    await ok(a.loom('network', 'create', 'cllocal'), 'a local network while etcd is away');
    await ok(a.loom('network', 'rm', 'cllocal'));
  } finally {
    etcd!.kill('SIGCONT');
  }
  const back = await eventually(() => a.loom('network', 'create', '-d', 'overlay', 'clov2'), (r) => r.code === 0, 30_000);
  assert.equal(back.code, 0, back.stderr);
  await eventually(() => b.loom('network', 'inspect', 'clov2'), (r) => r.code === 0, 20_000);
  const ready = await eventually(() => a.loom('node', 'ls', '--format', '{{.Status}}'), (r) => r.stdout.trim() === 'Ready\nReady', 30_000);
  assert.equal(ready.stdout.trim(), 'Ready\nReady');
  // B's lease (3 s) ran out while etcd was stopped: B rejoins on its own, within its retry period (3 s) and
  // the client's pause for an endpoint that failed (5 s), so its own cluster operations work again shortly
  const rmB = await eventually(() => b.loom('network', 'rm', 'clov2'), (r) => r.code === 0, 30_000);
  assert.equal(rmB.code, 0, rmB.stderr);
  await ok(a.loom('network', 'rm', 'clov'));
});
