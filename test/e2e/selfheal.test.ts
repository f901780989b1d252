// Issue 12, firewall self-heal: after `nft flush ruleset`, `nft delete table ip loom` or a foreign edit of
// loom's maps in the daemon's namespace, published ports and egress NAT come back by themselves (the
// daemon watches nf_tables notifications), other programs' tables are left alone, an event says so, and a
// program that keeps deleting loom's tables makes the daemon back off instead of looping.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createSandbox, eventually, type Sandbox } from '../helpers/sandbox.ts';
import { ok } from '../helpers/assert.ts';

const skip = process.getuid?.() !== 0 ? 'needs root (network namespaces, nftables, runc)' : false;
const NODE = process.execPath;
const HOST = '198.51.100.1';
const PEER_ECHO = `require('net').createServer(s=>{s.end('HTTP/1.0 200 OK\\r\\n\\r\\npeer='+s.remoteAddress.replace('::ffff:','')+'\\n')}).listen(9000,'198.51.100.2')`;

let sb: Sandbox;

async function fromExt(port: number): Promise<string | null> {
  const r = await sb.extExec(['busybox', 'timeout', '2', 'wget', '-qO-', `http://${HOST}:${port}/`]);
  return r.code === 0 ? r.stdout.trim() : null;
}
/** What the outside world sees as the container's source address (masquerade gives the host's). */
async function egressPeer(): Promise<string | null> {
  const r = await sb.loom('exec', 'web', 'timeout', '2', 'wget', '-qO-', 'http://198.51.100.2:9000/');
  return r.code === 0 ? r.stdout.trim() : null;
}
const nft = (...args: string[]) => ok(sb.hostExec(['nft', ...args]), `nft ${args.join(' ')}`);
const works = async () => (await fromExt(8080)) === 'web' && (await egressPeer()) === `peer=${HOST}`;

before(async () => {
  if (skip) return;
  sb = await createSandbox({ tag: 'heal' });
  await sb.startDaemon();
  await sb.image('box');
  sb.spawnExt([NODE, '-e', PEER_ECHO]);
  await ok(sb.loom('run', '-d', '--name', 'web', '-p', '8080:80', 'box', 'sh', '-c', 'mkdir -p /w && echo web > /w/index.html && httpd -p 80 -h /w; exec sleep 1d'));
  await eventually(works, true, 10_000);
}, { timeout: 120_000 });

after(async () => {
  await sb?.cleanup();
});

describe('firewall self-heal', { skip }, () => {
  test('nft flush ruleset: ports and NAT come back, another program\'s table is left as it was', async () => {
    const events = sb.loom('events', '--filter', 'type=daemon', '--format', '{{.Action}} {{.Actor.Attributes.changedBy}}', '--until', String(Math.floor(Date.now() / 1000) + 6));
    await nft('add', 'table', 'inet', 'mine');
    await nft('add', 'chain', 'inet', 'mine', 'c', '{ type filter hook input priority 0; policy accept; }');
    await nft('flush', 'ruleset');
    assert.equal(await eventually(works, true, 15_000), true);
    assert.match(await nft('list', 'tables'), /table ip loom/);
    assert.doesNotMatch(await nft('list', 'tables'), /mine/, 'the flushed foreign table is not brought back by loom');
    // the same with a foreign table that survives: loom's heal does not touch it
    await nft('add', 'table', 'inet', 'mine');
    await nft('add', 'chain', 'inet', 'mine', 'c', '{ type filter hook input priority 0; policy accept; }');
    await nft('delete', 'table', 'ip', 'loom');
    assert.equal(await eventually(works, true, 15_000), true);
    assert.match(await nft('list', 'table', 'inet', 'mine'), /chain c/);
    await nft('delete', 'table', 'inet', 'mine');
    const ev = await events;
    assert.match(ev.stdout, /firewall-restore nft/);
  });

  test('a foreign edit of loom\'s port map is undone', async () => {
    const before = await nft('list', 'table', 'ip', 'loom');
    await nft('flush', 'table', 'ip', 'loom');
    await eventually(async () => (await nft('list', 'table', 'ip', 'loom')) === before, true, 5000);
    assert.equal(await works(), true);
  });

  test('a program that keeps deleting loom\'s tables: the daemon backs off and stays up, then heals', async () => {
    for (let i = 0; i < 8; i++) {
      await sb.hostExec(['nft', 'delete', 'table', 'ip', 'loom']);
      await new Promise((r) => setTimeout(r, 150));
    }
    assert.match(await ok(sb.loom('version', '--format', '{{.Server.Version}}')), /\d/);
    assert.equal(await eventually(works, true, 10_000), true);
    assert.match(sb.daemonLog, /backing off/);
  });

  test('coexistence: iptables FORWARD policy DROP (as Docker leaves it) — egress and ports still work; LOOM-USER rules win', async () => {
    await ok(sb.hostExec(['iptables-nft', '-P', 'FORWARD', 'DROP']));
    try {
      assert.equal(await eventually(works, true, 15_000), true);
      const rules = await ok(sb.hostExec(['iptables-nft', '-S']));
      assert.match(rules, /-A FORWARD -j LOOM-FORWARD/);
      assert.match(rules, /-A LOOM-FORWARD -j LOOM-USER/);
      assert.match(rules, /-A LOOM-FORWARD -o loom0 -j ACCEPT/);
      // the user's own filtering goes into LOOM-USER and is respected: drop the published port's traffic
      await ok(sb.hostExec(['iptables-nft', '-A', 'LOOM-USER', '-p', 'tcp', '--dport', '80', '-j', 'DROP']));
      assert.equal(await eventually(() => fromExt(8080), null, 15_000), null);
      assert.equal(await egressPeer(), `peer=${HOST}`, 'egress to port 9000 is not affected');
      await ok(sb.hostExec(['iptables-nft', '-F', 'LOOM-USER']));
      assert.equal(await eventually(works, true, 15_000), true);
      // a firewall reload that flushes FORWARD: loom's jump comes back
      await ok(sb.hostExec(['iptables-nft', '-F', 'FORWARD']));
      assert.equal(await eventually(works, true, 15_000), true);
      assert.match(await ok(sb.hostExec(['iptables-nft', '-S', 'FORWARD'])), /-A FORWARD -j LOOM-FORWARD/);
    } finally {
      await sb.hostExec(['iptables-nft', '-P', 'FORWARD', 'ACCEPT']);
    }
  });

  test('a daemon restarted where the namespace mounts are gone mounts them again from the containers\' processes; DNS and ports work', async () => {
    await ok(sb.loom('network', 'create', 'healnet'));
    await ok(sb.loom('run', '-d', '--name', 'dns1', '--network', 'healnet', '-p', '8090:80', 'box', 'sh', '-c', 'mkdir -p /w && echo dns1 > /w/index.html && httpd -p 80 -h /w; exec sleep 1d'));
    await ok(sb.loom('run', '-d', '--name', 'dns2', '--network', 'healnet', 'box', 'sleep', '1d'));
    await sb.stopDaemon('SIGKILL');
    for (const n of ['dns1', 'dns2']) {
      await ok(sb.hostExec(['umount', `/run/netns/${sb.netnsPrefix}${n}`]));
      await sb.hostExec(['rm', '-f', `/run/netns/${sb.netnsPrefix}${n}`]);
    }
    await sb.startDaemon();
    assert.match(await ok(sb.hostExec(['ip', 'netns', 'list'])), new RegExp(`${sb.netnsPrefix}dns1`));
    await ok(sb.hostExec(['ip', 'netns', 'exec', `${sb.netnsPrefix}dns1`, 'ip', 'addr']));
    assert.match(await ok(sb.loom('exec', 'dns2', 'nslookup', 'dns1', '127.0.0.11')), /Address:? \d+\.\d+\.\d+\.\d+/);
    assert.equal(await eventually(() => fromExt(8090), 'dns1', 5000), 'dns1');
    await ok(sb.loom('rm', '-f', 'dns1', 'dns2'));
    await ok(sb.loom('network', 'rm', 'healnet'));
  });

  test('loom system reconcile: finds and repairs a deleted interface, address, route, bridge port and rules, reporting each', async () => {
    await ok(sb.loom('network', 'create', '--subnet', '10.61.0.0/24', 'recnet'));
    await ok(sb.loom('run', '-d', '--name', 'r1', '--network', 'recnet', 'box', 'sleep', '1d'));
    await ok(sb.loom('run', '-d', '--name', 'r2', '--network', 'recnet', 'box', 'sleep', '1d'));
    assert.match(await ok(sb.loom('system', 'reconcile')), /nothing to repair/);
    const ns = (n: string) => ['ip', 'netns', 'exec', `${sb.netnsPrefix}${n}`];
    const r1ip = await ok(sb.loom('inspect', '-f', '{{.NetworkSettings.Networks.recnet.IPAddress}}', 'r1'));
    // break things by hand: r1's interface gone, r2's address and default route gone, web's veth off its bridge, a rule gone
    await ok(sb.hostExec([...ns('r1'), 'ip', 'link', 'del', 'eth0']));
    await ok(sb.hostExec([...ns('r2'), 'ip', 'route', 'del', 'default']));
    const webVeth = (await ok(sb.hostExec(['ip', '-o', 'link', 'show', 'master', 'loom0']))).split(': ')[1]!.split('@')[0]!;
    await ok(sb.hostExec(['ip', 'link', 'set', webVeth, 'nomaster']));
    await ok(sb.hostExec(['nft', 'flush', 'chain', 'ip', 'loom', 'postrouting']));
    const r = await sb.loom('system', 'reconcile');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /link r1 eth0 \(recnet\): interface missing -> plugged again/);
    assert.match(r.stdout, /route r2 eth0 \(recnet\): default route missing -> added via 10\.61\.0\.1/);
    assert.match(r.stdout, new RegExp(`veth web ${webVeth}: not a port of loom0 -> enslaved to loom0`));
    // the flushed chain may already be back by the self-heal; either way the tables end up whole
    assert.equal(await eventually(works, true, 15_000), true);
    await ok(sb.loom('exec', 'r2', 'ping', '-c1', '-W2', r1ip), 'r2 reaches the re-plugged r1');
    assert.match(await ok(sb.hostExec([...ns('r2'), 'ip', 'route'])), /default via 10\.61\.0\.1/);
    assert.match(await ok(sb.loom('system', 'reconcile')), /nothing to repair/);
    await ok(sb.loom('rm', '-f', 'r1', 'r2'));
    await ok(sb.loom('network', 'rm', 'recnet'));
  });
});
