// What the attach path's two cheaper steps cost, side by side in one run (issue 14):
//   - one published port added and removed through libnftables' text (nft.ts: it fetches the namespace's
//     tables, chains, sets and objects before each command) and as loom's own nf_tables netlink batch
//     (nfnl.ts), interleaved, in a table holding 1,000 published ports (what N=1000 attaches leave);
//   - one SQLite commit of a container record (the attach path made 5 of them, now 3).
// Needs root; runs itself inside a namespace of its own (`loomb-fwe-<pid>`), deleted at the end.
//   .node/bin/node bench/fw-elements.ts [--rounds 400]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FwPort } from '../src/firewall/model.ts';

const rounds = Number(process.argv[process.argv.indexOf('--rounds') + 1]) || 400;

if (process.env.LOOM_FWE_CHILD !== '1') {
  const ns = `loomb-fwe-${process.pid}`;
  spawnSync('ip', ['netns', 'add', ns], { stdio: 'inherit' });
  try {
    const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '--disable-warning=ExperimentalWarning', import.meta.filename, '--rounds', String(rounds)], {
      stdio: 'inherit', env: { ...process.env, LOOM_FWE_CHILD: '1' },
    });
    process.exitCode = r.status ?? 1;
  } finally {
    spawnSync('ip', ['netns', 'del', ns]);
  }
} else {
  const { Nft } = await import('../src/firewall/nft.ts');
  const { Firewall } = await import('../src/firewall/firewall.ts');
  const { NfnlSocket } = await import('../src/firewall/nfnl.ts');
  const { Store } = await import('../src/store/sqlite.ts');
  const nft = new Nft();
  const text = new Firewall(nft);
  const batch = new Firewall(nft, new NfnlSocket());
  const port = (i: number): FwPort => ({ proto: 'tcp', hostIp: '', hostPort: 10000 + i, hostPortEnd: 10000 + i, containerIp: `172.18.${i >> 8}.${(i & 255) || 1}`, containerPort: 80, containerPortEnd: 80, bridge: 'br1', family: 4 });
  text.reconcile({
    networks: [1, 2, 3].map((k) => ({ id: `n${k}`.padEnd(64, '0'), bridge: `br${k}`, subnets4: [`172.${17 + k}.0.0/16`], subnets6: [], gateways4: [`172.${17 + k}.0.1`], masquerade: true, icc: true, internal: false })),
    ports: Array.from({ length: 1000 }, (_, i) => port(i)),
    links: [],
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loomb-fwe-'));
  const store = new Store(dir);
  const rec = { id: 'c'.repeat(64), name: 'bench', doc: 'x'.repeat(3000) };
  const t: Record<string, number[]> = { text: [], batch: [], commit: [] };
  const time = (k: string, fn: () => void) => {
    const a = performance.now();
    fn();
    t[k]!.push(performance.now() - a);
  };
  for (let i = 0; i < rounds; i++) {
    const p = port(2000 + i);
    // alternate which goes first, so that neither always meets a warm cache
    const order = i % 2 ? ['text', 'batch'] : ['batch', 'text'];
    for (const k of order) {
      const fw = k === 'text' ? text : batch;
      time(k, () => {
        fw.apply({ addPorts: [p] });
        fw.apply({ removePorts: [p] });
      });
    }
    time('commit', () => store.put('containers', rec));
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  const p95 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.95)]!;
  console.log(`| step (${rounds} rounds, interleaved, load ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}) | median | p95 |`);
  console.log('|---|--:|--:|');
  console.log(`| one port added + removed: libnftables text (2 transactions) | ${med(t.text!).toFixed(3)} ms | ${p95(t.text!).toFixed(3)} ms |`);
  console.log(`| one port added + removed: loom's netlink batch (2 transactions) | ${med(t.batch!).toFixed(3)} ms | ${p95(t.batch!).toFixed(3)} ms |`);
  console.log(`| one SQLite commit of a container record (WAL, synchronous=NORMAL) | ${med(t.commit!).toFixed(3)} ms | ${p95(t.commit!).toFixed(3)} ms |`);
  text.removeAll();
  nft.close();
  store.db.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
