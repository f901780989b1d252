// br_netfilter (src/drivers/brnetfilter.ts): the daemon turns the namespace-wide
// net.bridge.bridge-nf-call-ip(6)tables off, so frames between containers of an icc=true bridge skip
// conntrack and the IP hooks, and asks for the hooks on icc=false bridges alone — where icc=false and
// --link exceptions still hold. `auto` leaves the switch alone when a bridge that is not loom's exists at
// start; `keep` never touches it.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createSandbox, type Sandbox } from '../helpers/sandbox.ts';
import { ok } from '../helpers/assert.ts';

const skip = process.getuid?.() !== 0 ? 'needs root (network namespaces, nftables, runc)'
  : !(await import('node:fs')).existsSync('/proc/sys/net/bridge') ? 'no br_netfilter in this kernel' : false;

let sb: Sandbox;
const KEY = 'net.bridge.bridge-nf-call-iptables';
const KEY6 = 'net.bridge.bridge-nf-call-ip6tables';

const sysctl = async (k: string) => (await ok(sb.hostExec(['sysctl', '-n', k]))).trim();
/** the bridge's own nf_call_iptables switch, from `ip -d link` */
async function nfCall(bridge: string): Promise<string> {
  const out = await ok(sb.hostExec(['ip', '-d', 'link', 'show', bridge]));
  return /nf_call_iptables (\d)/.exec(out)?.[1] ?? `? ${out}`;
}
const pings = async (from: string, ip: string) => (await sb.loom('exec', from, 'ping', '-c1', '-W1', ip)).code === 0;
const ipOf = async (name: string, net: string) => (await ok(sb.loom('inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, name))).trim();

before(async () => {
  if (skip) return;
  sb = await createSandbox({ tag: 'brnf' });
  await sb.startDaemon();
  await sb.image('box');
}, { timeout: 120_000 });

after(async () => {
  await sb?.cleanup();
});

describe('br_netfilter', { skip }, () => {
  test('off in the namespace, on for icc=false bridges only; icc and links hold', async () => {
    assert.equal(await sysctl(KEY), '0');
    assert.equal(await sysctl(KEY6), '0');
    await ok(sb.loom('network', 'create', '-o', 'com.docker.network.bridge.name=brnf-icc', 'open'));
    await ok(sb.loom('network', 'create', '-o', 'com.docker.network.bridge.name=brnf-noicc', '-o', 'com.docker.network.bridge.enable_icc=false', 'closed'));
    assert.equal(await nfCall('loom0'), '0');
    assert.equal(await nfCall('brnf-icc'), '0');
    assert.equal(await nfCall('brnf-noicc'), '1');
    for (const [n, net] of [['o1', 'open'], ['o2', 'open'], ['c1', 'closed'], ['c2', 'closed']]) {
      await ok(sb.loom('run', '-d', '--name', n!, '--network', net!, 'box', 'sleep', '1d'));
    }
    await ok(sb.loom('run', '-d', '--name', 'srv', '--network', 'closed', 'box', 'httpd', '-f', '-p', '80', '-h', '/'));
    await ok(sb.loom('run', '-d', '--name', 'linked', '--network', 'closed', '--link', 'srv:db', 'box', 'sleep', '1d'));
    assert.ok(await pings('o1', await ipOf('o2', 'open')), 'icc=true: bridged traffic flows');
    const [closedPing, srvIp] = await Promise.all([pings('c1', await ipOf('c2', 'closed')), ipOf('srv', 'closed')]);
    assert.equal(closedPing, false, 'icc=false: dropped');
    // a user-defined network's --link is an alias, and icc=false still drops it (Docker: links are
    // firewall exceptions on the default bridge only); the default bridge's exception is tested in ports.test.ts
    const r = await sb.loom('exec', 'linked', 'timeout', '3', 'wget', '-qO-', `http://${srvIp}/`);
    assert.notEqual(r.code, 0, 'icc=false on a user-defined network');
  });

  test('auto leaves the switch alone when a bridge that is not loom\'s exists; keep never touches it', async () => {
    await sb.stopDaemon();
    await ok(sb.hostExec(['sysctl', '-qw', `${KEY}=1`]));
    await ok(sb.hostExec(['ip', 'link', 'add', 'other0', 'type', 'bridge']));
    await sb.startDaemon();
    assert.equal(await sysctl(KEY), '1', 'another bridge here: left on');
    assert.equal(await nfCall('brnf-noicc'), '1');
    assert.ok(await pings('o1', await ipOf('o2', 'open')), 'icc=true still flows with the switch on');
    assert.equal(await pings('c1', await ipOf('c2', 'closed')), false, 'icc=false still drops');
    await sb.stopDaemon();
    await ok(sb.hostExec(['ip', 'link', 'del', 'other0']));
    await sb.startDaemon(['--br-netfilter=keep']);
    assert.equal(await sysctl(KEY), '1', 'keep');
    await sb.stopDaemon();
    await sb.startDaemon();
    assert.equal(await sysctl(KEY), '0', 'auto with only loom\'s bridges: off');
    assert.ok(await pings('o1', await ipOf('o2', 'open')), 'containers kept running across restarts');
  });

  test('a bad --br-netfilter value is refused naming it, before anything starts', async () => {
    // inside the sandbox's host namespace all the same, with throwaway roots
    const loom = new URL('../../bin/loom', import.meta.url).pathname;
    const r = await sb.hostExec([loom, 'daemon', '--br-netfilter=maybe', '--data-root', `${sb.dir}/bad-data`, '--exec-root', `${sb.dir}/bad-run`], 20_000);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /invalid --br-netfilter "maybe": expected one of auto, off, keep/);
  });
});
