// Networks: the records, their IPAM and their kernel side (through the driver). Containers call
// allocate/attach/detach/release; this module owns the order of kernel steps for one endpoint.
import crypto from 'node:crypto';
import { failpoint } from '../util/failpoint.ts';
import type { Store } from '../store/sqlite.ts';
import type { EndpointRecord, IpamConfig, NetworkRecord } from './types.ts';
import { BridgeDriver, OPT_BRIDGE_NAME } from '../drivers/bridge.ts';
import type { LeaveOptions, NetworkDriver } from '../drivers/driver.ts';
import { isUplinkNetwork, uplinkState } from '../drivers/uplink.ts';
import { OvsDriver } from '../drivers/ovs.ts';
import {
  allocate, cidrString, contains, DOCKER_DEFAULT_POOLS, exhausted, firstHost, isStrictIp, macFromIpv4, nextFreePool, overlaps,
  parseCidr, parseCidrStrict, parseIp, ulaPool, type Cidr, type PoolSpec,
  isNetworkOrBroadcast,
} from '../ipam/ipam.ts';
import { conflict, invalidParameter, LoomError, notFound, systemError } from '../util/errors.ts';
import { newId, nowIso, VALID_NAME, vethName } from './names.ts';
import type { Logger } from '../util/log.ts';
import type { Firewall } from '../firewall/firewall.ts';
import type { RemoteIpam } from '../plugins/ipam.ts';
import { noClusterStoreError, type Cluster } from './cluster.ts';
import { anyMatch } from '../util/filtermatch.ts';

export interface NetworkCreateSpec {
  Name: string;
  Driver?: string;
  Internal?: boolean;
  Attachable?: boolean;
  EnableIPv6?: boolean;
  IPAM?: { Driver?: string; Config?: IpamConfig[]; Options?: Record<string, string> };
  Options?: Record<string, string>;
  Labels?: Record<string, string>;
  CheckDuplicate?: boolean;
}

export interface NetworkOptions {
  bip?: string;
  defaultBridgeName: string;
  pools: PoolSpec[];
  icc: boolean;
  ipMasq: boolean;
  /** seeds the default IPv6 ULA pool (Docker derives it from its host id) */
  daemonId?: string;
}

const PREDEFINED = ['bridge', 'host', 'none'];
/** the local network of overlay containers' way out (Docker's name; its device is loom_gwbridge) */
export const GATEWAY_NETWORK = 'docker_gwbridge';
/** Names `network create` refuses (Docker's runconfig.IsPreDefinedNetwork): the predefined ones and `default`. */
const RESERVED = [...PREDEFINED, 'default'];

export class Networks {
  /** the bridge driver: also the host's routes and the sweep of leftover veths */
  readonly driver: BridgeDriver;
  /** every driver `network create -d` takes, by type ('host' and 'null' networks have no driver object) */
  private readonly drivers = new Map<string, NetworkDriver>();
  private readonly store: Store;
  private readonly log: Logger;
  private readonly fw: Firewall;
  private readonly opts: NetworkOptions;

  constructor(store: Store, fw: Firewall, log: Logger, opts: NetworkOptions) {
    this.store = store;
    this.fw = fw;
    this.log = log;
    this.opts = opts;
    this.driver = new BridgeDriver(log, { icc: opts.icc, ipMasq: opts.ipMasq });
    this.register(this.driver);
    store.onRollback(() => { this.cached = null; });
  }

  register(d: NetworkDriver): void {
    this.drivers.set(d.type, d);
  }

  /** The cluster store's side of overlay networks, when the daemon runs with --cluster-store (src/core/cluster.ts). */
  cluster?: Cluster;

  /** Network drivers for `info`'s Plugins.Network: the registered ones (plugins once used) and host, null. */
  driverNames(): string[] {
    return [...new Set([...this.drivers.keys(), 'host', 'null'])].sort();
  }

  /** Remote network drivers and IPAM by plugin name (set by the daemon); they throw `plugin "x" not found`. */
  pluginDriver?: (name: string) => Promise<NetworkDriver>;
  pluginIpam?: (name: string) => Promise<RemoteIpam>;

  /** A registered driver, else a plugin of that name (registered once found). */
  private async driverNamed(name: string): Promise<NetworkDriver> {
    const known = this.drivers.get(name);
    if (known) return known;
    if (!this.pluginDriver) throw notFound(`plugin "${name}" not found`);
    const d = await this.pluginDriver(name);
    this.register(d);
    return d;
  }

  /** driverOf, loading a plugin driver that was not there when the daemon started. */
  private async loadedDriverOf(net: NetworkRecord): Promise<NetworkDriver | null> {
    if (net.driver === 'host' || net.driver === 'null' || this.drivers.has(net.driver) || !this.pluginDriver) return this.driverOf(net);
    return this.driverNamed(net.driver);
  }

  private ipamOf(net: NetworkRecord): Promise<RemoteIpam> {
    if (!this.pluginIpam) throw notFound(`plugin "${net.ipam.driver}" not found`);
    return this.pluginIpam(net.ipam.driver);
  }

  /** The driver of a network with endpoints (bridge, macvlan, ...); null for host and none. */
  driverOf(net: NetworkRecord): NetworkDriver | null {
    if (net.driver === 'host' || net.driver === 'null') return null;
    const d = this.drivers.get(net.driver);
    if (!d) throw systemError(`network ${net.name}: driver ${net.driver} is not available`);
    return d;
  }

  /** Whether `-p` and --link apply on this network (bridge-like drivers). */
  publishes(net: NetworkRecord): boolean {
    // a bridged underlay's containers are machines of the segment: -p is ignored there, as on macvlan
    if (isUplinkNetwork(net)) return false;
    return this.driverOf(net)?.publishes ?? false;
  }

  close(): void {
    for (const d of this.drivers.values()) d.close();
  }

  /**
   * The parsed records, read again only after a write (lookups run a dozen times per attach; parsing the
   * table each time was a tenth of it). Callers get copies.
   */
  private cached: NetworkRecord[] | null = null;

  private records(): NetworkRecord[] {
    return (this.cached ??= this.store.all<NetworkRecord>('networks'));
  }

  private put(net: NetworkRecord): void {
    this.cached = null;
    this.store.put('networks', net);
  }

  list(): NetworkRecord[] {
    return this.records().map((n) => structuredClone(n));
  }

  /**
   * The cached record itself, not a copy, for callers that only read it: a container's start asks about
   * its networks a dozen times (default? internal? the gateway network?), and a copy each time was ~5% of
   * an attach's CPU in issue 14's profile. Never change what this returns.
   */
  peek(ref: string): Readonly<NetworkRecord> | undefined {
    return this.findCached(ref);
  }

  /** Docker's lookup order: full id, exact name, unique id prefix. */
  find(ref: string): NetworkRecord | undefined {
    const n = this.findCached(ref);
    return n && structuredClone(n);
  }

  private findCached(ref: string): NetworkRecord | undefined {
    const all = this.records();
    const byId = all.find((n) => n.id === ref);
    if (byId) return byId;
    const byName = all.find((n) => n.name === ref);
    if (byName) return byName;
    const pref = all.filter((n) => n.id.startsWith(ref));
    if (pref.length > 1) throw new LoomError(400, `network ${ref} is ambiguous (${pref.length} matches found based on ID prefix)`);
    return pref[0];
  }

  get(ref: string): NetworkRecord {
    const n = this.find(ref);
    if (!n) throw notFound(`network ${ref} not found`);
    return n;
  }

  /** Creates the predefined networks and brings the kernel side of every bridge network back. */
  async init(): Promise<void> {
    const existing = this.list();
    const now = nowIso();
    const mk = (name: string, driver: string): NetworkRecord => ({
      id: newId(), name, driver, scope: 'local', created: now, enableIPv6: false,
      ipam: { driver: 'default', options: {}, config: [] }, internal: false, attachable: false, options: {}, labels: {},
    });
    for (const [name, driver] of [['host', 'host'], ['none', 'null']] as const) {
      if (!existing.some((n) => n.name === name)) this.put(mk(name, driver));
    }
    let def = existing.find((n) => n.name === 'bridge');
    const wanted = await this.defaultBridgeConfig(def);
    if (!def || def.ipam.config[0]?.Subnet !== wanted.Subnet || def.ipam.config[0]?.Gateway !== wanted.Gateway || def.bridge !== this.opts.defaultBridgeName) {
      if (def) {
        // --bip or the bridge name changed since the last run: move the bridge (only sound with no endpoints on it).
        await this.driver.deleteNetwork(def).catch(() => {});
      }
      def = {
        ...mk('bridge', 'bridge'),
        ...(def ? { id: def.id, created: def.created } : {}),
        bridge: this.opts.defaultBridgeName,
        isDefault: true,
        ipam: { driver: 'default', options: {}, config: [wanted] },
        options: {
          'com.docker.network.bridge.default_bridge': 'true',
          'com.docker.network.bridge.enable_icc': String(this.opts.icc),
          'com.docker.network.bridge.enable_ip_masquerade': String(this.opts.ipMasq),
          'com.docker.network.bridge.host_binding_ipv4': '0.0.0.0',
          [OPT_BRIDGE_NAME]: this.opts.defaultBridgeName,
          'com.docker.network.driver.mtu': '1500',
        },
      };
      this.put(def);
    } else if (def.options['com.docker.network.bridge.enable_icc'] !== String(this.opts.icc) || def.options['com.docker.network.bridge.enable_ip_masquerade'] !== String(this.opts.ipMasq)) {
      // --icc / --ip-masq of this run apply to the default bridge (and `network inspect bridge` says so)
      def.options = { ...def.options, 'com.docker.network.bridge.enable_icc': String(this.opts.icc), 'com.docker.network.bridge.enable_ip_masquerade': String(this.opts.ipMasq) };
      this.put(def);
    }
    // networks whose creation a crash interrupted: their kernel side goes, they never existed
    for (const { key, value } of this.store.metaWithPrefix('creating-network:')) {
      const half = JSON.parse(value) as NetworkRecord;
      if (!this.find(half.id)) {
        const drv = this.drivers.get(half.driver);
        await drv?.deleteNetwork(half).catch((e) => this.log.warn({ network: half.name, err: String(e) }, 'removing a half-created network failed'));
        this.log.info({ network: half.name, id: half.id }, 'removed the kernel side of a network whose creation was interrupted');
      }
      this.store.deleteMeta(key);
    }
    const absent = new Set<string>(); // plugins that did not answer: asked once per start, not per network
    for (const n of this.list()) {
      if (n.driver !== 'host' && n.driver !== 'null' && !this.drivers.has(n.driver) && this.pluginDriver && !absent.has(n.driver)) {
        await this.driverNamed(n.driver).catch((e) => {
          absent.add(n.driver);
          this.log.warn({ network: n.name, err: String((e as Error).message) }, 'network plugin not available');
        });
      }
      const d = n.driver === 'host' || n.driver === 'null' ? null : this.drivers.get(n.driver);
      if (d) await d.ensureNetwork(n);
      else if (n.driver !== 'host' && n.driver !== 'null') this.log.warn({ network: n.name, driver: n.driver }, 'no driver for this network: it has no kernel side until the driver is back');
    }
  }

  private async defaultBridgeConfig(current: NetworkRecord | undefined): Promise<IpamConfig> {
    if (this.opts.bip) {
      const c = parseCidr(this.opts.bip);
      if (c.family !== 4) throw invalidParameter(`--bip must be an IPv4 CIDR: ${this.opts.bip}`);
      const gw = c.address === c.network ? firstHost(c) : c.address;
      return { Subnet: cidrString(c), Gateway: gw };
    }
    if (current?.ipam.config[0]) return current.ipam.config[0];
    // 172.17.0.0/16 unless the host already routes (part of) it: then the next free default pool.
    const used = (await this.driver.hostRoutes()).map((r) => parseCidr(r));
    const pick = nextFreePool(DOCKER_DEFAULT_POOLS, used.filter((u) => u.prefix > 0));
    if (!pick) throw systemError('no free address pool for the default bridge');
    return { Subnet: cidrString(pick), Gateway: firstHost(pick) };
  }

  firewallState() {
    return this.records().flatMap((n) => {
      const d = n.driver === 'host' || n.driver === 'null' ? undefined : this.drivers.get(n.driver);
      const v = d?.firewallView(n);
      return v ? [v] : [];
    });
  }

  // ---------------------------------------------------------------- create / remove

  /**
   * Creates and removals run one at a time: a create checks names and subnets against the networks that
   * exist, then awaits the kernel; a second create in that gap would pass the same checks.
   */
  private serial: Promise<unknown> = Promise.resolve();
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.serial.then(fn, fn);
    this.serial = run.catch(() => undefined);
    return run;
  }

  create(spec: NetworkCreateSpec): Promise<NetworkRecord> {
    return this.exclusive(() => this.createNow(spec));
  }

  private async createNow(spec: NetworkCreateSpec): Promise<NetworkRecord> {
    const name = spec.Name;
    if (!name) throw invalidParameter('network name is required');
    if (!VALID_NAME.test(name)) throw invalidParameter(`invalid network name "${name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    if (RESERVED.includes(name)) throw new LoomError(403, `operation is not permitted on predefined ${name} network `);
    if (this.list().some((n) => n.name === name)) throw conflict(`network with name ${name} already exists`);
    const driver = spec.Driver || 'bridge';
    const drv = await this.driverNamed(driver);
    // overlay networks, and openvswitch ones when the daemon has a cluster store (src/drivers/ovs.ts), are global
    if (driver === 'overlay' || (driver === 'openvswitch' && this.cluster)) return this.createGlobal(spec, drv);
    const ipamDriver = spec.IPAM?.Driver || 'default';
    const remoteIpam = ipamDriver === 'default' ? null : this.pluginIpam ? await this.pluginIpam(ipamDriver) : null;
    if (ipamDriver !== 'default' && !remoteIpam) throw notFound(`plugin "${ipamDriver}" not found`);

    await this.refreshHostRoutes();
    const { config: configs, auto, pools } = remoteIpam
      ? await remoteIpam.allocateNetwork(spec.IPAM?.Config ?? [], !!spec.EnableIPv6, spec.IPAM?.Options ?? {}, drv.scope)
      : { ...this.validateIpam(spec.IPAM?.Config ?? [], !!spec.EnableIPv6), pools: undefined };
    const id = newId();
    const options = { ...(spec.Options ?? {}) };
    const net: NetworkRecord = {
      id, name, driver, scope: drv.scope, created: nowIso(), enableIPv6: !!spec.EnableIPv6,
      ipam: { driver: ipamDriver, options: spec.IPAM?.Options ?? {}, config: configs },
      internal: !!spec.Internal, attachable: !!spec.Attachable, options, labels: spec.Labels ?? {},
      ...(auto.length ? { autoSubnets: auto } : {}),
      ...(pools ? { ipamPools: pools } : {}),
    };
    try {
      await this.createKernelSide(drv, net);
    } catch (e) {
      // a remote IPAM's pools go back to the plugin
      if (remoteIpam && pools) await remoteIpam.releaseNetwork(pools).catch((r) => this.log.warn({ network: name, err: String(r) }, 'releasing IPAM pools failed'));
      throw e;
    }
    return net;
  }

  private async createKernelSide(drv: NetworkDriver, net: NetworkRecord): Promise<void> {
    await drv.prepare(net, this.records());
    // An intent first: a daemon killed between the kernel side and the record finds it at its next start
    // and removes what was made (see init), so no bridge outlives a network that was never recorded.
    const intent = `creating-network:${net.id}`;
    this.store.setMeta(intent, JSON.stringify(net));
    try {
      await this.createKernelSideNow(drv, net);
    } finally {
      this.store.deleteMeta(intent);
    }
  }

  private async createKernelSideNow(drv: NetworkDriver, net: NetworkRecord): Promise<void> {
    await drv.ensureNetwork(net);
    const fwView = drv.firewallView(net);
    try {
      if (fwView) this.fw.apply({ addNetworks: [fwView] });
    } catch (e) {
      await drv.deleteNetwork(net).catch(() => {});
      throw e;
    }
    failpoint('network.create.kernel');
    try {
      this.put(net);
    } catch (e) {
      if (fwView) this.fw.apply({ removeNetworks: [fwView] });
      await drv.deleteNetwork(net).catch(() => {});
      throw e;
    }
  }

  private usedSubnets(): Cidr[] {
    return this.list().flatMap((n) => n.ipam.config.map((c) => parseCidr(c.Subnet)));
  }

  /**
   * Docker's checks of a network's IPAM config (api/types/network ValidateIPAM): every problem of every
   * subnet in one 400 "invalid network config" error; then overlaps with other networks (403, as the
   * default IPAM driver refuses them); then a subnet from the default pools for each family that has none
   * (IPv4 always, IPv6 with --ipv6), skipping pools that overlap networks or the host's routes.
   */
  private validateIpam(configs: IpamConfig[], ipv6: boolean): { config: IpamConfig[]; auto: string[] } {
    const errs: string[] = [];
    const good: { c: IpamConfig; sub: Cidr }[] = [];
    for (const c of configs) {
      const before = errs.length;
      const written = c.Subnet ?? '';
      const sub = parseCidrStrict(written);
      if (!sub) {
        errs.push(`invalid subnet ${written}: invalid CIDR block notation`);
        continue;
      }
      const fam = sub.family === 4 ? 'IPv4' : 'IPv6';
      const subText = `${sub.address}/${sub.prefix}`;
      if (sub.family === 6 && !ipv6) {
        errs.push(`invalid subnet ${written}: IPv6 has not been enabled for this network`);
        continue;
      }
      if (sub.address !== sub.network) errs.push(`invalid subnet ${subText}: it should be ${cidrString(sub)}`);
      if (c.IPRange) {
        const r = parseCidrStrict(c.IPRange);
        if (!r) errs.push(`invalid ip-range ${c.IPRange}: invalid CIDR block notation`);
        else if (r.family !== sub.family) errs.push(`invalid ip-range ${c.IPRange}: parent subnet is an ${fam} block`);
        else {
          if (r.prefix < sub.prefix) errs.push(`invalid ip-range ${c.IPRange}: CIDR block is bigger than its parent subnet ${subText}`);
          if (r.address !== r.network) errs.push(`invalid ip-range ${r.address}/${r.prefix}: it should be ${cidrString(r)}`);
          if (!overlaps(r, sub)) errs.push(`invalid ip-range ${c.IPRange}: parent subnet ${subText} doesn't contain ip-range`);
        }
      }
      const addrErr = (a: string): string | null => {
        if (!isStrictIp(a)) return 'invalid address';
        if ((a.includes(':') ? 6 : 4) !== sub.family) return `parent subnet is an ${fam} block`;
        if (!contains(sub, a)) return `parent subnet ${subText} doesn't contain this address`;
        return null;
      };
      if (c.Gateway) {
        const e = addrErr(c.Gateway);
        if (e) errs.push(`invalid gateway ${c.Gateway}: ${e}`);
      }
      for (const [k, v] of Object.entries(c.AuxiliaryAddresses ?? {})) {
        const e = addrErr(v);
        if (e) errs.push(`invalid auxiliary address ${k}: ${e}`);
      }
      if (errs.length === before) good.push({ c, sub });
    }
    if (errs.length) throw invalidParameter(`invalid network config:\n${errs.length === 1 ? errs[0] : `* ${errs.join('\n* ')}`}`);
    // Docker's IPAM holds the network and broadcast addresses: asking for them is ErrIPAlreadyAllocated (403)
    for (const { c, sub } of good) {
      if (c.Gateway && isNetworkOrBroadcast(sub, c.Gateway)) throw new LoomError(403, `failed to allocate gateway (${c.Gateway}): Address already in use`);
      for (const [k, v] of Object.entries(c.AuxiliaryAddresses ?? {})) {
        if (isNetworkOrBroadcast(sub, v)) throw new LoomError(403, `failed to allocate secondary ip address (${k}:${v}): Address already in use`);
      }
    }

    const used = this.usedSubnets();
    const out: IpamConfig[] = [];
    for (const { c, sub } of good) {
      if (used.some((u) => overlaps(u, sub))) throw new LoomError(403, 'invalid pool request: Pool overlaps with other one on this address space');
      used.push(sub);
      const aux = c.AuxiliaryAddresses ?? {};
      out.push({
        Subnet: cidrString(sub),
        ...(c.IPRange ? { IPRange: cidrString(parseCidr(c.IPRange)) } : {}),
        Gateway: c.Gateway ? parseIp(c.Gateway).text : firstHost(sub),
        ...(Object.keys(aux).length ? { AuxiliaryAddresses: Object.fromEntries(Object.entries(aux).map(([k, v]) => [k, parseIp(v).text])) } : {}),
      });
    }
    const auto: string[] = [];
    const fromPools = (pools: PoolSpec[], avoid: Cidr[]) => {
      const pick = nextFreePool(pools, avoid);
      if (!pick) throw new LoomError(403, 'all predefined address pools have been fully subnetted');
      used.push(pick);
      auto.push(cidrString(pick));
      out.push({ Subnet: cidrString(pick), Gateway: firstHost(pick) });
    };
    if (!out.some((c) => !c.Subnet.includes(':'))) {
      // pools of one family given to the daemon do not take away the defaults of the other
      const v4 = this.opts.pools.filter((p) => !p.base.includes(':'));
      fromPools(v4.length ? v4 : DOCKER_DEFAULT_POOLS, [...used, ...this.hostRoutesCache]);
    }
    if (ipv6 && !out.some((c) => c.Subnet.includes(':'))) {
      const v6 = this.opts.pools.filter((p) => p.base.includes(':'));
      fromPools(v6.length ? v6 : [ulaPool(this.opts.daemonId ?? 'loom')], used);
    }
    // Docker lists the IPv4 configs first
    out.sort((a, b) => Number(a.Subnet.includes(':')) - Number(b.Subnet.includes(':')));
    return { config: out, auto };
  }

  /** Host routes, refreshed before each create (pools that overlap them are skipped). */
  private hostRoutesCache: Cidr[] = [];
  async refreshHostRoutes(): Promise<void> {
    this.hostRoutesCache = (await this.driver.hostRoutes()).map((r) => parseCidr(r)).filter((c) => c.prefix > 0)
      .filter((c) => !this.list().some((n) => n.ipam.config.some((k) => cidrString(parseCidr(k.Subnet)) === cidrString(c))));
  }

  /** Removes a network; refused (403) for the predefined ones and while endpoints (running containers) are on it. */
  remove(net: NetworkRecord, attached: { name: string; endpointId: string }[]): Promise<void> {
    return this.exclusive(() => this.removeNow(net, attached));
  }

  private async removeNow(net: NetworkRecord, attached: { name: string; endpointId: string }[]): Promise<void> {
    if (PREDEFINED.includes(net.name)) throw new LoomError(403, `${net.name} is a pre-defined network and cannot be removed`);
    if (attached.length) {
      const eps = [...attached].sort((a, b) => a.name.localeCompare(b.name)).map((a) => `name:"${a.name}" id:"${a.endpointId.slice(0, 12)}"`);
      throw new LoomError(403, `error while removing network: network ${net.name} has active endpoints (${eps.join(', ')})`);
    }
    // other hosts' endpoints count too (refused there, before anything here changes)
    if (inCluster(net) && this.cluster) await this.cluster.removeNetwork(net);
    const drv = await this.loadedDriverOf(net);
    const fwView = drv?.firewallView(net);
    if (fwView) this.fw.apply({ removeNetworks: [fwView] });
    await drv?.deleteNetwork(net);
    failpoint('network.rm.kernel');
    if (net.ipamPools?.length) await (await this.ipamOf(net)).releaseNetwork(net.ipamPools).catch((e) => this.log.warn({ network: net.name, err: String(e) }, 'releasing IPAM pools failed'));
    this.cached = null;
    this.store.delete('networks', net.id);
  }

  // ---------------------------------------------------------------- global networks (overlay)

  /**
   * An overlay network: its record, subnet and VNI are written to the cluster store (one transaction,
   * checked against every host's networks), then this host's copy is kept like a local network's.
   */
  private async createGlobal(spec: NetworkCreateSpec, drv: NetworkDriver): Promise<NetworkRecord> {
    const given = spec.IPAM?.Config ?? [];
    if (!this.cluster) throw noClusterStoreError(given[0]);
    if ((spec.IPAM?.Driver || 'default') !== 'default') throw invalidParameter(`overlay networks take the default IPAM driver, not ${spec.IPAM!.Driver}`);
    await this.refreshHostRoutes();
    // the subnets given, checked as a local network's; a missing IPv4 one comes from the cluster's pool (not this host's)
    const checked = given.length ? this.validateIpam(given, !!spec.EnableIPv6) : { config: [], auto: [] };
    const net: NetworkRecord = {
      id: newId(), name: spec.Name, driver: drv.type, scope: 'global', created: nowIso(), enableIPv6: !!spec.EnableIPv6,
      ipam: { driver: 'default', options: spec.IPAM?.Options ?? {}, config: checked.config.filter((c) => !checked.auto.includes(c.Subnet)) },
      internal: !!spec.Internal, attachable: !!spec.Attachable, options: { ...(spec.Options ?? {}) }, labels: spec.Labels ?? {},
    };
    // an automatic subnet (10.0.0.0/8 in /24s, as Docker's GlobalDefault) avoids this host's networks and routes too
    await this.cluster.createNetwork(net, [...this.usedSubnets(), ...this.hostRoutesCache]);
    try {
      await this.createKernelSide(drv, net);
    } catch (e) {
      await this.cluster.removeNetwork(net).catch(() => {});
      throw e;
    }
    return net;
  }

  /** A global network created or changed on any host: this host's copy (its round-robin position stays). */
  async adoptGlobal(net: NetworkRecord): Promise<void> {
    const all = this.records();
    if (all.some((n) => n.name === net.name && n.id !== net.id)) {
      this.log.warn({ network: net.name, id: net.id }, 'a global network has the name of a network of this host: not shown here');
      return;
    }
    const cur = all.find((n) => n.id === net.id);
    this.put({ ...net, ...(cur?.lastAllocated ? { lastAllocated: cur.lastAllocated } : {}) });
    if (!cur) {
      const drv = this.drivers.get(net.driver);
      await drv?.ensureNetwork(net);
      // a global network with loom's firewall (openvswitch): its NAT and isolation rules on this host too
      const fwView = drv?.firewallView(net);
      if (fwView) this.fw.apply({ addNetworks: [fwView] });
    }
  }

  /** A global network removed from the cluster: this host's copy and kernel side go. */
  async dropGlobal(id: string): Promise<void> {
    const net = this.records().find((n) => n.id === id);
    if (!net || net.scope !== 'global') return;
    const fwView = this.drivers.get(net.driver)?.firewallView(net);
    if (fwView) this.fw.apply({ removeNetworks: [fwView] });
    await this.drivers.get(net.driver)?.deleteNetwork(net).catch((e) => this.log.warn({ network: net.name, err: String(e) }, 'removing a global network\'s kernel side failed'));
    this.cached = null;
    this.store.delete('networks', id);
  }

  /**
   * The address picked here must be claimed in the cluster store: another host may have taken it since
   * this host last heard. Then the next free one is picked (the endpoint's record changes with it).
   */
  private async claimGlobal(net: NetworkRecord, ep: EndpointRecord): Promise<void> {
    for (let i = 0; i < 64; i++) {
      if (await this.cluster!.claim(net, ep)) return;
      if (ep.requestedIpv4 || ep.requestedIpv6) throw new LoomError(403, 'Address already in use');
      const derivedMac = ep.mac === macFromIpv4(ep.ipv4!);
      const again = this.store.tx(() => {
        this.store.releaseOwner(ep.id);
        return this.allocateEndpoint(this.get(net.id), ep.id, ep.ifname, { aliases: ep.aliases }, ep.id);
      });
      Object.assign(ep, { ipv4: again.ipv4, prefix4: again.prefix4, gateway4: again.gateway4, ipv6: again.ipv6, prefix6: again.prefix6, gateway6: again.gateway6, ...(derivedMac ? { mac: again.mac } : {}) });
    }
    throw systemError(`network ${net.name}: no address could be claimed in the cluster store`);
  }

  /**
   * Docker's docker_gwbridge: a container whose networks give it no way out (overlay endpoints carry no
   * default route) gets one more endpoint, on this local bridge network (device loom_gwbridge, masquerade,
   * no inter-container traffic), created on first use. Returns its name, or null when not needed.
   */
  async gatewayFor(eps: EndpointRecord[]): Promise<string | null> {
    const nets = eps.map((e) => this.find(e.networkId)).filter((n): n is NetworkRecord => !!n);
    if (!nets.some((n) => n.driver === 'overlay' && !n.internal)) return null;
    if (nets.some((n) => n.driver !== 'overlay' && !n.internal && n.ipam.config.some((c) => c.Gateway) && n.name !== GATEWAY_NETWORK)) return null;
    if (!this.find(GATEWAY_NETWORK)) {
      await this.create({
        Name: GATEWAY_NETWORK, Driver: 'bridge',
        Options: { [OPT_BRIDGE_NAME]: 'loom_gwbridge', 'com.docker.network.bridge.enable_icc': 'false', 'com.docker.network.bridge.enable_ip_masquerade': 'true' },
      }).catch((e) => {
        if (!this.find(GATEWAY_NETWORK)) throw e; // else: another container's start made it meanwhile
      });
    }
    return GATEWAY_NETWORK;
  }

  isGatewayNetwork(net: NetworkRecord): boolean {
    return net.name === GATEWAY_NETWORK;
  }

  // ---------------------------------------------------------------- endpoints

  /**
   * Docker's checks of an endpoint's --ip/--ip6 (daemon validateEndpointSettings), at container create and
   * network connect: each address must be of its family and lie in a subnet configured by the user (in its
   * ip-range when it has one); none at all on networks whose subnets came from the default pools.
   * Throws 400 "invalid endpoint settings:" with every problem.
   */
  validateEndpoint(net: NetworkRecord, req: { ipv4?: string; ipv6?: string }): void {
    const errs: string[] = [];
    const check = (want: string | undefined, family: 4 | 6) => {
      if (!want) return;
      if (!isStrictIp(want) || (want.includes(':') ? 6 : 4) !== family || /^(0\.0\.0\.0|::)$/.test(want)) {
        errs.push(`invalid IPv${family} address: ${want}`);
        return;
      }
      const configured = net.ipam.config.filter((c) => (c.Subnet.includes(':') ? 6 : 4) === family && !net.autoSubnets?.includes(c.Subnet));
      if (!configured.length) {
        errs.push('user specified IP address is supported only when connecting to networks with user configured subnets');
        return;
      }
      if (!configured.some((c) => contains(parseCidr(c.IPRange ?? c.Subnet), want))) {
        errs.push(`no configured subnet or ip-range contain the IP address ${want}`);
      }
    };
    check(req.ipv4, 4);
    check(req.ipv6, 6);
    if (errs.length) throw invalidParameter(`invalid endpoint settings:\n${errs.length === 1 ? errs[0] : `* ${errs.join('\n* ')}`}`);
  }

  /**
   * Reserves addresses for a new endpoint and returns its record (phase 'creating'), inside the caller's
   * store transaction. Nothing in the kernel yet.
   */
  allocateEndpoint(net: NetworkRecord, owner: string, ifname: string, req: { ipv4?: string; ipv6?: string; mac?: string; aliases?: string[] }, epId = newId()): EndpointRecord {
    this.validateEndpoint(net, req);
    const ep: EndpointRecord = { id: epId, networkId: net.id, networkName: net.name, ifname, hostVeth: vethName(), mac: '', aliases: req.aliases ?? [], phase: 'creating' };
    // Looked up one address at a time (the primary key) rather than reading every reservation of the
    // network: allocation goes round-robin, so the next address is nearly always free.
    // on an overlay network, also the addresses other hosts hold (as far as this host has heard: join claims)
    const inStore = (a: string) => this.store.isReserved(net.id, a) || (net.scope === 'global' && !!this.cluster?.isTaken(net.id, a));
    const last = { ...(net.lastAllocated ?? {}) };
    // One address per family, as Docker's IPAM gives: the wanted one from the subnet holding it, else the
    // next free one from the first subnet of that family that has one left.
    // a remote IPAM plugin gives the addresses at join (its calls are not part of this transaction)
    for (const family of net.ipamPools?.length ? [] : [4, 6] as const) {
      const want = family === 4 ? req.ipv4 : req.ipv6;
      const configs = net.ipam.config.filter((c) => (c.Subnet.includes(':') ? 6 : 4) === family);
      if (!configs.length) continue;
      let got: { addr: string; c: IpamConfig; sub: Cidr } | undefined;
      for (const c of configs) {
        const sub = parseCidr(c.Subnet);
        const fixed = new Set<string>();
        if (c.Gateway) fixed.add(c.Gateway);
        for (const a of Object.values(c.AuxiliaryAddresses ?? {})) fixed.add(parseIp(a).text);
        const reserved = { has: (a: string) => fixed.has(a) || inStore(a) };
        if (want) {
          if (!contains(sub, want)) continue;
          const w = parseIp(want).text;
          // the gateway, an aux address or another endpoint's: Docker's IPAM answers ErrIPAlreadyAllocated (403)
          if (reserved.has(w) || isNetworkOrBroadcast(sub, w)) throw new LoomError(403, 'Address already in use');
          got = { addr: w, c, sub };
          break;
        }
        const next = allocate(sub, reserved, { range: c.IPRange ? parseCidr(c.IPRange) : undefined, after: last[c.Subnet] });
        if (next) {
          last[c.Subnet] = next;
          got = { addr: next, c, sub };
          break;
        }
      }
      if (!got) {
        if (want) throw invalidParameter(`no configured subnet or ip-range contain the IP address ${want}`);
        throw exhausted(net.name, net.id, family);
      }
      this.store.reserveAddress(net.id, got.addr, epId);
      if (family === 4) {
        ep.ipv4 = got.addr; ep.prefix4 = got.sub.prefix; ep.gateway4 = got.c.Gateway;
      } else {
        ep.ipv6 = got.addr; ep.prefix6 = got.sub.prefix; ep.gateway6 = got.c.Gateway;
      }
    }
    ep.mac = req.mac ?? (ep.ipv4 ? macFromIpv4(ep.ipv4) : net.ipamPools?.length ? '' : randomMac());
    ep.requestedIpv4 = req.ipv4;
    ep.requestedIpv6 = req.ipv6;
    if (Object.keys(last).length) this.put({ ...net, lastAllocated: last });
    return ep;
  }

  releaseEndpoint(ep: EndpointRecord): void {
    this.store.releaseOwner(ep.id);
    this.cluster?.release(ep);
  }

  async join(ep: EndpointRecord, netnsPath: string, defaultRoute: boolean): Promise<void> {
    const net = this.get(ep.networkId);
    const drv = await this.loadedDriverOf(net);
    if (!drv) throw systemError(`network ${net.name} (driver ${net.driver}) takes no endpoints`);
    const remote = net.ipamPools?.length && !ep.ipv4 && !ep.ipv6 ? await this.ipamOf(net) : null;
    if (remote) {
      await remote.allocateEndpoint(net, ep);
      if (!ep.mac) ep.mac = ep.ipv4 ? macFromIpv4(ep.ipv4) : randomMac();
    }
    if (inCluster(net) && this.cluster) await this.claimGlobal(net, ep);
    try {
      await drv.join(net, ep, netnsPath, defaultRoute);
    } catch (e) {
      if (remote) await remote.releaseEndpoint(net, ep).catch(() => {});
      throw e;
    }
  }

  /** sandboxGoing: the container namespace is deleted next; netnsPath: it stays (see BridgeDriver.leave). */
  async leave(ep: EndpointRecord, opts: LeaveOptions = {}): Promise<void> {
    const net = this.find(ep.networkId);
    // a network whose record is gone: its endpoint was a bridge's (the only driver before the registry)
    const drv = net ? await this.loadedDriverOf(net) : this.driver;
    await drv?.leave(net, ep, opts);
    if (net?.ipamPools?.length && (ep.ipv4 || ep.ipv6)) await (await this.ipamOf(net)).releaseEndpoint(net, ep);
  }

  /** After a restart: veths on our bridges that no endpoint owns go. */
  async sweepOrphans(liveVeths: Set<string>): Promise<void> {
    const bridges = this.list().map((n) => n.bridge).filter((b): b is string => !!b);
    // a bridged underlay's uplink is a port of loom's bridge that no endpoint owns (and may be a veth)
    const keep = new Set([...liveVeths, ...this.list().map((n) => uplinkState(n)?.name).filter((u): u is string => !!u)]);
    const gone = await this.driver.sweepOrphans(bridges, keep);
    for (const d of this.drivers.values()) if (d instanceof OvsDriver) gone.push(...await d.sweepPorts(keep));
    if (gone.length) this.log.info({ links: gone }, 'deleted veths that no endpoint owns');
  }
}

function randomMac(): string {
  const b = crypto.randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** `label=k` (has the key), `label=k=v` (key with that value): Docker's MatchKVList. */
export function matchLabels(values: string[], labels: Record<string, string>): boolean {
  return values.every((v) => {
    const i = v.indexOf('=');
    if (i < 0) return v in labels;
    return labels[v.slice(0, i)] === v.slice(i + 1);
  });
}

/** A network kept in the cluster store: overlay, and openvswitch created with a cluster store (global). */
const inCluster = (n: NetworkRecord) => n.driver === 'overlay' || (n.driver === 'openvswitch' && n.scope === 'global');

/**
 * GET /networks filters as Docker applies them (api/server/router/network/filter.go): driver and scope
 * exact, name and id as regular expressions (so substrings match), labels all given, then dangling
 * (no endpoint, not predefined) and type (builtin / custom). `used` counts a network's endpoints.
 */
export function filterNetworks(nets: NetworkRecord[], f: Record<string, string[]>, used: (n: NetworkRecord) => number): NetworkRecord[] {
  const accepted = ['dangling', 'driver', 'id', 'label', 'name', 'scope', 'type'];
  for (const k of Object.keys(f)) if (!accepted.includes(k)) throw invalidParameter(`invalid filter '${k}'`);
  const any = (k: string, fn: (v: string) => boolean) => !f[k]?.length || f[k]!.some(fn);
  const matchName = anyMatch(f.name);
  const matchId = anyMatch(f.id);
  let out = nets.filter((n) => any('driver', (v) => v === n.driver) && matchName([n.name])
    && matchId([n.id]) && (!f.label?.length || matchLabels(f.label, n.labels)) && any('scope', (v) => v === n.scope));
  const dangling = f.dangling ?? [];
  if (dangling.length > 1) throw invalidParameter('got more than one value for filter key "dangling"');
  if (dangling.length === 1) {
    const v = dangling[0]!;
    if (!['0', 'false', '1', 'true'].includes(v)) throw invalidParameter(`invalid value for filter 'dangling', must be "true" (or "1"), or "false" (or "0")`);
    const only = v === '1' || v === 'true';
    out = out.filter((n) => (only ? !RESERVED.includes(n.name) && used(n) === 0 : RESERVED.includes(n.name) || used(n) > 0));
  }
  if (f.type?.length) {
    const typed: NetworkRecord[] = [];
    for (const t of f.type) {
      if (t !== 'builtin' && t !== 'custom') throw invalidParameter(`invalid filter 'type=${t}'`);
      typed.push(...out.filter((n) => RESERVED.includes(n.name) === (t === 'builtin')));
    }
    out = typed;
  }
  return out;
}

/** POST /networks/prune filters: `until` (timestamp or duration), `label`, `label!`. */
/** Docker's prune filters (until, label, label!) over anything with a creation time and labels (networks, containers). */
export function pruneFilter(f: Record<string, string[]>): (n: { created: string; labels: Record<string, string> }) => boolean {
  for (const k of Object.keys(f)) if (!['until', 'label', 'label!'].includes(k)) throw invalidParameter(`invalid filter '${k}'`);
  let until: number | undefined;
  for (const u of f.until ?? []) {
    const t = parseUntil(u);
    if (t === null) throw invalidParameter(`failed to parse value as time or duration: "${u}"`);
    until = t;
  }
  return (n) => (until === undefined || Date.parse(n.created) < until)
    && (!f.label?.length || matchLabels(f.label, n.labels))
    && (!f['label!']?.length || !f['label!'].some((v) => matchLabels([v], n.labels)));
}

/** Docker's until: a Unix timestamp (with fractions), an RFC 3339 date, or a Go duration before now. */
function parseUntil(s: string): number | null {
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s) * 1000;
  const dur = /^(\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$/.test(s) ? s.match(/\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h)/g)! : null;
  if (dur) {
    const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
    const ms = dur.reduce((t, p) => t + parseFloat(p) * unit[p.replace(/[\d.]/g, '')]!, 0);
    return Date.now() - ms;
  }
  const t = Date.parse(s);
  return Number.isNaN(t) ? null : t;
}
