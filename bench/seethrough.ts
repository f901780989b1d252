// Issue 13's speed goals, measured (an instrument, never a pass/fail test):
//   - the topology of 1,000 endpoints built (and rendered as JSON, text, SVG) in under 50 ms
//   - the web page responsive with 200 containers: under 100 ms per update (fetch topology and SVG,
//     redraw, layout), in headless chromium (playwright-core) inside an empty namespace of its own, the
//     page's requests answered from synthetic records by request interception (no socket is opened)
//   - a trace answers in under 200 ms on one host (delivered, and dropped by icc=false), and in under
//     500 ms across an overlay network (two hosts and etcd, test/e2e/seethrough-world.ts)
// The topology part is pure; the others need root (namespaces, test/helpers/sandbox.ts).
//   node bench/seethrough.ts [--no-trace] [--no-page] [--no-overlay] [--n 20]
import { performance } from 'node:perf_hooks';
import { buildTopology } from '../src/topology/model.ts';
import { renderSvg, renderText } from '../src/topology/render.ts';
import type { ContainerRecord, NetworkRecord } from '../src/core/types.ts';
import { createSandbox } from '../test/helpers/sandbox.ts';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { twoHosts, twoHostSkip } from '../test/e2e/seethrough-world.ts';
import { renderTrace } from '../src/trace/render.ts';

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

const PAGE_PORT = 7791;
if (args.includes('--page-server')) {
  // the UI's static files and its two data requests, from synthetic records (src/ui/server.ts's routes)
  const staticDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'ui', 'static');
  let count = 200;
  const built: number[] = [];
  http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const send = (type: string, body: string | Buffer) => { res.writeHead(200, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) }); res.end(body); };
    if (u.pathname === '/bump') { count++; return send('text/plain', ''); }
    if (u.pathname === '/stats') return send('application/json', JSON.stringify(built));
    if (u.pathname === '/api/events') { res.writeHead(204); return res.end(); }
    if (u.pathname === '/api/topology' || u.pathname === '/api/topology.svg') {
      const t = performance.now();
      const topo = buildTopology(world(count, 5));
      const body = u.pathname.endsWith('.svg') ? renderSvg(topo) : JSON.stringify(topo);
      built.push(performance.now() - t);
      return send(u.pathname.endsWith('.svg') ? 'image/svg+xml' : 'application/json', body);
    }
    const file = u.pathname === '/' ? 'index.html' : u.pathname.slice(1);
    if (/^[\w.]+$/.test(file) && fs.existsSync(path.join(staticDir, file))) return send(file.endsWith('.js') ? 'text/javascript' : file.endsWith('.css') ? 'text/css' : 'text/html', fs.readFileSync(path.join(staticDir, file)));
    res.writeHead(404);
    res.end();
  }).listen(PAGE_PORT, '127.0.0.1', () => process.stdout.write('listening\n'));
  await new Promise(() => {});
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

if (!args.includes('--no-page')) {
  const chromiumBin = '/usr/bin/chromium';
  if (process.getuid?.() !== 0 || !fs.existsSync(chromiumBin)) {
    console.log('page: skipped (needs root and /usr/bin/chromium)');
  } else {
    const { chromium } = await import('playwright-core');
    const ns = `lst-page-${process.pid}`;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lst-page-'));
    spawnSync('ip', ['netns', 'add', ns]);
    try {
      spawnSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      // the page's server: this script in --page-server mode, inside the namespace
      const server = spawn('nsenter', [`--net=/run/netns/${ns}`, '--', process.execPath, '--disable-warning=ExperimentalWarning', fileURLToPath(import.meta.url), '--page-server'], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise((r) => server.stdout!.once('data', r));
      const wrapper = path.join(dir, 'chromium');
      fs.writeFileSync(wrapper, `#!/bin/sh\nexec nsenter --net=/run/netns/${ns} -- ${chromiumBin} "$@"\n`, { mode: 0o755 });
      const ctx = await chromium.launchPersistentContext(path.join(dir, 'profile'), {
        executablePath: wrapper, headless: true, viewport: { width: 1400, height: 900 },
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      });
      try {
        const page = ctx.pages()[0] ?? await ctx.newPage();
        // 200 containers on 5 networks; each update adds one more (what a `run` elsewhere does)
        await page.goto(`http://127.0.0.1:${PAGE_PORT}/`);
        await page.waitForSelector('g[data-kind="container"]');
        const updates: number[] = [];
        for (let i = 0; i < N; i++) {
          updates.push(await page.evaluate(async () => {
            await fetch('/bump', { method: 'POST' });
            const t = performance.now();
            await (globalThis as unknown as { refresh: () => Promise<void> }).refresh();
            document.body.getBoundingClientRect(); // the layout of the new picture
            return performance.now() - t;
          }));
        }
        // the same update split: the two requests, then the redraw alone (drawSvg and layout)
        const split = { fetch: [] as number[], draw: [] as number[] };
        for (let i = 0; i < N; i++) {
          const r = await page.evaluate(async () => {
            await fetch('/bump', { method: 'POST' });
            const t0 = performance.now();
            const [, svg] = await Promise.all([fetch('/api/topology').then((x) => x.json()), fetch('/api/topology.svg').then((x) => x.text())]);
            const t1 = performance.now();
            (globalThis as unknown as { drawSvg: (p: Element, s: string) => void }).drawSvg(document.querySelector('#picture')!, svg);
            document.body.getBoundingClientRect();
            return [t1 - t0, performance.now() - t1];
          });
          split.fetch.push(r[0]!);
          split.draw.push(r[1]!);
        }
        const shown = await page.locator('g[data-kind="container"]').count();
        // a click on a container (details, rules, the trace form listing every container), in the page
        const clicks: number[] = [];
        for (let i = 0; i < N; i++) {
          clicks.push(await page.evaluate((name) => {
            const t = performance.now();
            document.querySelector(`g[data-kind="container"][data-name="${name}"]`)!.dispatchEvent(new MouseEvent('click', { bubbles: true }));
            document.body.getBoundingClientRect();
            if (document.querySelector('#details h2')?.textContent !== name) throw new Error(`no details for ${name}`);
            return performance.now() - t;
          }, `c${(i * 7) % 200}`));
        }
        const built = (await page.evaluate(() => fetch('/stats').then((r) => r.json()))) as number[];
        console.log(`page with ${shown} containers on 5 networks: update (fetch topology + SVG, redraw, layout) ${stats(updates)} (requests ${stats(split.fetch)}, redraw and layout ${stats(split.draw)}); of which the server built topology and SVG in ${stats(built)}; click → details ${stats(clicks)}`);
      } finally {
        await ctx.close();
      }
      server.kill();
    } finally {
      spawnSync('ip', ['netns', 'del', ns]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
}

if (!args.includes('--no-overlay')) {
  const skip = twoHostSkip();
  if (skip) console.log(`overlay trace: skipped (${skip})`);
  else {
    const w = await twoHosts('lsb');
    try {
      await w.a.loom('network', 'create', '-d', 'overlay', '--attachable', 'ovb');
      for (let i = 0; i < 100 && (await w.b.loom('network', 'inspect', 'ovb')).code !== 0; i++) await new Promise((r) => setTimeout(r, 100));
      await w.a.loom('run', '-d', '--name', 'near', '--network', 'ovb', 'box', 'sleep', '1d');
      await w.b.loom('run', '-d', '--name', 'far', '--network', 'ovb', 'box', 'sh', '-c', 'httpd -p 80 -h /www; exec sleep 1d');
      for (let i = 0; i < 100 && (await w.a.api('POST', '/loom/trace', { Source: 'near', Destination: 'far' })).status !== 200; i++) await new Promise((r) => setTimeout(r, 100));
      const measure = async (body: object) => {
        const server: number[] = [], client: number[] = [];
        let last: any;
        for (let i = 0; i < N; i++) {
          const t = performance.now();
          const r = await w.a.api('POST', '/loom/trace', body);
          client.push(performance.now() - t);
          server.push(r.body.DurationMs);
          last = r.body;
        }
        return { text: `in the daemon ${stats(server)}; API round trip ${stats(client)} (${last.Verdict})`, last };
      };
      const tcp = await measure({ Source: 'near', Destination: 'far', Port: 80 });
      console.log(`overlay trace near (host A) → far (host B) tcp/80: ${tcp.text}`);
      console.log(`overlay trace near → far icmp: ${(await measure({ Source: 'near', Destination: 'far' })).text}`);
      if (args.includes('--show')) process.stdout.write(renderTrace(tcp.last));
    } finally {
      await w.cleanup();
    }
  }
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
