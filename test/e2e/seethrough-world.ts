// Two loom hosts and an etcd on an underlay of their own (as in overlay.test.ts), for the overlay trace
// test and bench/seethrough.ts: sandboxes A and B (test/helpers/sandbox.ts) joined by an underlay bridge in
// a namespace of its own; etcd listens on the underlay only. Nothing leaves the namespaces made here.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createSandbox, eventually, requireRoot, type Sandbox } from '../helpers/sandbox.ts';

export const etcdBin = spawnSync('sh', ['-c', 'command -v etcd'], { encoding: 'utf8' }).stdout.trim();
export const twoHostSkip = (): string | false => requireRoot() || (etcdBin ? false : 'etcd is not installed (Debian package etcd-server; scripts/setup installs it)');
export const ETCD = '203.0.113.10';
export const ADDR = { a: '203.0.113.1', b: '203.0.113.2' };

const sh = (...argv: string[]) => {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
};

export interface TwoHosts { a: Sandbox; b: Sandbox; cleanup(): Promise<void> }

/** Hosts A and B with daemons joined to one etcd (--cluster-store/--cluster-advertise); cleans up on failure. */
export async function twoHosts(tag: string): Promise<TwoHosts> {
  const ulNs = `loomt-${tag}ul-${process.pid}`;
  const etcdNs = `loomt-${tag}etcd-${process.pid}`;
  let etcd: ChildProcess | null = null;
  let etcdDir = '';
  const sbs: Sandbox[] = [];
  const cleanup = async () => {
    await Promise.all(sbs.map((s) => s.cleanup()));
    if (etcd?.pid) {
      etcd.kill('SIGKILL');
      await new Promise((r) => (etcd!.exitCode !== null || etcd!.signalCode ? r(null) : etcd!.once('exit', r)));
    }
    for (const ns of [ulNs, etcdNs]) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    if (etcdDir) fs.rmSync(etcdDir, { recursive: true, force: true });
  };
  const plug = (ns: string, addr: string, port: string) => {
    sh('ip', '-n', ns, 'link', 'add', 'ul0', 'type', 'veth', 'peer', 'name', port, 'netns', ulNs);
    sh('ip', '-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'ul0');
    sh('ip', '-n', ns, 'link', 'set', 'ul0', 'up');
    sh('ip', '-n', ulNs, 'link', 'set', 'dev', port, 'master', 'br0', 'up');
  };
  try {
    sbs.push(...await Promise.all([createSandbox({ tag: `${tag}a` }), createSandbox({ tag: `${tag}b` })]));
    const [a, b] = sbs as [Sandbox, Sandbox];
    sh('ip', 'netns', 'add', ulNs);
    sh('ip', 'netns', 'add', etcdNs);
    sh('ip', '-n', ulNs, 'link', 'add', 'br0', 'type', 'bridge');
    sh('ip', '-n', ulNs, 'link', 'set', 'br0', 'up');
    plug(a.hostNs, ADDR.a, 'ul-a');
    plug(b.hostNs, ADDR.b, 'ul-b');
    plug(etcdNs, ETCD, 'ul-etcd');
    sh('ip', '-n', etcdNs, 'link', 'set', 'lo', 'up');
    etcdDir = fs.mkdtempSync(path.join(os.tmpdir(), `loomt-${tag}etcd-`));
    etcd = spawn('nsenter', [`--net=/run/netns/${etcdNs}`, '--', etcdBin, '--name', 'st', '--data-dir', path.join(etcdDir, 'data'),
      '--listen-client-urls', `http://${ETCD}:2379`, '--advertise-client-urls', `http://${ETCD}:2379`,
      '--listen-peer-urls', `http://${ETCD}:2380`, '--initial-advertise-peer-urls', `http://${ETCD}:2380`,
      '--initial-cluster', `st=http://${ETCD}:2380`, '--logger', 'zap', '--log-level', 'warn'], { stdio: 'ignore' });
    const health = await eventually(() => a.hostExec(['busybox', 'wget', '-qO-', `http://${ETCD}:2379/health`], 3000), (r) => r.code === 0, 20_000);
    if (health.code !== 0) throw new Error('etcd did not come up');
    const cluster = (h: 'a' | 'b') => ['--cluster-store', `etcd://${ETCD}:2379`, '--cluster-advertise', ADDR[h]];
    await Promise.all([a.startDaemon(cluster('a')), b.startDaemon(cluster('b'))]);
    await Promise.all([a.image('box'), b.image('box')]);
    return { a, b, cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}
