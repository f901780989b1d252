// The topology model and its renderings: text tree, dot, JSON and an SVG checked structurally (valid XML,
// one node per container and bridge, no two label boxes overlapping) for 50 containers on 5 networks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { buildTopology, type TopologyInput } from '../../src/topology/model.ts';
import { renderDot, renderSvg, renderText } from '../../src/topology/render.ts';
import type { ContainerRecord, NetworkRecord } from '../../src/core/types.ts';

function net(i: number, extra: Partial<NetworkRecord> = {}): NetworkRecord {
  return {
    id: `${i}`.padStart(64, 'a'), name: i === 0 ? 'bridge' : `net${i}`, driver: 'bridge', scope: 'local', created: '', enableIPv6: false,
    ipam: { driver: 'default', options: {}, config: [{ Subnet: `10.${i}.0.0/24`, Gateway: `10.${i}.0.1` }] }, internal: false, attachable: false,
    options: {}, labels: {}, bridge: i === 0 ? 'loom0' : `br-${i}`, isDefault: i === 0, ...extra,
  };
}

function ctr(i: number, nets: NetworkRecord[], extra: Partial<ContainerRecord> = {}): ContainerRecord {
  const endpoints: ContainerRecord['endpoints'] = {};
  nets.forEach((n, k) => {
    endpoints[n.name] = { id: `ep${i}-${k}`, networkId: n.id, networkName: n.name, ifname: `eth${k}`, hostVeth: `veth${String(i * 10 + k).padStart(7, '0')}`, mac: '02:42:0a:00:00:02', ipv4: `10.${n.name === 'bridge' ? 0 : Number(n.name.slice(3))}.0.${i + 2}`, prefix4: 24, gateway4: '10.0.0.1', aliases: [], phase: 'ready' };
  });
  return {
    id: `${i}`.padStart(64, 'c'), name: `container-with-a-long-name-${i}`, created: '', path: 'sleep', args: [], imageId: 'sha256:x',
    config: {} as ContainerRecord['config'], hostConfig: { Links: null } as unknown as ContainerRecord['hostConfig'], networkMode: nets[0]?.name ?? 'none',
    networkRequests: {}, state: { Status: 'running', Running: true } as ContainerRecord['state'], restartCount: 0, endpoints,
    hostnamePath: '', hostsPath: '', resolvConfPath: '', logPath: '', stateDir: '', ...extra,
  };
}

function world(): TopologyInput {
  const networks = [0, 1, 2, 3, 4].map((i) => net(i, i === 3 ? { internal: true } : {}));
  const containers: ContainerRecord[] = [];
  for (let i = 0; i < 50; i++) {
    const own = networks[i % 5]!;
    const nets = i % 7 === 0 ? [own, networks[(i + 1) % 5]!] : [own];
    containers.push(ctr(i, nets, i === 1 ? { published: [{ proto: 'tcp', containerPort: 80, hostIp: '', hostPort: 8080 }] } : {}));
  }
  return {
    hostName: 'box', uplinks: [{ name: 'ext0', addresses: ['198.51.100.1/24'] }], networks, containers,
    firewall: networks.map((n) => ({ id: n.id, bridge: n.bridge!, subnets4: [], subnets6: [], masquerade: true, icc: n.name !== 'net2', internal: n.internal })),
  };
}

test('topology: model from records and the firewall view', () => {
  const t = buildTopology(world());
  assert.equal(t.networks.length, 5);
  assert.equal(t.containers.length, 50);
  assert.equal(t.networks.find((n) => n.name === 'net2')!.icc, false);
  assert.equal(t.networks.find((n) => n.name === 'net3')!.internal, true);
  const c1 = t.containers.find((c) => c.name.endsWith('-1'))!;
  assert.deepEqual(c1.ports, [{ proto: 'tcp', hostIp: '', hostPort: 8080, containerPort: 80 }]);
  assert.equal(t.containers.find((c) => c.name.endsWith('-7'))!.endpoints.length, 2);
  // user-defined networks give DNS names; the default bridge does not
  assert.deepEqual(t.containers.find((c) => c.name.endsWith('-5'))!.dnsNames, []);
  assert.ok(t.containers.find((c) => c.name.endsWith('-2'))!.dnsNames.includes('container-with-a-long-name-2'));
});

test('topology: text tree and dot', () => {
  const t = buildTopology(world());
  const text = renderText(t);
  assert.match(text, /^host box \(uplinks: ext0 198\.51\.100\.1\/24\)\n/);
  assert.match(text, /├── network bridge \(bridge, loom0, 10\.0\.0\.0\/24, gateway 10\.0\.0\.1\)/);
  assert.match(text, /network net2 \(.*icc=false/);
  assert.match(text, /network net3 \(.*internal/);
  assert.match(text, /container-with-a-long-name-1 \[running\] eth0 10\.1\.0\.3\/24 02:42:0a:00:00:02 ↔ veth0000010\n.*ports 8080->80\/tcp/);
  for (let i = 0; i < 50; i++) assert.ok(text.includes(`container-with-a-long-name-${i} [running]`));
  const dot = renderDot(t);
  assert.match(dot, /^digraph loom \{/);
  assert.equal((dot.match(/\[label="container-with/g) ?? []).length, 50);
  assert.equal((dot.match(/-> "ctr:/g) ?? []).length, 50 + 8); // one edge per endpoint
});

test('topology: SVG for 50 containers on 5 networks is valid XML, one node each, no overlapping labels', () => {
  const svg = renderSvg(buildTopology(world()));
  assert.equal(XMLValidator.validate(svg), true);
  const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '', isArray: (name) => ['g', 'text', 'path'].includes(name) }).parse(svg);
  const groups: any[] = doc.svg.g;
  const containers = groups.filter((g) => /\bcontainer\b/.test(g.class));
  const bridges = groups.filter((g) => /\bbridge\b/.test(g.class));
  assert.equal(containers.length, 50);
  assert.equal(new Set(containers.map((g) => g['data-id'])).size, 50);
  assert.equal(bridges.length, 5);
  // label boxes: each text line fits its rect, and no two rects intersect
  const boxes = groups.map((g) => ({ x: +g.rect.x, y: +g.rect.y, w: +g.rect.width, h: +g.rect.height, lines: g.text.map((t: any) => String(t['#text'])) }));
  for (const b of boxes) {
    for (const l of b.lines) assert.ok([...l].length * 7.3 <= b.w, `"${l}" wider than its box`);
  }
  for (let i = 0; i < boxes.length; i++) {
    for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i]!, b = boxes[j]!;
      const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
      assert.ok(!overlap, `boxes overlap: ${a.lines[0]} and ${b.lines[0]}`);
    }
  }
  const w = Number(doc.svg.width), h = Number(doc.svg.height);
  for (const b of boxes) assert.ok(b.x + b.w <= w && b.y + b.h <= h, `${b.lines[0]} outside the picture`);
});

test('topology: containers without endpoints (host, none, stopped) and escaping', () => {
  const input = world();
  input.networks.push({ ...net(9), id: 'h'.repeat(64), name: 'host', driver: 'host', bridge: undefined, ipam: { driver: 'default', options: {}, config: [] } });
  input.containers = [
    ctr(1, [], { name: 'h<&>"', networkMode: 'host' }),
    ctr(2, [], { name: 'off', state: { Status: 'exited', Running: false } as ContainerRecord['state'] }),
  ];
  const t = buildTopology(input);
  const svg = renderSvg(t);
  assert.equal(XMLValidator.validate(svg), true);
  assert.match(svg, /h&lt;&amp;&gt;&quot;/);
  assert.match(renderText(t), /not running\n    └── off \[exited\]/);
  assert.match(renderText(t), /h<&>" \[running\] the host's network stack/);
});

test('topology: overlay networks show the local and remote tunnel endpoints', () => {
  const input = world();
  const ov = { ...net(7), id: 'o'.repeat(64), name: 'ov', driver: 'overlay', scope: 'global' as const, bridge: undefined, options: { 'com.docker.network.driver.overlay.vxlanid_list': '256' } };
  input.networks = [ov];
  input.containers = [ctr(1, [ov])];
  input.advertise = '203.0.113.1';
  input.remoteEndpoints = (id) => (id === ov.id ? [{ host: 'h'.repeat(64), vtep: '203.0.113.2', name: 'far', ipv4: '10.7.0.9', mac: '02:42:0a:07:00:09' }] : []);
  const t = buildTopology(input);
  assert.deepEqual(t.networks[0]!.tunnel, { local: '203.0.113.1', remotes: [{ host: 'h'.repeat(64), vtep: '203.0.113.2', endpoints: [{ name: 'far', ipv4: '10.7.0.9', mac: '02:42:0a:07:00:09' }] }] });
  assert.equal(t.networks[0]!.vni, '256');
  const text = renderText(t);
  assert.match(text, /network ov \(overlay, br0, 10\.7\.0\.0\/24, gateway 10\.7\.0\.1, vxlan 256, vtep 203\.0\.113\.1 → 203\.0\.113\.2 \(1 endpoint\)\)/);
  assert.match(text, /└── remote: far on host hhhhhhhhhhhh \(vtep 203\.0\.113\.2\) 10\.7\.0\.9 02:42:0a:07:00:09\n/);
  assert.equal(XMLValidator.validate(renderSvg(t)), true);
});
