// Networks: the records, their IPAM and their kernel side (through the driver). Containers call
// allocate/attach/detach/release; this module owns the order of kernel steps for one endpoint.
import crypto from 'node:crypto';
import type { Store } from '../store/sqlite.ts';
import type { EndpointRecord, IpamConfig, NetworkRecord } from './types.ts';
import { BridgeDriver, OPT_BRIDGE_NAME } from '../drivers/bridge.ts';
import {
  allocate, cidrString, contains, DOCKER_DEFAULT_POOLS, exhausted, firstHost, macFromIpv4, nextFreePool, overlaps,
  parseCidr, parseIp, within, type Cidr, type PoolSpec,
} from '../ipam/ipam.ts';
import { conflict, invalidParameter, LoomError, notFound, systemError } from '../util/errors.ts';
import { newId, nowIso, VALID_NAME, vethName } from './names.ts';
import type { Logger } from '../util/log.ts';
import type { Firewall } from '../firewall/firewall.ts';

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
}

const PREDEFINED = ['bridge', 'host', 'none'];

export class Networks {
  readonly driver: BridgeDriver;
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
  }

  list(): NetworkRecord[] {
    return this.store.all<NetworkRecord>('networks');
  }

  /** Docker's lookup order: full id, exact name, unique id prefix. */
  find(ref: string): NetworkRecord | undefined {
    const all = this.list();
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
      if (!existing.some((n) => n.name === name)) this.store.put('networks', mk(name, driver));
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
      this.store.put('networks', def);
    }
    for (const n of this.list()) {
      if (n.driver === 'bridge') await this.driver.ensureNetwork(n);
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
    return this.list().filter((n) => n.driver === 'bridge').map((n) => this.driver.firewallView(n));
  }

  // ---------------------------------------------------------------- create / remove

  async create(spec: NetworkCreateSpec): Promise<NetworkRecord> {
    const name = spec.Name;
    if (!name) throw invalidParameter('network name is required');
    if (!VALID_NAME.test(name)) throw invalidParameter(`invalid network name "${name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    if (PREDEFINED.includes(name)) throw new LoomError(403, `operation is not permitted on predefined ${name} network `);
    if (this.list().some((n) => n.name === name)) throw conflict(`network with name ${name} already exists`);
    const driver = spec.Driver || 'bridge';
    if (driver !== 'bridge') throw notFound(`plugin "${driver}" not found`);
    const ipamDriver = spec.IPAM?.Driver || 'default';
    if (ipamDriver !== 'default') throw notFound(`plugin "${ipamDriver}" not found`);

    await this.refreshHostRoutes();
    const configs = this.validateIpam(spec.IPAM?.Config ?? [], !!spec.EnableIPv6);
    const id = newId();
    const options = { ...(spec.Options ?? {}) };
    const bridge = options[OPT_BRIDGE_NAME] || `br-${id.slice(0, 12)}`;
    if (bridge.length > 15) throw invalidParameter(`bridge name ${bridge} is longer than 15 characters`);
    if (this.list().some((n) => n.bridge === bridge)) throw conflict(`bridge name ${bridge} is in use by another network`);
    const net: NetworkRecord = {
      id, name, driver, scope: 'local', created: nowIso(), enableIPv6: !!spec.EnableIPv6,
      ipam: { driver: ipamDriver, options: spec.IPAM?.Options ?? {}, config: configs },
      internal: !!spec.Internal, attachable: !!spec.Attachable, options, labels: spec.Labels ?? {}, bridge,
    };
    await this.driver.ensureNetwork(net);
    try {
      this.fw.apply({ addNetworks: [this.driver.firewallView(net)] });
    } catch (e) {
      await this.driver.deleteNetwork(net).catch(() => {});
      throw e;
    }
    try {
      this.store.put('networks', net);
    } catch (e) {
      this.fw.apply({ removeNetworks: [this.driver.firewallView(net)] });
      await this.driver.deleteNetwork(net).catch(() => {});
      throw e;
    }
    return net;
  }

  private usedSubnets(): Cidr[] {
    return this.list().flatMap((n) => n.ipam.config.map((c) => parseCidr(c.Subnet)));
  }

  private validateIpam(configs: IpamConfig[], ipv6: boolean): IpamConfig[] {
    const used = this.usedSubnets();
    const out: IpamConfig[] = [];
    for (const c of configs) {
      if (!c.Subnet) throw invalidParameter('IPAM config without a subnet is not supported');
      const sub = parseCidr(c.Subnet);
      if (sub.family === 6 && !ipv6) throw invalidParameter(`IPv6 subnet ${c.Subnet} requires --ipv6`);
      const clash = used.find((u) => overlaps(u, sub));
      if (clash) throw new LoomError(403, `Pool overlaps with other one on this address space`);
      const ipRange = c.IPRange ? parseCidr(c.IPRange) : undefined;
      if (ipRange && !within(ipRange, sub)) throw invalidParameter(`ip-range ${c.IPRange} is not within subnet ${c.Subnet}`);
      let gw = c.Gateway;
      if (gw) {
        const g = parseIp(gw);
        if (!contains(sub, g.text)) throw invalidParameter(`gateway ${gw} is not within subnet ${c.Subnet}`);
        gw = g.text;
      } else gw = firstHost(sub);
      const aux = c.AuxiliaryAddresses ?? {};
      for (const [k, v] of Object.entries(aux)) {
        if (!contains(sub, v)) throw invalidParameter(`auxiliary address ${k}=${v} is not within subnet ${c.Subnet}`);
      }
      used.push(sub);
      out.push({ Subnet: cidrString(sub), Gateway: gw, ...(c.IPRange ? { IPRange: cidrString(ipRange!) } : {}), ...(Object.keys(aux).length ? { AuxiliaryAddresses: aux } : {}) });
    }
    if (!out.some((c) => !c.Subnet.includes(':'))) {
      const routes = this.hostRoutesCache;
      const pick = nextFreePool(this.opts.pools, [...used, ...routes]);
      if (!pick) throw invalidParameter('could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network');
      out.unshift({ Subnet: cidrString(pick), Gateway: firstHost(pick) });
    }
    return out;
  }

  /** Host routes, refreshed before each create (pools that overlap them are skipped). */
  private hostRoutesCache: Cidr[] = [];
  async refreshHostRoutes(): Promise<void> {
    this.hostRoutesCache = (await this.driver.hostRoutes()).map((r) => parseCidr(r)).filter((c) => c.prefix > 0)
      .filter((c) => !this.list().some((n) => n.ipam.config.some((k) => cidrString(parseCidr(k.Subnet)) === cidrString(c))));
  }

  async remove(net: NetworkRecord, attached: string[]): Promise<void> {
    if (PREDEFINED.includes(net.name)) throw new LoomError(403, `${net.name} is a pre-defined network and cannot be removed`);
    if (attached.length) throw new LoomError(403, `error while removing network: network ${net.name} id ${net.id} has active endpoints`);
    this.fw.apply({ removeNetworks: [this.driver.firewallView(net)] });
    await this.driver.deleteNetwork(net);
    this.store.delete('networks', net.id);
  }

  // ---------------------------------------------------------------- endpoints

  /**
   * Reserves addresses for a new endpoint and returns its record (phase 'creating'), inside the caller's
   * store transaction. Nothing in the kernel yet.
   */
  allocateEndpoint(net: NetworkRecord, owner: string, ifname: string, req: { ipv4?: string; ipv6?: string; mac?: string; aliases?: string[] }): EndpointRecord {
    const epId = newId();
    const ep: EndpointRecord = { id: epId, networkId: net.id, networkName: net.name, ifname, hostVeth: vethName(), mac: '', aliases: req.aliases ?? [], phase: 'creating' };
    const taken = new Set(this.store.addresses(net.id).keys());
    const last = { ...(net.lastAllocated ?? {}) };
    for (const c of net.ipam.config) {
      const sub = parseCidr(c.Subnet);
      const want = sub.family === 4 ? req.ipv4 : req.ipv6;
      const reserved = new Set(taken);
      if (c.Gateway) reserved.add(c.Gateway);
      for (const a of Object.values(c.AuxiliaryAddresses ?? {})) reserved.add(parseIp(a).text);
      let addr: string;
      if (want) {
        const w = parseIp(want).text;
        if (!contains(sub, w)) {
          if ((sub.family === 4) !== !w.includes(':')) continue;
          throw invalidParameter(`no configured subnet or ip-range contain the IP address ${want}`);
        }
        if (reserved.has(w)) throw conflict(`Address already in use: ${want}`);
        addr = w;
      } else {
        const got = allocate(sub, reserved, { range: c.IPRange ? parseCidr(c.IPRange) : undefined, after: last[c.Subnet] });
        if (!got) throw exhausted(net.name);
        addr = got;
        last[c.Subnet] = got;
      }
      this.store.reserveAddress(net.id, addr, epId);
      if (sub.family === 4 && !ep.ipv4) {
        ep.ipv4 = addr; ep.prefix4 = sub.prefix; ep.gateway4 = c.Gateway;
      } else if (sub.family === 6 && !ep.ipv6) {
        ep.ipv6 = addr; ep.prefix6 = sub.prefix; ep.gateway6 = c.Gateway;
      }
    }
    if (req.ipv4 && !ep.ipv4) throw invalidParameter(`no configured subnet or ip-range contain the IP address ${req.ipv4}`);
    if (req.ipv6 && !ep.ipv6) throw invalidParameter(`no configured subnet or ip-range contain the IP address ${req.ipv6}`);
    ep.mac = req.mac ?? (ep.ipv4 ? macFromIpv4(ep.ipv4) : randomMac());
    ep.requestedIpv4 = req.ipv4;
    ep.requestedIpv6 = req.ipv6;
    if (Object.keys(last).length) this.store.put('networks', { ...net, lastAllocated: last });
    return ep;
  }

  releaseEndpoint(ep: EndpointRecord): void {
    this.store.releaseOwner(ep.id);
  }

  async join(ep: EndpointRecord, netnsPath: string, defaultRoute: boolean): Promise<void> {
    const net = this.get(ep.networkId);
    if (net.driver !== 'bridge') throw systemError(`network ${net.name} (driver ${net.driver}) takes no endpoints`);
    await this.driver.join(net, ep, netnsPath, defaultRoute);
  }

  async leave(ep: EndpointRecord): Promise<void> {
    await this.driver.leave(ep);
  }
}

function randomMac(): string {
  const b = crypto.randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}
