// `node ls` with a cluster of HOSTS hosts (issue 15's goal: under 50 ms with 10): seeds HOSTS-1 other hosts
// into the cluster store next to the running daemon's own (each with its node record and a leased liveness
// key, so all are "ready"), then times GET /nodes on the daemon's socket and `bin/loom node ls` (the CLI
// process included). Runs inside the world's host namespace, where etcd and the daemon are.
//
//   node bench/workers/nodes.ts CONFIG.json      (writes its result to config.out)
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { EtcdClusterStore } from '../../src/store/etcd.ts';
import { NODE_KEYS, selfRecord } from '../../src/core/nodes.ts';
import { runWorker } from './attach.ts';

export interface NodesConfig { store: string; socket: string; hosts: number; n: number; cliN: number; out: string; loom: string }
export interface NodesResult { api: number[]; cli: number[]; listed: number }

function get(socket: string, p: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ socketPath: socket, path: p }, (res) => {
      let t = '';
      res.on('data', (d: Buffer) => (t += d.toString()));
      res.on('end', () => (res.statusCode === 200 ? resolve(t) : reject(new Error(`${p}: ${res.statusCode} ${t}`))));
    }).on('error', reject);
  });
}

function cli(loom: string, socket: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(loom, ['node', 'ls'], { env: { ...process.env, LOOM_HOST: `unix://${socket}` }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`node ls: exit ${code}: ${err}`))));
  });
}

async function main(): Promise<void> {
  const cfg = JSON.parse(fs.readFileSync(process.argv[2]!, 'utf8')) as NodesConfig;
  const store = new EtcdClusterStore(cfg.store);
  await store.grantLease(600, () => {});
  const ops = [];
  for (let i = 1; i < cfg.hosts; i++) {
    const id = `${'b'.repeat(56)}${String(i).padStart(8, '0')}`;
    const rec = { ...selfRecord(id, `203.0.113.${i}`, '0.1.0', new Date().toISOString()), hostname: `bench-host-${String(i).padStart(2, '0')}` };
    ops.push({ put: NODE_KEYS.node(id), value: JSON.stringify(rec) }, { put: `${NODE_KEYS.hosts}${id}`, value: JSON.stringify({ advertise: rec.addr, name: rec.hostname }), leased: true });
  }
  await store.txn([], ops);
  const res: NodesResult = { api: [], cli: [], listed: 0 };
  res.listed = JSON.parse(await get(cfg.socket, '/v1.50/nodes')).length;
  for (let i = 0; i < cfg.n; i++) {
    const s = performance.now();
    await get(cfg.socket, '/v1.50/nodes');
    res.api.push(performance.now() - s);
  }
  for (let i = 0; i < cfg.cliN; i++) {
    const s = performance.now();
    const out = await cli(cfg.loom, cfg.socket);
    res.cli.push(performance.now() - s);
    if (i === 0 && out.trim().split('\n').length !== cfg.hosts + 1) throw new Error(`node ls listed ${out.trim().split('\n').length - 1} hosts, not ${cfg.hosts}:\n${out}`);
  }
  await store.close();
  fs.writeFileSync(cfg.out, JSON.stringify(res));
}

if (import.meta.main) await runWorker('nodes', main);
void path;
