// Issue 13: a trace across an overlay network. Two hosts (as in overlay.test.ts: sandboxes joined by an
// underlay bridge in a namespace of its own, etcd on the underlay); the probe leaves host A's container,
// crosses the VXLAN tunnel, and host B reports through the cluster store what its kernel did with it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, type Sandbox } from '../helpers/sandbox.ts';
import { ADDR, twoHosts, twoHostSkip, type TwoHosts } from './seethrough-world.ts';
import { ok, fails } from '../helpers/assert.ts';

const skip = twoHostSkip();
let world: TwoHosts | undefined;
let a: Sandbox, b: Sandbox;

const HTTPD = ['sh', '-c', 'mkdir -p /w && echo hi > /w/index.html && httpd -p 80 -h /w; exec sleep 1d'];

before(async () => {
  if (skip) return;
  world = await twoHosts('st');
  ({ a, b } = world);
  await ok(a.loom('network', 'create', '-d', 'overlay', '--attachable', 'ovt'), 'create ovt');
  await eventually(() => b.loom('network', 'inspect', 'ovt'), (r) => r.code === 0);
  await Promise.all([
    ok(a.loom('run', '-d', '--name', 'near', '--network', 'ovt', 'box', 'sleep', '1d'), 'run near'),
    ok(b.loom('run', '-d', '--name', 'far', '--network', 'ovt', 'box', ...HTTPD), 'run far'),
  ]);
}, { timeout: 180_000 });

after(async () => {
  await world?.cleanup();
});

const show = (r: any) => JSON.stringify(r, null, 1);
const texts = (r: any, where?: string) => r.Hops.filter((h: any) => !where || h.where === where).map((h: any) => h.text).join('\n');

test('a trace across the overlay: this host, the tunnel, the remote host\'s report, delivered', { skip }, async () => {
  // the far container's endpoint reaches host A through the cluster store's watch
  const res = await eventually(() => a.loom('network', 'trace', 'near', 'far', '--port', '80/tcp', '--json'), (r) => r.code === 0 && JSON.parse(r.stdout).Verdict === 'delivered', 10_000);
  const r = JSON.parse(res.stdout);
  assert.equal(r.Verdict, 'delivered', show(r));
  assert.equal(r.Destination.host, ADDR.b);
  assert.match(r.Destination.ip, /^10\.0\.0\.\d+$/);
  // host A: the route, the veth on the overlay's br0, the neighbour, the tunnel entry, the underlay route
  assert.match(texts(r, 'near'), /eth0 \(10\.0\.0\.\d+, 02:42:0a:00:00:\w\w\) ↔ veth[0-9a-f]{7} on br0 of overlay network ovt/);
  assert.match(texts(r), /vxlan0: 02:42:0a:00:00:\w\w → remote tunnel endpoint 203\.0\.113\.2 \(VXLAN, permanent, from the cluster store\)/);
  assert.match(texts(r, 'host'), /VXLAN VNI 256: the frame for 02:42:0a:00:00:\w\w goes in UDP 203\.0\.113\.1 → 203\.0\.113\.2:4789; route to 203\.0\.113\.2: 203\.0\.113\.0\/24 dev ul0/);
  // this host's nftables saw the outer packet (marked by its inner source port only)
  for (const dir of ['request', 'reply']) {
    assert.ok(r.Hops.some((h: any) => h.where === 'host' && h.direction === dir && (h.kind === 'rule' || h.kind === 'policy') && h.packet?.dport === 4789), `${dir}: ${show(r)}`);
  }
  assert.match(r.Hops.find((h: any) => h.where === 'host' && h.kind === 'policy').meaning, /^the VXLAN packet carrying the probe \(UDP 203\.0\.113\.\d → 203\.0\.113\.\d:4789\): chain \w+: policy accept/);
  // host B: decapsulation, its own nftables events, the bridge port, the container, the way back
  const far = `host ${ADDR.b}`;
  assert.match(texts(r, far), /VXLAN from 203\.0\.113\.1 arrives \(UDP 4789\), decapsulated by vxlan0 of overlay network ovt/);
  assert.ok(r.Hops.some((h: any) => h.where === far && (h.kind === 'rule' || h.kind === 'policy')), show(r));
  assert.match(texts(r, far), /bridge br0: 02:42:0a:00:00:\w\w → port veth[0-9a-f]{7}/);
  assert.match(texts(r, 'far'), /veth[0-9a-f]{7} on br0 of overlay network ovt ↔ eth0 of far \(10\.0\.0\.\d+/);
  assert.match(texts(r, far), /reply: vxlan0: 02:42:0a:00:00:\w\w → remote tunnel endpoint 203\.0\.113\.1/);
  assert.match(r.Hops.at(-1).text, /SYN-ACK/);

  const ping = JSON.parse(await ok(a.loom('network', 'trace', 'near', 'far', '--json')));
  assert.equal(ping.Verdict, 'delivered', show(ping));
  assert.ok(ping.Hops.some((h: any) => h.where === far && h.kind === 'tunnel'), show(ping));
  const closed = JSON.parse(await ok(a.loom('network', 'trace', 'near', 'far', '--port', '81/tcp', '--json')));
  assert.equal(closed.Verdict, 'refused', show(closed));

  // nothing left on either host
  for (const sb of [a, b]) assert.doesNotMatch(await ok(sb.hostExec(['nft', 'list', 'table', 'ip', 'loom'])), /trace\d+_|nftrace/);
  await fails(a.loom('network', 'trace', 'near', 'nowhere'), /No such container: nowhere/);
});
