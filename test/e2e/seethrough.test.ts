// Issue 13, see-through networking: the topology (GET /loom/topology, `network graph`), real packet traces
// (`network trace`) in a sandbox, and `explain`.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { XMLValidator } from 'fast-xml-parser';
import { createSandbox, eventually, type Sandbox } from '../helpers/sandbox.ts';
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

async function trace(...args: string[]): Promise<any> {
  const out = await ok(sb.loom('network', 'trace', ...args, '--json'), `trace ${args.join(' ')}`);
  return JSON.parse(out);
}
const show = (r: any) => JSON.stringify(r, null, 1);
const meanings = (r: any) => r.Hops.map((h: any) => h.meaning ?? '').join('\n');
const nftLoom = () => ok(sb.hostExec(['nft', 'list', 'table', 'ip', 'loom']));

describe('trace', { skip }, () => {
  test('default bridge, container to container: delivered, hop by hop', async () => {
    const r = await trace('a1', 'web', '--port', '80/tcp');
    assert.equal(r.Verdict, 'delivered', show(r));
    assert.match(r.Hops[0].text, /^route to 172\.17\.0\.\d+: 172\.17\.0\.0\/16 dev eth0$/);
    assert.match(r.Hops[1].text, /^eth0 \(172\.17\.0\.\d+, 02:42:\S+\) ↔ veth[0-9a-f]{7} on bridge loom0 \(network bridge\)$/);
    assert.match(meanings(r), /inter-container communication on network bridge \(icc=true\)/);
    assert.ok(r.Hops.some((h: any) => h.kind === 'rule' && h.direction === 'reply'), 'the SYN-ACK is traced too');
    assert.match(r.Hops.at(-1).text, /SYN-ACK/);
    const text = await ok(sb.loom('network', 'trace', 'a1', 'web', '--port', '80/tcp'));
    assert.match(text, /^trace a1 \(172\.17\.0\.\d+\) → web \(172\.17\.0\.\d+\), tcp port 80\n/);
    assert.match(text, /→ ip loom forward: iifname "loom0" oifname "loom0" accept comment "icc in \w+" => accept/);
    assert.match(text, /\nverdict: delivered: SYN-ACK/);
    const ping = await trace('a1', 'web');
    assert.equal(ping.Verdict, 'delivered', show(ping));
    assert.match(ping.Reason, /echo reply from 172\.17\.0\.\d+/);
  });

  test('a closed port answers with a reset: refused; an address nobody has: no answer', async () => {
    const r = await trace('a1', 'web', '--port', '81/tcp');
    assert.equal(r.Verdict, 'refused', show(r));
    assert.match(r.Reason, /nothing listens/);
    const none = await trace('a1', '172.17.0.250', '--timeout', '6000');
    assert.equal(none.Verdict, 'no answer', show(none));
    assert.match(none.Reason, /nothing answers for 172\.17\.0\.250 on eth0 \(no ARP reply\)/);
  });

  test('enable_icc=false: dropped by the icc rule', async () => {
    const r = await trace('q1', 'q2', '--port', '80/tcp');
    assert.equal(r.Verdict, 'dropped', show(r));
    assert.match(r.Reason, /--icc=false on network quiet/);
    assert.match(r.Rule, /no icc in/);
  });

  test('--link exception on an icc=false network: delivered', async () => {
    const r = await trace('q3', 'q2', '--port', '80/tcp');
    assert.equal(r.Verdict, 'delivered', show(r));
    assert.match(meanings(r), /--link exception on an icc=false network/);
  });

  test('isolation between networks: dropped', async () => {
    const r = await trace('o1', 'web');
    assert.equal(r.Verdict, 'dropped', show(r));
    assert.match(r.Reason, /isolation between networks other and bridge/);
    const gw = await trace('o1', '172.17.0.1', '--port', '80/tcp');
    assert.equal(gw.Verdict, 'dropped', show(gw));
    assert.match(gw.Reason, /gateway/);
  });

  test('internal network: no way out', async () => {
    const r = await trace('s1', 'outside:198.51.100.2');
    assert.ok(['no route', 'dropped'].includes(r.Verdict), show(r));
    assert.match(r.Reason, /internal network sealed: no way out/);
  });

  test('published port from outside: delivered; an unpublished port: refused, no published port', async () => {
    const r = await trace('outside:198.51.100.2', '198.51.100.1:8080');
    assert.equal(r.Verdict, 'delivered', show(r));
    assert.match(meanings(r), /published port 8080\/tcp → web:80: translated \(DNAT\) to 172\.17\.0\.\d+:80, so it may enter network bridge/);
    assert.match(meanings(r), /the reply leaves network bridge/);
    assert.match(r.Reason, /through a published port/);
    const miss = await trace('outside:198.51.100.2', '198.51.100.1:8081');
    assert.ok(['refused', 'no answer', 'dropped'].includes(miss.Verdict), show(miss));
    assert.match(miss.Reason, /no published port 8081\/tcp on 198\.51\.100\.1/);
  });

  test('bad input: unknown container, network none, port out of range, no port for tcp', async () => {
    await fails(sb.loom('network', 'trace', 'nope', 'web'), /No such container: nope/);
    await fails(sb.loom('network', 'trace', 'lonely', 'web'), /container lonely has no network path: its network mode is none/);
    await fails(sb.loom('network', 'trace', 'a1', 'lonely'), /container lonely has no network path/);
    await fails(sb.loom('network', 'trace', 'a1', 'web', '--port', '70000/tcp'), /invalid port "70000"/);
    await fails(sb.loom('network', 'trace', 'a1', 'web', '--port', '80/sctp'), /invalid protocol "sctp"/);
    await fails(sb.loom('network', 'trace', 'outside:203.0.113.9', 'web'), /outside:203\.0\.113\.9/);
    assert.equal((await sb.api('POST', '/loom/trace', { Source: 'a1', Destination: 'web', Bogus: 1 })).status, 400);
    assert.doesNotMatch(await nftLoom(), /trace\d+_|nftrace/);
  });

  test('a self-heal during a trace keeps the trace rule; it is gone afterwards', async () => {
    // dropped by icc=false: the UDP probe then waits for an answer for the whole timeout
    const pending = trace('q1', 'q2', '--port', '9/udp', '--timeout', '4000');
    assert.match(await eventually(nftLoom, (s) => /nftrace set 1/.test(s), 4000), /nftrace set 1/);
    await ok(sb.hostExec(['nft', 'delete', 'table', 'ip', 'loom']));
    const healed = await eventually(() => sb.hostExec(['nft', 'list', 'table', 'ip', 'loom']).then((r) => r.stdout), (s) => /chain forward/.test(s), 4000);
    assert.match(healed, /nftrace set 1/, 'the heal put the trace rule back with the table');
    const r = await pending;
    assert.equal(r.Verdict, 'dropped', show(r));
    assert.doesNotMatch(await nftLoom(), /trace\d+_|nftrace/);
  });
});
