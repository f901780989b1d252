// The daemon: wires the store, firewall, networks, images and containers, restores state after a restart,
// and serves the Docker Engine API on a unix socket.
import { settleBrNetfilter, type BrNetfilterMode } from './drivers/brnetfilter.ts';
import { OvsDriver, OvsSwitch } from './drivers/ovs.ts';
import fs from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';
import koffi from 'koffi';
import os from 'node:os';
import path from 'node:path';
import type http from 'node:http';
import { Store } from './store/sqlite.ts';
import { Events } from './core/events.ts';
import { Images, imageUsers } from './core/images.ts';
import { Networks } from './core/networks.ts';
import { Containers } from './core/containers.ts';
import { Volumes } from './volumes/volumes.ts';
import { MacvlanDriver } from './drivers/macvlan.ts';
import { IpvlanDriver } from './drivers/ipvlan.ts';
import { RemoteDriver } from './drivers/remote.ts';
import { RemoteIpam } from './plugins/ipam.ts';
import { Plugins } from './plugins/registry.ts';
import { DEFAULT_PLUGIN_DIRS } from './plugins/discovery.ts';
import { OverlayDriver } from './drivers/overlay.ts';
import { startTraceExchange, stopTraceExchange } from './trace/remote.ts';
import { Cluster, parseClusterFlags } from './core/cluster.ts';
// store/etcd.ts (the etcd3 client, gRPC, http2) is loaded only with --cluster-store: ~10 MiB of a daemon's
// idle RSS that a daemon without a cluster never uses
type EtcdModule = typeof import('./store/etcd.ts');
import { cniOf } from './cni/attachments.ts';
import { NetworkPluginServer } from './netplugin/server.ts';
import { Nft } from './firewall/nft.ts';
import { Firewall } from './firewall/firewall.ts';
import { NfnlSocket } from './firewall/nfnl.ts';
import { FirewallWatch } from './firewall/watch.ts';
import { createApiServer, type ApiTls } from './api/server.ts';
import { EmbeddedDns } from './dns/resolver.ts';
import { raiseOpenFileLimit } from './kernel/rlimit.ts';
import { createLogger, type Logger } from './util/log.ts';
import { secureSocket } from './api/socketperm.ts';
import { newId } from './core/names.ts';
import type { PoolSpec } from './ipam/ipam.ts';
import { messageOf } from './util/errors.ts';
import { RegistryService } from './images/registry/service.ts';

export interface DaemonOptions {
  dataRoot: string;
  execRoot: string;
  socket: string;
  /** --log-opt: json-file options every container gets unless it sets them (max-size, max-file) */
  logOpts?: Record<string, string>;
  /** -H tcp://ADDR:PORT listeners (besides the unix socket), with dockerd's TLS flags */
  tcpHosts?: { host: string; port: number }[];
  tls?: { verify: boolean; ca?: string; cert?: string; key?: string; enabled: boolean };
  /** -G/--group: the group that may use the socket (default `loom`) */
  socketGroup?: string;
  bip?: string;
  icc: boolean;
  ipMasq: boolean;
  logLevel: string;
  pools: PoolSpec[];
  netnsDir: string;
  netnsPrefix: string;
  bridgeName: string;
  resolvConf: string;
  hostsFile: string;
  cgroupParent?: string;
  /** where legacy plugins are found (unix sockets NAME.sock, spec files NAME.spec / NAME.json) */
  pluginDirs?: string[];
  /** --ovs: 'managed' or 'unix:PATH' (src/drivers/ovs.ts); unset, -d openvswitch is refused naming it */
  ovs?: string;
  /** dockerd's --cluster-store (etcd://HOST:PORT), --cluster-advertise (IP[:port] or interface[:port]), --cluster-store-opt */
  clusterStore?: string;
  clusterAdvertise?: string;
  clusterStoreOpts?: string[];
  /** serve loom as a Docker network plugin (legacy protocol) on this unix socket, e.g. /run/docker/plugins/loom.sock */
  networkPluginSocket?: string;
  /** the dockerd whose plugin loom is (unix:///PATH): asked for its containers' names, for loom's DNS */
  networkPluginDockerHost?: string;
  /** dockerd's --insecure-registry (HOST[:PORT] or CIDR, repeatable) */
  insecureRegistries?: string[];
  /** Docker's certs.d layout for registry CAs and client certificates (default /etc/loom/certs.d) */
  certsDir?: string;
  /** --ui ADDR:PORT: serve the topology page there (src/ui); nothing is opened without it */
  ui?: string;
  /** --br-netfilter: whether bridged frames go through the IP hooks namespace-wide (src/drivers/brnetfilter.ts) */
  brNetfilter?: BrNetfilterMode;
}

export class Daemon {
  readonly opts: DaemonOptions;
  readonly log: Logger;
  readonly store: Store;
  readonly events = new Events();
  readonly firewall: Firewall;
  readonly images: Images;
  readonly networks: Networks;
  readonly containers: Containers;
  readonly volumes: Volumes;
  readonly registry: RegistryService;
  /** overlay networks' shared state, with --cluster-store */
  readonly cluster?: Cluster;
  /** loom serving dockerd as its network plugin (--network-plugin-socket) */
  networkPlugin?: NetworkPluginServer;
  readonly id: string;
  private server?: http.Server;
  private ui?: http.Server;
  private fwWatch?: FirewallWatch;

  private constructor(opts: DaemonOptions, log: Logger, etcd: EtcdModule | undefined) {
    this.opts = opts;
    this.log = log;
    this.store = new Store(opts.dataRoot);
    let id = this.store.getMeta('daemon-id');
    if (!id) {
      id = newId();
      this.store.setMeta('daemon-id', id);
    }
    this.id = id;
    this.firewall = new Firewall(new Nft(), new NfnlSocket());
    this.firewall.onWarning = (m) => log.warn({}, m);
    this.firewall.coexist = true;
    this.images = new Images(this.store, opts.dataRoot);
    this.registry = new RegistryService({ insecure: opts.insecureRegistries, certsDir: opts.certsDir, hostsFile: opts.hostsFile, resolvConf: opts.resolvConf });
    this.networks = new Networks(this.store, this.firewall, log, {
      bip: opts.bip, defaultBridgeName: opts.bridgeName, pools: opts.pools, icc: opts.icc, ipMasq: opts.ipMasq, daemonId: id,
    });
    // underlay drivers: ports of a host interface inside the container namespaces
    this.networks.register(new MacvlanDriver(log.child({ driver: 'macvlan' })));
    this.networks.register(new IpvlanDriver(log.child({ driver: 'ipvlan' })));
    // an uplink that carries the only route to the cluster store is refused (src/drivers/uplink.ts)
    this.networks.driver.uplinks.clusterStore = opts.clusterStore;
    const ovsSpec = opts.ovs;
    const ovsLog = log.child({ driver: 'openvswitch' });
    const cl = parseClusterFlags(opts.clusterStore, opts.clusterAdvertise, opts.clusterStoreOpts ?? []);
    const ovs = new OvsDriver(ovsLog, { icc: opts.icc, ipMasq: opts.ipMasq }, ovsSpec ? () => OvsSwitch.open(ovsSpec, path.join(opts.execRoot, 'ovs'), ovsLog) : null, cl?.advertise);
    this.networks.register(ovs);
    // legacy plugins: remote network drivers (-d NAME) and remote IPAM (--ipam-driver NAME)
    const plugins = new Plugins(opts.pluginDirs ?? DEFAULT_PLUGIN_DIRS, log.child({ component: 'plugins' }));
    this.networks.pluginDriver = async (name) => RemoteDriver.load(name, (await plugins.get(name, 'NetworkDriver')).client, log.child({ driver: name }));
    const ipams = new Map<string, RemoteIpam>();
    this.networks.pluginIpam = async (name) => {
      const client = (await plugins.get(name, 'IpamDriver')).client;
      let ipam = ipams.get(name);
      if (!ipam) ipams.set(name, (ipam = new RemoteIpam(name, client)));
      return ipam;
    };
    this.containers = new Containers(this.store, this.networks, this.images, this.events, this.firewall, log, {
      dataRoot: opts.dataRoot, execRoot: opts.execRoot, netnsDir: opts.netnsDir, netnsPrefix: opts.netnsPrefix,
      resolvConf: opts.resolvConf, hostsFile: opts.hostsFile, cgroupParent: opts.cgroupParent,
    });
    this.volumes = new Volumes(this.store, opts.dataRoot);
    this.containers.useVolumes(this.volumes);
    // One resolver for every container on a user-defined network; it answers from the controller's names.
    this.containers.dns = new EmbeddedDns(this.containers.dnsNames, log.child({ component: 'dns' }));
    // overlay: the driver always (without a cluster store `-d overlay` gets Docker's refusal), the cluster with one
    const overlay = new OverlayDriver(log.child({ driver: 'overlay' }), { sandboxDir: path.join(opts.execRoot, 'netns'), advertise: cl?.advertise });
    this.networks.register(overlay);
    if (cl) {
      if (!etcd) throw new Error('internal error: the etcd client was not loaded');
      this.cluster = new Cluster(new etcd.EtcdClusterStore(opts.clusterStore!, cl.connection), { hostId: id, ...cl, log: log.child({ component: 'cluster' }) });
      // remote endpoints of a global network go to its driver: overlay, or openvswitch
      const byNet = (id: string) => (this.networks.list().find((n) => n.id === id)?.driver === 'openvswitch' ? ovs : overlay);
      this.cluster.attach(this.networks, { addPeer: (id, p) => byNet(id).addPeer(id, p), removePeer: (id, ip) => byNet(id).removePeer(id, ip) }, this.containers.dnsNames);
      this.networks.cluster = this.cluster;
      this.containers.dnsNames.onAdd = (e, netName) => this.cluster!.updateNames(e, netName);
    }
  }

  static async start(opts: DaemonOptions): Promise<Daemon> {
    const log = createLogger(opts.logLevel);
    fs.mkdirSync(opts.dataRoot, { recursive: true, mode: 0o710 });
    fs.mkdirSync(opts.execRoot, { recursive: true, mode: 0o700 });
    takePidFile(path.join(opts.execRoot, 'loom.pid'));
    const nofile = raiseOpenFileLimit();
    const d = new Daemon(opts, log, opts.clusterStore ? await import('./store/etcd.ts') : undefined);
    const t0 = Date.now();
    // the cluster's networks first: init() then brings their kernel side back with the rest
    await d.cluster?.start();
    await d.networks.init();
    // after the networks' bridges exist: the ones that are not loom's decide `auto`
    const brnf = await settleBrNetfilter(opts.brNetfilter ?? 'auto', d.networks.list().flatMap((n) => (n.bridge ? [n.bridge] : [])), log);
    log.info({ brNetfilter: brnf.state, why: brnf.reason }, 'bridged traffic and the IP hooks');
    // images before containers: a legacy data root's images become layered ones, which containers follow
    await d.images.init((err, id) => log.error({ image: id, err }, 'image of an older data root not migrated'));
    // an image removed with -f while a stopped container used it goes with that container
    d.events.subscribe((e) => {
      if (e.Type === 'container' && e.Action === 'destroy') d.images.collectDeleted(imageUsers(d.containers.list()));
    });
    // The whole table first (networks only), so exits handled during restore find a consistent ruleset,
    // then again with the port and link elements of the containers that are still running.
    d.firewall.reconcile({ networks: d.networks.firewallState(), ports: [], links: [] });
    // CNI attachments are endpoints of no container: registered before restore so it keeps their addresses
    const cni = cniOf(d);
    await d.containers.restore();
    await cni.init();
    // this host's overlay endpoints, written again under this run's lease
    await d.cluster?.reconcile(d.containers.list().flatMap((c) => Object.values(c.endpoints)));
    // traces across overlay networks: other hosts' requests come through the cluster store
    if (d.cluster) startTraceExchange(d);
    d.firewall.reconcile({ networks: d.networks.firewallState(), ...d.containers.firewallElements() });
    d.watchFirewall();
    d.trimWhenQuiet();
    if (opts.networkPluginSocket) {
      d.networkPlugin = new NetworkPluginServer(d, opts.networkPluginSocket, opts.networkPluginDockerHost);
      await d.networkPlugin.listen();
    }
    await d.listen();
    await d.listenTcp();
    if (opts.ui) d.ui = await (await import('./ui/server.ts')).startUi(d, opts.ui);
    log.info({ socket: opts.socket, ms: Date.now() - t0, containers: d.containers.list().length, nofile }, 'loom daemon ready');
    return d;
  }

  private readonly tcpServers: http.Server[] = [];

  /**
   * -H tcp://: as dockerd, TLS with --tls (server cert) or --tlsverify (and client certs signed by
   * --tlscacert); plain TCP only when TLS is explicitly turned off (--tls=false), with a loud warning:
   * anyone who reaches the port is root on this machine.
   */
  private async listenTcp(): Promise<void> {
    for (const h of this.opts.tcpHosts ?? []) {
      const t = this.opts.tls;
      let tls: ApiTls | undefined;
      if (t?.enabled || t?.verify) {
        const read = (what: string, p: string | undefined) => {
          if (!p) throw new Error(`-H tcp://${h.host}:${h.port} with TLS needs --${what}`);
          try {
            return fs.readFileSync(p);
          } catch (e) {
            throw new Error(`could not read --${what} ${p}: ${messageOf(e)}`);
          }
        };
        tls = { key: read('tlskey', t.key), cert: read('tlscert', t.cert), ca: t.verify ? read('tlscacert', t.ca) : undefined, verify: !!t.verify };
      } else {
        this.log.warn({ host: h.host, port: h.port }, `API listening on tcp://${h.host}:${h.port} WITHOUT TLS: anyone who can reach it has root access to this machine. Use --tlsverify.`);
      }
      const srv = createApiServer(this, tls);
      await new Promise<void>((resolve, reject) => {
        srv.once('error', (e) => reject(new Error(`cannot listen on tcp://${h.host}:${h.port}: ${messageOf(e)}`)));
        srv.listen(h.port, h.host, () => resolve());
      });
      this.tcpServers.push(srv);
      this.log.info({ host: h.host, port: h.port, tls: tls ? (tls.verify ? 'verify' : 'server') : 'none' }, 'API listening on TCP');
    }
  }

  private listen(): Promise<void> {
    const sock = this.opts.socket;
    fs.mkdirSync(path.dirname(sock), { recursive: true });
    // the default socket lives in the exec root (0700): the socket's group must be able to reach it, so
    // the directory lets others through (0711) without letting them list it
    if (path.resolve(path.dirname(sock)) === path.resolve(this.opts.execRoot)) fs.chmodSync(this.opts.execRoot, 0o711);
    try {
      fs.unlinkSync(sock);
    } catch { /* absent */ }
    this.server = createApiServer(this);
    return new Promise((resolve, reject) => {
      this.server!.once('error', reject);
      // bind() makes the socket file with the umask's mode: nobody but root may connect before its
      // group and mode are set (node binds a pipe within listen(), so the umask is ours only for a moment)
      const umask = process.umask(0o177);
      try {
        this.server!.listen(sock, () => {
          try {
            secureSocket(sock, this.opts.socketGroup, this.log);
            resolve();
          } catch (e) {
            reject(e);
          }
        });
      } finally {
        process.umask(umask);
      }
    });
  }

  private trimTimer?: NodeJS.Timeout;

  /**
   * Memory back after a burst: 2 s after the last event (a container, network or volume operation; an
   * image pull) the daemon runs a full garbage collection and glibc's malloc_trim, so that what 1,000
   * endpoints took is given back once they are gone instead of staying in V8's grown heap and malloc's
   * free lists (bench/suites/footprint.ts: "all removed again").
   */
  private trimWhenQuiet(): void {
    this.events.subscribe(() => {
      if (this.trimTimer) this.trimTimer.refresh();
      else this.trimTimer = setTimeout(() => { this.trimTimer = undefined; trimMemory(); }, 2000).unref();
    });
  }

  /** Puts loom's tables back whenever another program changes them (see firewall/watch.ts). */
  private watchFirewall(): void {
    this.fwWatch = new FirewallWatch({
      heal: () => this.firewall.reconcile(this.firewall.state()),
      log: this.log.child({ component: 'firewall-watch' }),
      onHeal: ({ by }) => this.events.publish('daemon', 'firewall-restore', this.id, { name: os.hostname(), changedBy: by }),
    });
    try {
      this.fwWatch.start();
    } catch (e) {
      this.log.warn({ err: messageOf(e) }, 'cannot watch nftables changes: loom tables will not heal themselves');
    }
  }

  /** Stops serving. Containers keep running (they are adopted again at the next start). */
  async close(): Promise<void> {
    if (this.trimTimer) clearTimeout(this.trimTimer);
    for (const s of this.tcpServers) s.close();
    this.fwWatch?.close();
    this.ui?.closeAllConnections();
    this.ui?.close();
    await this.networkPlugin?.close();
    await cniOf(this).settle(); // CNI DELs still unplugging finish (else the next start does)
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    await this.containers.dns?.close();
    this.registry.close();
    await stopTraceExchange(this);
    await this.cluster?.close().catch(() => {});
    this.networks.close();
    this.store.close();
    try {
      fs.unlinkSync(path.join(this.opts.execRoot, 'loom.pid'));
    } catch { /* gone */ }
  }
}

/** One daemon per exec root: a live pid in the file means another daemon owns this state. */
function takePidFile(p: string): void {
  try {
    const pid = Number(fs.readFileSync(p, 'utf8').trim());
    if (pid && pid !== process.pid) {
      try {
        process.kill(pid, 0);
        // a zombie (killed, not yet reaped by whoever started it) holds nothing
        if (/^\d+ \(.*\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))) throw Object.assign(new Error('zombie'), { code: 'ESRCH' });
        throw new Error(`another loom daemon (pid ${pid}) is running with this exec root (${p})`);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
      }
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  fs.writeFileSync(p, String(process.pid));
}

export async function runDaemon(opts: DaemonOptions): Promise<void> {
  let d: Daemon;
  try {
    d = await Daemon.start(opts);
  } catch (e) {
    process.stderr.write(`loom daemon: ${messageOf(e)}\n`);
    process.exit(1);
  }
  const stop = async (sig: string) => {
    d.log.info({ signal: sig }, 'shutting down (containers keep running)');
    await d.close().catch(() => {});
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  // A stray rejection in some background task is a bug to log, never a reason to take every API user's
  // daemon down (containers survive it, but their clients would not).
  process.on('unhandledRejection', (e) => d.log.error({ err: messageOf(e), stack: (e as Error)?.stack }, 'unhandled rejection'));
  // Likewise an 'error' event nobody listened for (a stream of some pull or load): logged, not fatal. The
  // operation it belonged to has its own rollback; the rest of the daemon's state is unaffected.
  process.on('uncaughtException', (e) => d.log.error({ err: messageOf(e), stack: (e as Error)?.stack }, 'uncaught exception'));
}

let gcNow: (() => void) | undefined;
let mallocTrim: ((pad: number) => number) | undefined;

/**
 * A full V8 collection (gc() from a context made after --expose-gc, as v8.setFlagsFromString allows at
 * run time), then malloc_trim(0): freed C heap (SQLite, netlink and nftables buffers) back to the kernel.
 */
export function trimMemory(): void {
  try {
    if (!gcNow) {
      v8.setFlagsFromString('--expose-gc');
      gcNow = vm.runInNewContext('gc') as () => void;
    }
    gcNow();
    mallocTrim ??= koffi.load('libc.so.6').func('int malloc_trim(size_t pad)') as (pad: number) => number;
    mallocTrim(0);
  } catch { /* best effort: memory stays with the process */ }
}
