// Issue 13, see-through networking: the topology (GET /loom/topology, `network graph`), real packet traces
// (`network trace`) in a sandbox, and `explain`.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { XMLValidator } from 'fast-xml-parser';
import { createSandbox, type Sandbox } from '../helpers/sandbox.ts';
import { ok, fails } from '../helpers/assert.ts';

const skip = process.getuid?.() !== 0 ? 'needs root (network namespaces, nftables, runc)' : false;
let sb: Sandbox;
const HTTPD = ['sh', '-c', 'mkdir -p /w && echo hi > /w/index.html && httpd -p 80 -h /w; exec sleep 1d'];

before(async () => {
  if (skip) return;
  sb = await createSandbox({ tag: 'see' });
  await sb.startDaemon();
  await sb.image('box');
  await ok(sb.loom('network', 'create', '-o', 'com.docker.network.bridge.enable_icc=false', 'quiet'));
  await ok(sb.loom('network', 'create', 'other'));
  await ok(sb.loom('network', 'create', '--internal', 'sealed'));
  const run = (...a: string[]) => ok(sb.loom('run', '-d', ...a), `run ${a.join(' ')}`);
  await run('--name', 'a1', 'box', 'sleep', '1d');
  await run('--name', 'web', '-p', '8080:80', 'box', ...HTTPD);
  await run('--name', 'q1', '--network', 'quiet', 'box', 'sleep', '1d');
  await run('--name', 'q2', '--network', 'quiet', '--expose', '80', 'box', ...HTTPD);
  await run('--name', 'q3', '--network', 'quiet', '--link', 'q2', 'box', 'sleep', '1d');
  await run('--name', 'o1', '--network', 'other', 'box', 'sleep', '1d');
  await run('--name', 's1', '--network', 'sealed', 'box', 'sleep', '1d');
  await run('--name', 'lonely', '--network', 'none', 'box', 'sleep', '1d');
}, { timeout: 180_000 });

after(async () => {
  await sb?.cleanup();
});

describe('topology', { skip }, () => {
  test('GET /loom/topology: networks, containers with endpoints, ports, links', async () => {
    const r = await sb.api('GET', '/loom/topology');
    assert.equal(r.status, 200);
    const t = r.body;
    assert.ok(t.host.uplinks.some((u: any) => u.name === 'ext0' && u.addresses.includes('198.51.100.1/24')), JSON.stringify(t.host));
    const net = (n: string) => t.networks.find((x: any) => x.name === n);
    assert.equal(net('quiet').icc, false);
    assert.equal(net('sealed').internal, true);
    assert.equal(net('bridge').bridge, 'loom0');
    const web = t.containers.find((c: any) => c.name === 'web');
    assert.deepEqual(web.ports, [{ proto: 'tcp', hostIp: '', hostPort: 8080, containerPort: 80 }]);
    assert.equal(web.endpoints[0].ifname, 'eth0');
    assert.match(web.endpoints[0].hostVeth, /^veth[0-9a-f]{7}$/);
    assert.match(web.endpoints[0].mac, /^02:42:/);
    assert.deepEqual(t.containers.find((c: any) => c.name === 'q3').links, [{ name: 'q2', alias: 'q2' }]);
    assert.ok(t.containers.find((c: any) => c.name === 'q1').dnsNames.includes('q1'));
    assert.deepEqual(t.containers.find((c: any) => c.name === 'lonely').endpoints, []);
    assert.equal((await sb.api('GET', '/loom/topology?format=png')).status, 400);
  });

  test('network graph: text tree, dot, svg, json', async () => {
    const text = await ok(sb.loom('network', 'graph'));
    assert.match(text, /^host \S+ \(uplinks: ext0 198\.51\.100\.1\/24\)/);
    assert.match(text, /network quiet \(bridge, br-[0-9a-f]{12}, [\d./]+, gateway [\d.]+, icc=false\)/);
    assert.match(text, /web \[running\] eth0 172\.17\.0\.\d+\/16 02:42:\S+ ↔ veth[0-9a-f]{7}\n.*ports 8080->80\/tcp/);
    const svg = await ok(sb.loom('network', 'graph', '--format', 'svg'));
    assert.equal(XMLValidator.validate(svg), true);
    assert.equal((svg.match(/class="node container /g) ?? []).length, 8);
    assert.match(await ok(sb.loom('network', 'graph', '--format', 'dot')), /^digraph loom \{/);
    assert.equal(JSON.parse(await ok(sb.loom('network', 'graph', '--format', 'json'))).containers.length, 8);
    await fails(sb.loom('network', 'graph', '--format', 'png'), /invalid --format "png"/);
  });
});
