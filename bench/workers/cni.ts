// CNI ADD and DEL as a runtime runs them, N namespaces one after another, by one system. Runs inside a
// sandbox "host" namespace (bench/lib/world.ts), like the attach worker.
//
//   node bench/workers/cni.ts CONFIG.json      (writes its result to config.out)
//
// Systems (config.mode), each one process per call with the config on stdin, as libcni and podman run them:
//   loom      loom's plugin (config.plugin: the C client .cache/bin/loom-cni, or the Node one bin/loom-cni)
//             against the loom daemon at config.socket, on its user-defined network `benchnet` (loom's IPAM,
//             veth, address, route, the embedded DNS's names and resolver socket; NAT is the network's)
//   cni       the CNI bridge plugin with host-local IPAM and ipMasq (its per-container NAT rules)
//   netavark  `netavark setup/teardown NSPATH` with podman's JSON (no DNS, no port)
// The namespace is made before ADD and deleted after DEL, untimed (the runtime's part).
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createNetns, deleteNetns } from '../../src/kernel/netns.ts';
import { CNI_PATH, cniAdd, cniConfigs, cniDel, netavarkArgv, netavarkEnv, netavarkOptions, runWorker } from './attach.ts';

export interface CniBenchConfig {
  mode: 'loom' | 'cni' | 'netavark';
  n: number;
  dir: string;
  prefix: string;
  out: string;
  plugin?: string;
  socket?: string;
}

export interface CniBenchResult { add: number[]; del: number[]; notes: string[] }

function exec(argv: string[], input: string, env: NodeJS.ProcessEnv): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env });
    const out: Buffer[] = [];
    c.stdout.on('data', (d: Buffer) => out.push(d));
    c.stderr.on('data', () => {});
    c.on('error', reject);
    c.on('close', (code) => resolve({ code: code ?? -1, out: Buffer.concat(out).toString() }));
    c.stdin.on('error', () => {});
    c.stdin.end(input);
  });
}

const hex = (i: number) => i.toString(16).padStart(64, '0');

async function main(): Promise<void> {
  const cfg = JSON.parse(fs.readFileSync(process.argv[2]!, 'utf8')) as CniBenchConfig;
  const ns = (i: number) => `/run/netns/${cfg.prefix}${i}`;
  const res: CniBenchResult = { add: [], del: [], notes: [] };
  const prev = new Map<number, unknown>();
  let add: (i: number) => Promise<void>, del: (i: number) => Promise<void>;
  if (cfg.mode === 'loom') {
    const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'benchnet', type: 'loom', network: 'benchnet', socket: cfg.socket });
    const env = (cmd: string, i: number) => ({ PATH: process.env.PATH, CNI_COMMAND: cmd, CNI_CONTAINERID: hex(i), CNI_NETNS: ns(i), CNI_IFNAME: 'eth0', CNI_PATH: path.dirname(cfg.plugin!) });
    add = async (i) => {
      const r = await exec([cfg.plugin!], conf, env('ADD', i));
      if (r.code !== 0) throw new Error(`loom ADD: ${r.out}`);
    };
    del = async (i) => {
      const r = await exec([cfg.plugin!], conf, env('DEL', i));
      if (r.code !== 0) throw new Error(`loom DEL: ${r.out}`);
    };
  } else if (cfg.mode === 'cni') {
    if (!fs.existsSync(path.join(CNI_PATH, 'bridge'))) throw new Error('the CNI plugins are not installed');
    add = async (i) => { prev.set(i, await cniAdd(cfg.dir, hex(i), ns(i), cniConfigs(cfg.dir, i, { port: false }))); };
    del = async (i) => { await cniDel(cfg.dir, hex(i), ns(i), cniConfigs(cfg.dir, i, { port: false }), prev.get(i)); };
  } else {
    fs.mkdirSync(path.join(cfg.dir, 'netavark'), { recursive: true });
    const env = netavarkEnv();
    add = async (i) => {
      const r = await exec(netavarkArgv(cfg.dir, 'setup', ns(i)), JSON.stringify(netavarkOptions(i, { dns: false, port: false })), env);
      if (r.code !== 0) throw new Error(`netavark setup: ${r.out}`);
    };
    del = async (i) => {
      const r = await exec(netavarkArgv(cfg.dir, 'teardown', ns(i)), JSON.stringify(netavarkOptions(i, { dns: false, port: false })), env);
      if (r.code !== 0) throw new Error(`netavark teardown: ${r.out}`);
    };
  }
  let made = 0;
  try {
    for (let i = 0; i < cfg.n; i++) {
      createNetns(ns(i));
      made = i + 1;
      const s = performance.now();
      await add(i);
      res.add.push(performance.now() - s);
    }
    for (let i = 0; i < cfg.n; i++) {
      const s = performance.now();
      await del(i);
      res.del.push(performance.now() - s);
      deleteNetns(ns(i));
    }
    made = 0;
  } finally {
    for (let i = 0; i < made; i++) {
      await del(i).catch(() => {});
      try { deleteNetns(ns(i)); } catch { /* gone */ }
    }
  }
  fs.writeFileSync(cfg.out, JSON.stringify(res));
}

if (import.meta.main) await runWorker('cni', main);
