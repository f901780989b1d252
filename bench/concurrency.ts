// bench/concurrency: latency of API operations while many run at once, on one daemon in sandbox namespaces
// (issue 12): 100 container creates+starts across 5 networks and 40 on the default bridge all at once,
// 20 network creates at once, 40 connects and 40 disconnects at once, 140 removals at once. Prints p50/p99
// (and max) of each request's own time. An instrument, not a test; figures go to BENCHMARKS.md.
//
//   .node/bin/node bench/concurrency.ts
import { createSandbox } from '../test/helpers/sandbox.ts';

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};

async function timed<T>(n: number, fn: (i: number) => Promise<T>): Promise<{ ms: number[]; results: T[]; wallMs: number }> {
  const t0 = performance.now();
  const ms: number[] = [];
  const results = await Promise.all(Array.from({ length: n }, async (_, i) => {
    const s = performance.now();
    const r = await fn(i);
    ms.push(performance.now() - s);
    return r;
  }));
  return { ms, results, wallMs: performance.now() - t0 };
}

const sb = await createSandbox({ tag: 'concb' });
const rows: string[] = [];
const report = (what: string, r: { ms: number[]; results: { status: number }[]; wallMs: number }) => {
  const bad = r.results.filter((x) => x.status >= 300).length;
  rows.push(`| ${what} | ${r.ms.length} | ${pct(r.ms, 50).toFixed(0)} | ${pct(r.ms, 99).toFixed(0)} | ${Math.max(...r.ms).toFixed(0)} | ${(r.wallMs / 1000).toFixed(1)} | ${bad} |`);
};
try {
  await sb.startDaemon();
  await sb.image('box');
  report('network create (20 at once)', await timed(20, (i) => sb.api('POST', '/networks/create', { Name: `cb${i}`, IPAM: { Config: [{ Subnet: `10.60.${i}.0/24` }] } })));
  const runOne = async (i: number) => {
    const net = i < 100 ? `cb${i % 5}` : 'bridge';
    const c = await sb.api('POST', `/containers/create?name=k${i}`, { Image: 'box', Cmd: ['sleep', '1d'], HostConfig: { NetworkMode: net } });
    if (c.status !== 201) return c;
    return sb.api('POST', `/containers/k${i}/start`);
  };
  report('create + start (140 at once: 100 on 5 networks, 40 on the default bridge)', await timed(140, runOne));
  report('network connect (40 at once)', await timed(40, (i) => sb.api('POST', `/networks/cb${5 + (i % 5)}/connect`, { Container: `k${i}` })));
  report('network disconnect (40 at once)', await timed(40, (i) => sb.api('POST', `/networks/cb${5 + (i % 5)}/disconnect`, { Container: `k${i}` })));
  report('rm -f (140 at once)', await timed(140, (i) => sb.api('DELETE', `/containers/k${i}?force=1`)));
  report('network rm (20 at once)', await timed(20, (i) => sb.api('DELETE', `/networks/cb${i}`)));
} finally {
  await sb.cleanup();
}
console.log('| operation | requests | p50 ms | p99 ms | max ms | wall s | refused |\n|---|---|---|---|---|---|---|');
for (const r of rows) console.log(r);
