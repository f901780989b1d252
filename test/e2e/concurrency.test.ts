// Issue 12, concurrency: many operations at once against one daemon — 100 `run -d` across 5 networks and
// 40 on the default bridge, all at once: every one succeeds, no address is handed out twice, every
// container reaches its neighbours; parallel `network create` with the same name or subnet: exactly one
// wins, the others get Docker's conflict; parallel connect/disconnect/rm on the same containers: every
// request answered, no deadlock, nothing leaked.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createSandbox, type Sandbox } from '../helpers/sandbox.ts';
import { ok } from '../helpers/assert.ts';

const skip = process.getuid?.() !== 0 ? 'needs root (network namespaces, nftables, runc)' : false;
let sb: Sandbox;

/** The host namespace's links, container namespaces and loom's nftables elements: what a leak would grow. */
async function kernelCounts(): Promise<{ links: number; netns: number; nft: number }> {
  // a retired link (lmdel*: a removed network's bridge, renamed, its deletion pending) is not a leak
  const links = (await ok(sb.hostExec(['ip', '-o', 'link', 'show']))).split('\n').filter((l) => l && !/^\d+: lmdel/.test(l)).length;
  const netns = (await sb.hostExec(['ip', 'netns', 'list'])).stdout.split('\n').filter((l) => l.startsWith(sb.netnsPrefix)).length;
  const nft = (await ok(sb.hostExec(['nft', 'list', 'table', 'ip', 'loom']))).split('\n').length;
  return { links, netns, nft };
}

const create = (name: string, subnet: string) => sb.api('POST', '/networks/create', { Name: name, CheckDuplicate: true, IPAM: { Config: [{ Subnet: subnet }] } });

before(async () => {
  if (skip) return;
  sb = await createSandbox({ tag: 'conc' });
  await sb.startDaemon();
  await sb.image('box');
}, { timeout: 120_000 });

after(async () => {
  await sb?.cleanup();
});

describe('concurrency', { skip }, () => {
  test('parallel network create: one name or one subnet, exactly one winner, the others Docker\'s conflict', async () => {
    const byName = await Promise.all(Array.from({ length: 8 }, (_, i) => create('same', `10.${100 + i}.0.0/24`)));
    assert.equal(byName.filter((r) => r.status === 201).length, 1, JSON.stringify(byName));
    for (const r of byName.filter((x) => x.status !== 201)) {
      assert.equal(r.status, 409);
      assert.match(r.body.message, /network with name same already exists/);
    }
    const bySubnet = await Promise.all(Array.from({ length: 8 }, (_, i) => create(`sub${i}`, '10.200.0.0/24')));
    assert.equal(bySubnet.filter((r) => r.status === 201).length, 1, JSON.stringify(bySubnet));
    for (const r of bySubnet.filter((x) => x.status !== 201)) assert.match(r.body.message, /Pool overlaps with other one on this address space/);
    const names = (await ok(sb.loom('network', 'ls', '--format', '{{.Name}}'))).split('\n');
    assert.equal(names.filter((n) => n === 'same').length, 1);
    assert.equal(names.filter((n) => n.startsWith('sub')).length, 1);
    await ok(sb.loom('network', 'rm', 'same', ...names.filter((n) => n.startsWith('sub'))));
  });

  test('100 parallel run -d across 5 networks and 40 on the default bridge: all run, no duplicate address, all reachable', { timeout: 600_000 }, async () => {
    const base = await kernelCounts();
    for (let n = 0; n < 5; n++) await ok(sb.loom('network', 'create', '--subnet', `10.50.${n}.0/24`, `par${n}`));
    const runs = [
      ...Array.from({ length: 100 }, (_, i) => sb.loom('run', '-d', '--name', `u${i}`, '--network', `par${i % 5}`, 'box', 'sleep', '1d')),
      ...Array.from({ length: 40 }, (_, i) => sb.loom('run', '-d', '--name', `b${i}`, 'box', 'sleep', '1d')),
    ];
    const results = await Promise.all(runs);
    const failed = results.filter((r) => r.code !== 0);
    assert.equal(failed.length, 0, failed.map((r) => r.stderr).slice(0, 5).join('\n'));
    const ips = (await ok(sb.loom('inspect', '-f', '{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}} {{end}}',
      ...Array.from({ length: 100 }, (_, i) => `u${i}`), ...Array.from({ length: 40 }, (_, i) => `b${i}`)))).split('\n').map((l) => l.trim());
    assert.equal(ips.length, 140);
    assert.equal(new Set(ips).size, 140, 'an address was handed out twice');
    for (const l of ips) assert.match(l, /^(par\d|bridge)=\d+\.\d+\.\d+\.\d+$/);
    // each network: the first container reaches the last one; name resolution on the user networks
    const pings = await Promise.all([
      ...Array.from({ length: 5 }, (_, n) => sb.loom('exec', `u${n}`, 'ping', '-c1', '-W2', `u${95 + n}`)),
      sb.loom('exec', 'b0', 'ping', '-c1', '-W2', ips[139]!.split('=')[1]!),
    ]);
    assert.deepEqual(pings.map((r) => r.code), [0, 0, 0, 0, 0, 0], pings.map((r) => r.stderr).join(''));

    // parallel connect / disconnect / rm on the same containers: every request answered
    const mixed = await Promise.all([
      ...Array.from({ length: 10 }, (_, i) => sb.loom('network', 'connect', 'par0', `u${5 * i + 1}`)),
      ...Array.from({ length: 10 }, (_, i) => sb.loom('network', 'disconnect', 'par0', `u${5 * i}`)),
      ...Array.from({ length: 10 }, (_, i) => sb.loom('rm', '-f', `u${5 * i}`)),
      ...Array.from({ length: 10 }, (_, i) => sb.loom('network', 'connect', 'par1', `u${5 * i}`)),
    ]);
    for (const r of mixed) assert.ok(r.code === 0 || /No such container|is not connected|not found|already exists|is not running|removal of container/i.test(r.stderr), r.stderr);

    await ok(sb.loom('rm', '-f', ...(await ok(sb.loom('ps', '-aq'))).split('\n').filter(Boolean)), 'rm all');
    await ok(sb.loom('network', 'rm', 'par0', 'par1', 'par2', 'par3', 'par4'));
    // the kernel side of endpoints goes in the background: wait until it is back where it started
    let now = await kernelCounts();
    for (let i = 0; i < 100 && JSON.stringify(now) !== JSON.stringify(base); i++) {
      await new Promise((r) => setTimeout(r, 200));
      now = await kernelCounts();
    }
    assert.deepEqual(now, base, 'leaked links, namespaces or nftables elements');
  });
});
