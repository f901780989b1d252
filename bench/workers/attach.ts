// Attach/detach of one container's networking, N times in a row on one network, by one system. Runs
// inside a sandbox "host" namespace (started there by bench/run with `nsenter --net`), so everything it
// creates lives in that namespace or in container namespaces named with the run's prefix.
//
//   node bench/workers/attach.ts CONFIG.json      (writes its result to config.out)
//
// Systems (config.mode):
//   loom     the daemon's own code in process: Daemon.start() with runc replaced by a stub, then
//            Containers.start() / stop() per container. That is the whole attach path of `loom run`
//            except runc: netns, endpoint (IPAM in SQLite, veth, address, route), NAT and published
//            ports (one nftables transaction), held host ports, etc files, DNS registration and the
//            resolver's socket in the container namespace.
//   kernel   loom's kernel layer alone (what bench/kernel-attach.ts measured): createNetns, veth with its
//            peer born in the container namespace, configureInterface; no controller, firewall or DNS.
//   ipbatch  the kernel floor through iproute2: one `ip -batch` per side (host: netns + veth + master;
//            container: lo, address, up, route), detach one `ip -batch` (link del + netns del).
//   netavark `netavark setup/teardown NSPATH` with podman's JSON on stdin (podman creates the namespace
//            in process first; so does this worker, with loom's createNetns), optionally with
//            dns_enabled (netavark starts aardvark-dns and updates its config per container) and a port.
//   cni      the CNI plugins as libcni chains them: bridge (with host-local IPAM) then portmap, each
//            with CNI_COMMAND and its config (plus prevResult) on stdin; DEL in reverse order.
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { Session } from 'node:inspector/promises';
import { createNetns, deleteNetns } from '../../src/kernel/netns.ts';
import { Rtnl, configureInterface } from '../../src/kernel/rtnl.ts';

export interface AttachConfig {
  mode: 'loom' | 'kernel' | 'ipbatch' | 'netavark' | 'cni';
  n: number;
  /** publish one port per container (host port portBase+i → 80) */
  port: boolean;
  /** publish this many consecutive ports per container instead (host = container port, from rangeBase) */
  range?: number;
  /** DNS registration (loom: a user-defined network; netavark: dns_enabled + aardvark-dns) */
  dns: boolean;
  /** work directory of this run (private to the sandbox) */
  dir: string;
  /** container namespaces are /run/netns/<prefix><i> */
  prefix: string;
  /** result file */
  out: string;
  /** loom only: busybox rootfs tarball for the image the containers name */
  tar?: string;
  resolvConf?: string;
  hostsFile?: string;
  cgroupParent?: string;
  /** kernel mode: detach = delete the namespace only; the kernel destroys the veth pair with it, later */
  reap?: boolean;
  /** time limit of the attach phase (ms): stop attaching there and report what was measured */
  budgetMs?: number;
  /** time limit of the detach phase (ms): the containers not detached by then are left to the sweep (their
   * namespaces go with the sandbox) */
  detachBudgetMs?: number;
  /** --cpu-prof: profile the attach loop and the detach loop (separately) into this directory */
  profDir?: string;
}

export interface AttachResult {
  attach: number[];
  detach: number[];
  /** loom: daemon RSS (MiB) after start, with every endpoint attached, after they were all detached */
  rss?: { idle: number; peak: number; after: number; heapPeak: number };
  notes: string[];
  stoppedEarly?: boolean;
}

const SUBNET = '10.88.0.0/16';
const GATEWAY = '10.88.0.1';
const PORT_BASE = 10000;
const RANGE_BASE = 20000;
const hex = (i: number, n: number) => i.toString(16).padStart(n, '0');
const ipOf = (i: number) => `10.88.${(i + 2) >> 8}.${(i + 2) & 255}`;
const macOf = (i: number) => `02:42:0a:58:${hex((i + 2) >> 8, 2)}:${hex((i + 2) & 255, 2)}`;

function exec(argv: string[], input: string, env?: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env: env ?? process.env });
    const out: Buffer[] = [], err: Buffer[] = [];
    c.stdout.on('data', (d: Buffer) => out.push(d));
    c.stderr.on('data', (d: Buffer) => err.push(d));
    c.on('error', reject);
    c.on('close', (code) => {
      const o = Buffer.concat(out).toString();
      if (code === 0) resolve(o);
      else reject(new Error(`${path.basename(argv[0]!)} ${argv.slice(1).join(' ').slice(0, 200)}: exit ${code}: ${(Buffer.concat(err).toString() || o).trim().slice(0, 1500)}`));
    });
    c.stdin.on('error', () => {});
    c.stdin.end(input);
  });
}

interface System {
  setup(): Promise<void>;
  attach(i: number): Promise<void>;
  detach(i: number): Promise<void>;
  teardown(): Promise<void>;
  rss?: () => { rss: number; heap: number };
}

// ------------------------------------------------------------------ loom: the daemon's code in process

async function loomSystem(cfg: AttachConfig, notes: string[]): Promise<System> {
  const { Daemon } = await import('../../src/daemon.ts');
  const { DOCKER_DEFAULT_POOLS } = await import('../../src/ipam/ipam.ts');
  const { nowIso } = await import('../../src/core/names.ts');
  type Exit = import('../../src/runtime/runc.ts').ExitStatus;
  let d!: Awaited<ReturnType<typeof Daemon.start>>;
  const ids: string[] = [];
  let network = 'bridge';
  return {
    async setup() {
      d = await Daemon.start({
        dataRoot: path.join(cfg.dir, 'data'), execRoot: path.join(cfg.dir, 'run'), socket: path.join(cfg.dir, 'run', 'loom.sock'),
        icc: true, ipMasq: true, logLevel: 'warn', pools: DOCKER_DEFAULT_POOLS, netnsDir: '/run/netns', netnsPrefix: cfg.prefix,
        bridgeName: 'loom0', resolvConf: cfg.resolvConf!, hostsFile: cfg.hostsFile!, cgroupParent: cfg.cgroupParent,
      });
      // runc replaced: a "container" starts at once and exits when killed. Everything else is the daemon's.
      const r = d.containers.runc;
      const exits = new Map<string, (st: Exit) => void>();
      const waits = new Map<string, Promise<Exit>>();
      r.start = async (spec) => {
        waits.set(spec.id, new Promise<Exit>((res) => exits.set(spec.id, res)));
        return { pid: process.pid, startedAt: nowIso() };
      };
      r.waitExit = (id) => waits.get(id) ?? Promise.resolve({ exitCode: 0, finishedAt: nowIso(), oomKilled: false });
      r.kill = async (id) => {
        exits.get(id)?.({ exitCode: 137, finishedAt: nowIso(), oomKilled: false });
        exits.delete(id);
        waits.delete(id);
      };
      r.cleanup = async () => {};
      r.remove = async () => {};
      await d.images.import(fs.createReadStream(cfg.tar!), { repo: 'box' });
      if (cfg.dns) {
        await d.networks.create({ Name: 'benchnet', IPAM: { Config: [{ Subnet: SUBNET, Gateway: GATEWAY }] } });
        network = 'benchnet';
      }
      notes.push(`loom: ${cfg.dns ? 'user-defined network (embedded DNS: names registered, resolver socket per container)' : 'default bridge (no DNS)'}; runc stubbed`);
    },
    async attach(i) {
      const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
      // each container its own range (loom refuses a host port that is taken, as Docker does)
      if (cfg.range) for (let p = RANGE_BASE + i * cfg.range; p < RANGE_BASE + (i + 1) * cfg.range; p++) bindings[`${p}/tcp`] = [{ HostIp: '', HostPort: String(p) }];
      else if (cfg.port) bindings['80/tcp'] = [{ HostIp: '', HostPort: String(PORT_BASE + i) }];
      // create is not part of attach (no networking happens there); it is timed in the lifecycle benchmark
      const c = d.containers.create({ Image: 'box', Cmd: ['sleep', '600'], HostConfig: { NetworkMode: network, PortBindings: bindings } }, `c${i}`);
      ids[i] = c.id;
      const t0 = performance.now();
      await d.containers.start(c.id);
      lastMs = performance.now() - t0;
    },
    async detach(i) {
      const t0 = performance.now();
      await d.containers.stop(ids[i]!, 10);
      lastMs = performance.now() - t0;
      await d.containers.remove(ids[i]!, true);
    },
    async teardown() {
      await d.close();
    },
    rss: () => ({ rss: process.memoryUsage().rss / 2 ** 20, heap: process.memoryUsage().heapUsed / 2 ** 20 }),
  };
}

/** For systems whose attach includes untimed preparation, the timed part is reported through this. */
let lastMs: number | undefined;

// ------------------------------------------------------------------ loom's kernel layer alone

async function kernelSystem(cfg: AttachConfig): Promise<System> {
  let rt!: Rtnl;
  let br = 0;
  const ns = (i: number) => `/run/netns/${cfg.prefix}${i}`;
  return {
    async setup() {
      rt = Rtnl.open();
      br = await rt.createBridge('loomkb0', { up: true });
      await rt.addAddress(br, `${GATEWAY}/16`, { nodad: true });
    },
    async attach(i) {
      createNetns(ns(i));
      await rt.createVeth({ name: `veth${hex(i, 7)}`, peerName: 'eth0', peerNetnsPath: ns(i), peerMac: macOf(i), master: br, up: true });
      await configureInterface(ns(i), { ifname: 'eth0', addresses: [`${ipOf(i)}/16`], gateway4: GATEWAY, loUp: true });
    },
    async detach(i) {
      if (!cfg.reap) await rt.deleteLink(`veth${hex(i, 7)}`);
      deleteNetns(ns(i));
    },
    async teardown() {
      // with reap: the kernel takes its time over the pairs; wait for it so the next system starts quiet
      for (let k = 0; k < 600 && cfg.reap && (await rt.listLinks()).length > 3; k++) await new Promise((r) => setTimeout(r, 50));
      await rt.deleteLink('loomkb0').catch(() => {});
      rt.close();
    },
  };
}

// ------------------------------------------------------------------ kernel floor: ip -batch per side

async function ipbatchSystem(cfg: AttachConfig): Promise<System> {
  const name = (i: number) => `${cfg.prefix}${i}`;
  return {
    async setup() {
      await exec(['ip', '-batch', '-'], `link add br-floor type bridge\naddr add ${GATEWAY}/16 dev br-floor\nlink set br-floor up\n`);
    },
    async attach(i) {
      await exec(['ip', '-batch', '-'], [
        `netns add ${name(i)}`,
        `link add veth${hex(i, 7)} type veth peer name eth0 address ${macOf(i)} netns ${name(i)}`,
        `link set veth${hex(i, 7)} master br-floor up`,
      ].join('\n') + '\n');
      await exec(['ip', '-n', name(i), '-batch', '-'], [
        'link set lo up', `addr add ${ipOf(i)}/16 dev eth0`, 'link set eth0 up', `route add default via ${GATEWAY}`,
      ].join('\n') + '\n');
    },
    async detach(i) {
      await exec(['ip', '-batch', '-'], `link del veth${hex(i, 7)}\nnetns del ${name(i)}\n`);
    },
    async teardown() {
      await exec(['ip', 'link', 'del', 'br-floor'], '').catch(() => {});
    },
  };
}

// ------------------------------------------------------------------ netavark, as podman drives it

export const NETAVARK = '/usr/lib/podman/netavark';
export const AARDVARK = '/usr/lib/podman/aardvark-dns';

export function netavarkOptions(i: number, o: { dns: boolean; port: boolean; range?: number; portBase?: number; containerPort?: number }): object {
  const id = hex(i, 64);
  const mappings = o.range
    ? [{ host_ip: '', container_port: RANGE_BASE + i * o.range, host_port: RANGE_BASE + i * o.range, range: o.range, protocol: 'tcp' }]
    : o.port ? [{ host_ip: '', container_port: o.containerPort ?? 80, host_port: (o.portBase ?? PORT_BASE) + i, range: 1, protocol: 'tcp' }] : undefined;
  return {
    container_id: id,
    container_name: `c${i}`,
    ...(mappings ? { port_mappings: mappings } : {}),
    networks: { benchnet: { interface_name: 'eth0', static_ips: [ipOf(i)], ...(o.dns ? { aliases: [id.slice(0, 12)] } : {}) } },
    network_info: {
      benchnet: {
        name: 'benchnet', id: 'b'.repeat(64), driver: 'bridge', network_interface: 'podman1',
        subnets: [{ subnet: SUBNET, gateway: GATEWAY }], ipv6_enabled: false, internal: false, dns_enabled: o.dns,
        ipam_options: { driver: 'host-local' },
      },
    },
  };
}

/** netavark's environment: iptables (1.4's default driver) and no D-Bus, so no firewalld of the real host. */
export function netavarkEnv(): NodeJS.ProcessEnv {
  return { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: '', RUST_LOG: 'error' };
}

export function netavarkArgv(dir: string, cmd: 'setup' | 'teardown', nsPath: string): string[] {
  return [NETAVARK, '--config', path.join(dir, 'netavark'), '--aardvark-binary', AARDVARK, cmd, nsPath];
}

async function netavarkSystem(cfg: AttachConfig): Promise<System> {
  const ns = (i: number) => `/run/netns/${cfg.prefix}${i}`;
  const env = netavarkEnv();
  return {
    async setup() {
      fs.mkdirSync(path.join(cfg.dir, 'netavark'), { recursive: true });
    },
    async attach(i) {
      createNetns(ns(i));
      await exec(netavarkArgv(cfg.dir, 'setup', ns(i)), JSON.stringify(netavarkOptions(i, cfg)), env);
    },
    async detach(i) {
      await exec(netavarkArgv(cfg.dir, 'teardown', ns(i)), JSON.stringify(netavarkOptions(i, cfg)), env);
      deleteNetns(ns(i));
    },
    async teardown() {},
  };
}

// ------------------------------------------------------------------ CNI plugins, chained as libcni does

export const CNI_PATH = '/usr/lib/cni';

export function cniConfigs(dir: string, i: number, o: { port: boolean; range?: number; portBase?: number; containerPort?: number }): object[] {
  const bridge = {
    type: 'bridge', bridge: 'cni0', isGateway: true, ipMasq: true, hairpinMode: true,
    ipam: { type: 'host-local', ranges: [[{ subnet: SUBNET, gateway: GATEWAY }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: path.join(dir, 'cni-ipam') },
  };
  const out: object[] = [bridge];
  if (o.port || o.range) {
    const portMappings = o.range
      ? Array.from({ length: o.range }, (_, k) => ({ hostPort: RANGE_BASE + i * o.range! + k, containerPort: RANGE_BASE + i * o.range! + k, protocol: 'tcp' }))
      : [{ hostPort: (o.portBase ?? PORT_BASE) + i, containerPort: o.containerPort ?? 80, protocol: 'tcp' }];
    out.push({ type: 'portmap', capabilities: { portMappings: true }, snat: true, runtimeConfig: { portMappings } });
  }
  return out;
}

/** ADD through the chain; returns the final result (the prevResult DEL gets). */
export async function cniAdd(dir: string, id: string, nsPath: string, plugins: object[]): Promise<unknown> {
  let prev: unknown;
  for (const p of plugins) {
    const conf = { cniVersion: '1.0.0', name: 'benchnet', ...p, ...(prev ? { prevResult: prev } : {}) };
    const type = (p as { type: string }).type;
    const out = await exec([path.join(CNI_PATH, type)], JSON.stringify(conf), cniEnv('ADD', id, nsPath));
    prev = JSON.parse(out);
  }
  return prev;
}

export async function cniDel(dir: string, id: string, nsPath: string, plugins: object[], prev: unknown): Promise<void> {
  for (const p of [...plugins].reverse()) {
    const conf = { cniVersion: '1.0.0', name: 'benchnet', ...p, ...(prev ? { prevResult: prev } : {}) };
    await exec([path.join(CNI_PATH, (p as { type: string }).type)], JSON.stringify(conf), cniEnv('DEL', id, nsPath));
  }
}

function cniEnv(cmd: string, id: string, nsPath: string): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, CNI_COMMAND: cmd, CNI_CONTAINERID: id, CNI_NETNS: nsPath, CNI_IFNAME: 'eth0', CNI_PATH };
}

async function cniSystem(cfg: AttachConfig): Promise<System> {
  const ns = (i: number) => `/run/netns/${cfg.prefix}${i}`;
  const results = new Map<number, unknown>();
  return {
    async setup() {},
    async attach(i) {
      createNetns(ns(i));
      results.set(i, await cniAdd(cfg.dir, hex(i, 64), ns(i), cniConfigs(cfg.dir, i, cfg)));
    },
    async detach(i) {
      await cniDel(cfg.dir, hex(i, 64), ns(i), cniConfigs(cfg.dir, i, cfg), results.get(i));
      results.delete(i);
      deleteNetns(ns(i));
    },
    async teardown() {},
  };
}

// ------------------------------------------------------------------ the run

/**
 * Runs fn under V8's sampling profiler (through the inspector, so that only this phase is in the profile,
 * not the daemon's start or module loading) and writes <dir>/<name>.cpuprofile.
 */
async function profiled<T>(dir: string | undefined, name: string, ops: () => number, fn: () => Promise<T>): Promise<T> {
  if (!dir) return fn();
  const s = new Session();
  s.connect();
  await s.post('Profiler.enable');
  await s.post('Profiler.setSamplingInterval', { interval: 500 });
  await s.post('Profiler.start');
  try {
    return await fn();
  } finally {
    const { profile } = await s.post('Profiler.stop');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, `${name}.cpuprofile`), JSON.stringify(profile));
    fs.writeFileSync(path.join(dir, `${name}.cpuprofile.ops`), String(ops()));
    s.disconnect();
  }
}

async function main(): Promise<void> {
  const cfg = JSON.parse(fs.readFileSync(process.argv[2]!, 'utf8')) as AttachConfig;
  const notes: string[] = [];
  const sys = cfg.mode === 'loom' ? await loomSystem(cfg, notes)
    : cfg.mode === 'kernel' ? await kernelSystem(cfg)
      : cfg.mode === 'ipbatch' ? await ipbatchSystem(cfg)
        : cfg.mode === 'netavark' ? await netavarkSystem(cfg)
          : await cniSystem(cfg);
  const res: AttachResult = { attach: [], detach: [], notes };
  await sys.setup();
  const t0 = performance.now();
  const idle = sys.rss?.();
  let attached = 0;
  try {
    await profiled(cfg.profDir, 'attach', () => res.attach.length, async () => {
      for (let i = 0; i < cfg.n; i++) {
        lastMs = undefined;
        const s = performance.now();
        await sys.attach(i);
        res.attach.push(lastMs ?? performance.now() - s);
        attached = i + 1;
        if (cfg.range) {
          // a range at a time: 10,000 held sockets each, and the fd limit may not allow several at once
          lastMs = undefined;
          const d = performance.now();
          await sys.detach(i);
          res.detach.push(lastMs ?? performance.now() - d);
          attached = 0;
          continue;
        }
        if (cfg.budgetMs && performance.now() - t0 > cfg.budgetMs) {
          res.stoppedEarly = true;
          notes.push(`${cfg.mode}: stopped after ${attached} of ${cfg.n} attaches (time budget of ${(cfg.budgetMs / 1000).toFixed(0)} s)`);
          break;
        }
      }
    });
    const peak = sys.rss?.();
    const d0 = performance.now();
    let detached = 0;
    await profiled(cfg.profDir, 'detach', () => res.detach.length, async () => {
      for (let i = 0; i < attached && !cfg.range; i++) {
        lastMs = undefined;
        const s = performance.now();
        await sys.detach(i);
        res.detach.push(lastMs ?? performance.now() - s);
        detached = i + 1;
        if (cfg.detachBudgetMs && detached < attached && performance.now() - d0 > cfg.detachBudgetMs) {
          res.stoppedEarly = true;
          notes.push(`${cfg.mode}: detached ${detached} of ${attached} (time budget of ${(cfg.detachBudgetMs / 1000).toFixed(0)} s); the rest went with the sandbox`);
          break;
        }
      }
    });
    // what is left (a detach budget ran out) is not measured: the sandbox's namespaces take it with them
    attached = 0;
    // the daemon gives memory back 2 s after the last operation (src/daemon.ts trimWhenQuiet): measured after that
    if (sys.rss) await new Promise((r) => setTimeout(r, 3000));
    const after = sys.rss?.();
    if (idle && peak && after && !res.stoppedEarly) res.rss = { idle: idle.rss, peak: peak.rss, after: after.rss, heapPeak: peak.heap };
  } finally {
    // whatever is still attached goes (best effort); bench/run's sweep removes what is left regardless
    for (let i = 0; i < attached; i++) await sys.detach(i).catch(() => {});
    await sys.teardown().catch(() => {});
  }
  fs.writeFileSync(cfg.out, JSON.stringify(res));
}

/** A worker's entry: exit 0 when `main` returns, 1 with its stack on stderr when it throws. */
export async function runWorker(name: string, main: () => Promise<void>): Promise<never> {
  try {
    await main();
    process.exit(0);
  } catch (e) {
    process.stderr.write(`${name} worker: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  }
}

if (import.meta.main) await runWorker('attach', main);
