// Issue 13's speed goals, measured (an instrument, never a pass/fail test):
//   - the topology of 1,000 endpoints built (and rendered as JSON, text, SVG) in under 50 ms
//   - a trace answers in under 200 ms on one host (delivered, and dropped by icc=false)
// The topology part is pure (synthetic records); the trace part runs a daemon in a sandbox
// (test/helpers/sandbox.ts), so it needs root.   node bench/seethrough.ts [--no-trace] [--n 20]
import { performance } from 'node:perf_hooks';
import { buildTopology } from '../src/topology/model.ts';
import { renderSvg, renderText } from '../src/topology/render.ts';
import type { ContainerRecord, NetworkRecord } from '../src/core/types.ts';
import { createSandbox } from '../test/helpers/sandbox.ts';

const args = process.argv.slice(2);
const N = Number(args[args.indexOf('--n') + 1] || 20) || 20;
const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return `median ${s[Math.floor(s.length / 2)]!.toFixed(1)} ms, p95 ${s[Math.min(s.length - 1, Math.floor(s.length * 0.95))]!.toFixed(1)} ms (n=${s.length})`;
};

function world(endpoints: number, nets: number) {
  const networks: NetworkRecord[] = Array.from({ length: nets }, (_, i) => ({
    id: String(i).padStart(64, 'a'), name: `net${i}`, driver: 'bridge', scope: 'local', created: '', enableIPv6: false,
    ipam: { driver: 'default', options: {}, config: [{ Subnet: `10.${i}.0.0/16`, Gateway: `10.${i}.0.1` }] }, internal: false, attachable: false,
    options: {}, labels: {}, bridge: `br-${i}`,
  }));
  const containers = Array.from({ length: endpoints }, (_, i) => {
    const n = networks[i % nets]!;
    return {
      id: String(i).padStart(64, 'c'), name: `c${i}`, hostConfig: { Links: null }, networkMode: n.name, state: { Status: 'running', Running: true },
      published: i % 10 === 0 ? [{ proto: 'tcp', containerPort: 80, hostIp: '', hostPort: 10000 + i }] : [],
      endpoints: { [n.name]: { id: `e${i}`, networkId: n.id, networkName: n.name, ifname: 'eth0', hostVeth: `veth${String(i).padStart(7, '0')}`, mac: '02:42:0a:00:00:02', ipv4: `10.${i % nets}.${Math.floor(i / 250)}.${(i % 250) + 2}`, prefix4: 16, aliases: [], phase: 'ready' } },
    } as unknown as ContainerRecord;
  });
  return { hostName: 'bench', uplinks: [{ name: 'eth0', addresses: ['192.0.2.1/24'] }], networks, containers, firewall: networks.map((n) => ({ id: n.id, bridge: n.bridge!, subnets4: [], subnets6: [], masquerade: true, icc: true, internal: false })) };
}

{
  const input = world(1000, 10);
  const build: number[] = [], json: number[] = [], svg: number[] = [], text: number[] = [];
  for (let i = 0; i < 30; i++) {
    let t = performance.now();
    const topo = buildTopology(input);
    build.push(performance.now() - t);
    t = performance.now(); JSON.stringify(topo); json.push(performance.now() - t);
    t = performance.now(); renderText(topo); text.push(performance.now() - t);
    t = performance.now(); renderSvg(topo); svg.push(performance.now() - t);
  }
  console.log(`topology of 1,000 endpoints on 10 networks: build ${stats(build)}; JSON ${stats(json)}; text ${stats(text)}; SVG ${stats(svg)}`);
}

if (!args.includes('--no-trace')) {
  if (process.getuid?.() !== 0) {
    console.log('trace: skipped (needs root)');
  } else {
    const sb = await createSandbox({ tag: 'bench-trace' });
    try {
      await sb.startDaemon();
      await sb.image('box');
      await sb.loom('network', 'create', '-o', 'com.docker.network.bridge.enable_icc=false', 'quiet');
      await sb.loom('run', '-d', '--name', 'a', 'box', 'sleep', '1d');
      await sb.loom('run', '-d', '--name', 'b', 'box', 'sh', '-c', 'httpd -p 80 -h /www; exec sleep 1d');
      await sb.loom('run', '-d', '--name', 'q1', '--network', 'quiet', 'box', 'sleep', '1d');
      await sb.loom('run', '-d', '--name', 'q2', '--network', 'quiet', 'box', 'sleep', '1d');
      const measure = async (body: object) => {
        const server: number[] = [], client: number[] = [];
        await sb.api('POST', '/loom/trace', body); // the probe worker starts on first use
        for (let i = 0; i < N; i++) {
          const t = performance.now();
          const r = await sb.api('POST', '/loom/trace', body);
          client.push(performance.now() - t);
          server.push(r.body.DurationMs);
        }
        return `in the daemon ${stats(server)}; API round trip ${stats(client)}`;
      };
      console.log(`trace a → b tcp/80 (delivered): ${await measure({ Source: 'a', Destination: 'b', Port: 80 })}`);
      console.log(`trace a → b icmp (delivered): ${await measure({ Source: 'a', Destination: 'b' })}`);
      console.log(`trace q1 → q2 icmp (dropped, icc=false): ${await measure({ Source: 'q1', Destination: 'q2' })}`);
    } finally {
      await sb.cleanup();
    }
  }
}
