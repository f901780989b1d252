// Embedded DNS throughput: dnsperf, run inside a "container" namespace of this benchmark's own, against
// loom's resolver (127.0.0.11 inside that namespace, served by this process) and, when installed, against
// aardvark-dns (Podman's) configured with the same names, listening on a "host" namespace's bridge-side
// address as it does under netavark. Local names only (no forwarding), 10 and 100 queries in flight,
// ~5 s each. Names come from the controller's registry (src/core/dnsnames.ts). Everything lives in namespaces made here and is removed at the end.
//
//   node bench/dns.ts [seconds]        needs root, dnsperf (apt-get install dnsperf), optionally aardvark-dns
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EmbeddedDns } from '../src/dns/resolver.ts';
import { DnsNames } from '../src/core/dnsnames.ts';

const run = promisify(execFile);
const seconds = Number(process.argv[2] ?? 5);
const pid = process.pid;
const C = `loomt-dnsperf-c-${pid}`; // the container: dnsperf runs here
const H = `loomt-dnsperf-h-${pid}`; // the host side, for aardvark-dns
const VETH = `ldp${pid}`;
const AARDVARK = ['/usr/lib/podman/aardvark-dns', '/usr/libexec/podman/aardvark-dns'].find((p) => fs.existsSync(p));
const NAMES = 100;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'loom-dnsbench-'));
const made: string[] = [];
let aardvarkPid = 0;

function sh(cmd: string, ...args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
}

function cleanup(): void {
  if (aardvarkPid) try { process.kill(aardvarkPid, 'SIGTERM'); } catch { /* gone */ }
  aardvarkPid = 0;
  for (const n of made.splice(0)) spawnSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
  fs.rmSync(tmp, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => { cleanup(); process.exit(130); });

const addrOf = (i: number) => `172.18.${i >> 8}.${(i & 0xff) + 2}`;

/** The controller's own name registry: 100 containers and the asker on one network. */
function names(): DnsNames {
  const n = new DnsNames();
  for (let i = 0; i < NAMES; i++) n.add({ containerId: `id${i}`, networkId: 'net1', names: [`c${i}`], ipv4: addrOf(i), ptrName: `c${i}.benchnet` }, 'benchnet');
  n.add({ containerId: 'bench', networkId: 'net1', names: ['client'], ipv4: '172.18.255.2', ptrName: 'client.benchnet' }, 'benchnet');
  return n;
}

interface Result { qps: number; avgMs: number; maxMs: number; lost: number; sent: number; codes: string }

async function dnsperf(server: string, inflight: number, mode: 'udp' | 'tcp', secs = seconds): Promise<Result> {
  const { stdout } = await run('ip', ['netns', 'exec', C, 'dnsperf', '-s', server, '-d', path.join(tmp, 'queries'),
    '-l', String(secs), '-q', String(inflight), '-m', mode, '-t', '2'], { maxBuffer: 1 << 24 });
  const num = (re: RegExp) => Number(re.exec(stdout)?.[1] ?? NaN);
  return {
    qps: num(/Queries per second:\s+([\d.]+)/),
    avgMs: num(/Average Latency \(s\):\s+([\d.]+)/) * 1000,
    maxMs: num(/Average Latency \(s\):.*max ([\d.]+)/) * 1000,
    lost: num(/Queries lost:\s+(\d+)/),
    sent: num(/Queries sent:\s+(\d+)/),
    codes: /Response codes:\s+(.*)/.exec(stdout)?.[1] ?? '?',
  };
}

function line(name: string, inflight: number, mode: string, r: Result): void {
  console.log(`${name.padEnd(14)} ${mode.padEnd(4)} ${String(inflight).padStart(4)} in flight  ${r.qps.toFixed(0).padStart(7)} qps  avg ${r.avgMs.toFixed(3)} ms  max ${r.maxMs.toFixed(2)} ms  lost ${r.lost}/${r.sent}  ${r.codes}`);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces)');
  if (spawnSync('dnsperf', ['-h']).error) throw new Error('dnsperf not installed (apt-get install dnsperf)');
  fs.writeFileSync(path.join(tmp, 'queries'), Array.from({ length: NAMES }, (_, i) => `c${i} A\n`).join(''));

  sh('ip', 'netns', 'add', C); made.push(C);
  sh('ip', '-n', C, 'link', 'set', 'lo', 'up');

  console.log(`dnsperf ${seconds}s per run, ${NAMES} local names, ${os.cpus().length} cores`);
  const quiet = { debug() {}, info() {}, warn() {}, error() {} };
  let dns = new EmbeddedDns(names(), quiet);
  await dns.attach('bench', `/run/netns/${C}`);
  try {
    await dnsperf('127.0.0.11', 100, 'udp', 1); // warm-up (JIT)
    for (const q of [10, 100]) line('loom', q, 'udp', await dnsperf('127.0.0.11', q, 'udp'));
    line('loom', 100, 'tcp', await dnsperf('127.0.0.11', 100, 'tcp'));
  } finally {
    await dns.close();
  }
  // the same over Node's dgram (the fallback when koffi cannot poll)
  dns = new EmbeddedDns(names(), quiet, { udpBatch: false });
  await dns.attach('bench', `/run/netns/${C}`);
  try {
    await dnsperf('127.0.0.11', 100, 'udp', 1);
    line('loom (dgram)', 100, 'udp', await dnsperf('127.0.0.11', 100, 'udp'));
  } finally {
    await dns.close();
  }

  if (!AARDVARK) {
    console.log('aardvark-dns not installed (apt-get install aardvark-dns): no comparison');
    return;
  }
  // aardvark-dns scopes answers by the asker's source address, so the container gets an address on a
  // veth to the "host" namespace, where aardvark-dns listens on the gateway address.
  sh('ip', 'netns', 'add', H); made.push(H);
  sh('ip', '-n', H, 'link', 'set', 'lo', 'up');
  sh('ip', '-n', H, 'link', 'add', VETH, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', C);
  sh('ip', '-n', H, 'addr', 'add', '198.51.100.1/24', 'dev', VETH);
  sh('ip', '-n', C, 'addr', 'add', '198.51.100.2/24', 'dev', 'eth0');
  sh('ip', '-n', H, 'link', 'set', VETH, 'up');
  sh('ip', '-n', C, 'link', 'set', 'eth0', 'up');
  const cfg = path.join(tmp, 'aardvark');
  fs.mkdirSync(cfg);
  // network file: listen address(es), then "id ipv4s ipv6s names" per container
  fs.writeFileSync(path.join(cfg, 'benchnet'), ['198.51.100.1', `${'b'.repeat(64)} 198.51.100.2  client`,
    ...Array.from({ length: NAMES }, (_, i) => `${i.toString(16).padStart(64, '0')} ${addrOf(i)}  c${i}`)].join('\n') + '\n');
  sh('ip', 'netns', 'exec', H, AARDVARK, '--config', cfg, '-p', '53', 'run'); // daemonizes; writes aardvark.pid
  for (let i = 0; i < 50 && !fs.existsSync(path.join(cfg, 'aardvark.pid')); i++) await new Promise((r) => setTimeout(r, 100));
  aardvarkPid = Number(fs.readFileSync(path.join(cfg, 'aardvark.pid'), 'utf8').trim());
  const version = execFileSync(AARDVARK, ['--version'], { encoding: 'utf8' }).trim();
  await dnsperf('198.51.100.1', 100, 'udp', 1);
  for (const q of [10, 100]) line(version.replace(/^aardvark-dns /, 'aardvark ').slice(0, 14), q, 'udp', await dnsperf('198.51.100.1', q, 'udp'));
}

try {
  await main();
} finally {
  cleanup();
}
