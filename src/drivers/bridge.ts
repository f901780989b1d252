// The bridge driver: one Linux bridge per network (docker0 model), one veth pair per endpoint whose
// container end is created directly inside the container's namespace (never moved: ~18 ms a move here).
// Kernel work goes through one in-process rtnetlink socket in the daemon's namespace; firewall state is
// handed to the Firewall as plain data.
import crypto from 'node:crypto';
import { Rtnl, bridgeNfCallData, configureInterface } from '../kernel/rtnl.ts';
import { brNetfilterPresent } from './brnetfilter.ts';
import fs from 'node:fs';
import type { EndpointRecord, NetworkRecord } from '../core/types.ts';
import type { FwNetwork } from '../firewall/model.ts';
import { parseCidr } from '../ipam/ipam.ts';
import { conflict, invalidParameter, systemError } from '../util/errors.ts';
import { endpointInterface, type LeaveOptions, type NetworkDriver } from './driver.ts';
import net from 'node:net';
import type { Logger } from '../util/log.ts';
import { isUplinkNetwork, Uplinks, uplinkState } from './uplink.ts';

export const OPT_BRIDGE_NAME = 'com.docker.network.bridge.name';
export const OPT_ICC = 'com.docker.network.bridge.enable_icc';
export const OPT_MASQ = 'com.docker.network.bridge.enable_ip_masquerade';
export const OPT_HOST_BINDING = 'com.docker.network.bridge.host_binding_ipv4';
export const OPT_MTU = 'com.docker.network.driver.mtu';

// Go's strconv.ParseBool, which Docker uses for the bridge driver's boolean options.
const GO_TRUE = ['1', 't', 'T', 'TRUE', 'true', 'True'];
const GO_FALSE = ['0', 'f', 'F', 'FALSE', 'false', 'False'];
const truthy = (v: string | undefined, dflt: boolean) => (v === undefined || v === '' ? dflt : GO_TRUE.includes(v));

// Docker's message for a driver option it cannot parse (bridge driver's parseErr), a 400.
const parseErr = (label: string, value: string, why: string) => invalidParameter(`failed to parse ${label} value: ${value} (${why})`);

/**
 * Checks the bridge driver's options of a network about to be created, as Docker's bridge driver parses
 * them: booleans as Go's ParseBool, the MTU as an integer the kernel accepts, the host binding address as
 * an IPv4 address, the bridge name as an interface name.
 */
export function validateBridgeOptions(options: Record<string, string>): void {
  for (const k of [OPT_ICC, OPT_MASQ]) {
    const v = options[k];
    if (v !== undefined && v !== '' && !GO_TRUE.includes(v) && !GO_FALSE.includes(v)) {
      throw parseErr(k, v, `strconv.ParseBool: parsing ${JSON.stringify(v)}: invalid syntax`);
    }
  }
  const mtu = options[OPT_MTU];
  if (mtu !== undefined && mtu !== '') {
    if (!/^[+-]?\d+$/.test(mtu)) throw parseErr(OPT_MTU, mtu, `strconv.Atoi: parsing ${JSON.stringify(mtu)}: invalid syntax`);
    const n = Number(mtu);
    // 68 is IPv4's minimum; the kernel refuses less on a bridge, and a veth's maximum is 65535
    if (n < 0) throw invalidParameter(`invalid MTU number: ${n}`);
    if (n !== 0 && (n < 68 || n > 65535)) throw invalidParameter(`invalid MTU number: ${n} (must be between 68 and 65535)`);
  }
  const hb = options[OPT_HOST_BINDING];
  if (hb !== undefined && hb !== '' && !net.isIP(hb)) throw parseErr(OPT_HOST_BINDING, hb, 'nil ip');
  const name = options[OPT_BRIDGE_NAME];
  if (name !== undefined && name !== '' && !/^[A-Za-z0-9_.:@+-]{1,15}$/.test(name)) {
    throw invalidParameter(name.length > 15 ? `bridge name ${name} is longer than 15 characters` : `invalid bridge name: ${JSON.stringify(name)}`);
  }
}

// The daemon's own namespace: /proc/sys/net is that of the thread opening it, and the daemon runs in its host.
function writeProcSys(key: string, value: string): void {
  fs.writeFileSync(`/proc/sys/${key}`, value);
}

const REAP_AFTER_MS = 2000;

/**
 * Links taken out of use and deleted in the background (network rm, disconnect) are renamed to this
 * prefix + 10 hex digits first: the name they had is free at once, and restore() deletes whatever of
 * them a crash left (sweepOrphans).
 */
export const RETIRED_PREFIX = 'lmdel';
const retiredName = () => RETIRED_PREFIX + crypto.randomBytes(5).toString('hex');
/**
 * ...and put in this device group ("lmde"), which the reaper deletes in one request a little later:
 * deleting a link holds the kernel's RTNL lock while it waits for RCU (~30 ms here), which would stall
 * the next create or connect if done at once, one link at a time.
 */
export const RETIRED_GROUP = 0x6c6d6465;
/**
 * The reaper waits for a quiet second (no link retired meanwhile), at most 5 s from the first retired link:
 * a burst of removals is not slowed down by the deletion of what it retired, and the links it retired go in
 * one request (measured here: retiring a bridge 1.1 ms, or 21 ms when each deletion runs right behind it).
 */
const REAP_QUIET_MS = 1000, REAP_MAX_MS = 5000;

export class BridgeDriver implements NetworkDriver {
  readonly type: string = 'bridge';
  readonly scope = 'local' as const;
  readonly publishes = true;
  protected readonly rtnl: Rtnl;
  protected readonly log: Logger;
  private readonly indexes = new Map<string, number>();
  private forwardingOn = false;
  /** host ends left to the kernel's namespace cleanup, deleted later if still there */
  private readonly reaping = new Set<string>();
  private readonly defaults: { icc: boolean; ipMasq: boolean };

  /** bridged underlay networks (-o loom.bridge.uplink) */
  readonly uplinks: Uplinks;

  constructor(log: Logger, defaults: { icc: boolean; ipMasq: boolean }) {
    this.rtnl = Rtnl.open();
    this.log = log;
    this.defaults = defaults;
    this.uplinks = new Uplinks(this.rtnl, log);
  }

  close(): void {
    if (this.retiredTimer) {
      // the reaper's work, now: the kernel deletes them within the send, before the socket closes
      clearTimeout(this.retiredTimer);
      this.retiredTimer = null;
      this.rtnl.deleteGroup(RETIRED_GROUP, { onMainThread: true }).catch(() => { /* swept at the next start */ });
    }
    this.rtnl.close();
  }

  /** The firewall's view of a network: plain data. */
  firewallView(net: NetworkRecord): FwNetwork | null {
    // a bridged underlay: containers are machines of the segment (no NAT, no isolation rules)
    if (isUplinkNetwork(net)) return null;
    const subnets = net.ipam.config.map((c) => c.Subnet);
    return {
      id: net.id,
      bridge: net.bridge!,
      subnets4: subnets.filter((s) => !s.includes(':')),
      subnets6: subnets.filter((s) => s.includes(':')),
      gateways4: net.ipam.config.filter((c) => c.Gateway && !c.Subnet.includes(':')).map((c) => c.Gateway!),
      gateways6: net.ipam.config.filter((c) => c.Gateway && c.Subnet.includes(':')).map((c) => c.Gateway!),
      // The default bridge follows the daemon's --ip-masq and --icc of this run, whatever its record says.
      masquerade: net.isDefault ? this.defaults.ipMasq : truthy(net.options[OPT_MASQ], true),
      icc: net.isDefault ? this.defaults.icc : truthy(net.options[OPT_ICC], true),
      internal: net.internal,
      hostBindingIpv4: net.options[OPT_HOST_BINDING],
    };
  }

  mtu(net: NetworkRecord): number | undefined {
    const m = Number(net.options[OPT_MTU] || 0);
    return m > 0 ? m : undefined;
  }

  /** Creates (or adopts, after a restart) the bridge device with its gateway addresses, up. Idempotent. */
  async ensureNetwork(net: NetworkRecord): Promise<void> {
    if (isUplinkNetwork(net)) return this.ensureUplink(net);
    const name = net.bridge!;
    let link = await this.rtnl.getLink(name);
    let created = false;
    if (!link) {
      // An explicit MAC (as libnetwork sets one): a bridge without one takes the lowest MAC of its ports,
      // so every container joining or leaving could change the gateway's MAC under the others' ARP caches
      // (seen: a neighbour's pings to the gateway lost for seconds after another container's removal).
      await this.createDevice(net, name);
      created = true;
      link = await this.rtnl.getLink(name);
      if (!link) throw systemError(`bridge ${name} vanished after creation`);
    } else if (link.kind && link.kind !== this.deviceKind) {
      throw systemError(`cannot use ${name} for network ${net.name}: it exists and is a ${link.kind} device`);
    } else if (link.mac && this.deviceKind === 'bridge') {
      // adopted (a restart, or a bridge made by an older loom): pin the MAC it has now
      await this.rtnl.setLink(link.index, { mac: link.mac });
    }
    try {
      for (const c of net.ipam.config) {
        if (!c.Gateway) continue;
        const prefix = parseCidr(c.Subnet).prefix;
        await this.rtnl.addAddress(link.index, `${c.Gateway}/${prefix}`, { ignoreExisting: true, nodad: true });
      }
      if (!link.up) await this.rtnl.setLink(link.index, { up: true });
    } catch (e) {
      if (created) await this.deleteDevice(net).catch(() => {});
      throw e;
    }
    this.indexes.set(name, link.index);
    if (!this.forwardingOn) {
      writeProcSys('net/ipv4/ip_forward', '1');
      this.forwardingOn = true;
    }
    // Published ports are DNATed from 127.0.0.1 too (no userland proxy): the bridge must route 127/8 sources.
    writeProcSys(`net/ipv4/conf/${name}/route_localnet`, '1');
    // icc=false is a rule on traffic between two ports of one bridge, which nftables' forward hook sees
    // only when br_netfilter hands the bridge's frames to it: asked for on this bridge alone, so that the
    // frames of icc=true bridges skip conntrack and the IP hooks (see brnetfilter.ts). Set both ways: the
    // default bridge's icc follows the daemon's --icc of each run.
    if (this.deviceKind === 'bridge') {
      const icc = this.firewallView(net)!.icc;
      try {
        await this.rtnl.setLinkData(link.index, 'bridge', bridgeNfCallData(!icc));
      } catch (e) {
        if (!icc) this.log.warn({ network: net.name, err: String(e) }, `cannot hand ${name}'s bridged traffic to nftables: inter-container communication stays possible on it`);
      }
      if (!icc && !brNetfilterPresent()) {
        this.log.warn({ network: net.name }, `br_netfilter is not loaded (modprobe br_netfilter): inter-container communication stays possible on ${name}`);
      }
    }
    if (net.enableIPv6) {
      try { writeProcSys('net/ipv6/conf/all/forwarding', '1'); } catch (e) { this.log.warn({ err: String(e) }, 'cannot enable IPv6 forwarding'); }
    }
  }

  /** A bridged underlay: the move completes, or is undone when it cannot. */
  private async ensureUplink(net: NetworkRecord): Promise<void> {
    try {
      this.indexes.set(net.bridge!, await this.uplinks.ensure(net));
    } catch (e) {
      this.indexes.delete(net.bridge!);
      await this.uplinks.restore(net).catch((r) => this.log.error({ network: net.name, err: String(r) }, 'giving the uplink back failed'));
      throw e;
    }
  }

  async deleteNetwork(net: NetworkRecord): Promise<void> {
    if (uplinkState(net)) await this.uplinks.restore(net);
    await this.deleteDevice(net);
    this.indexes.delete(net.bridge!);
  }

  private async bridgeIndex(net: NetworkRecord): Promise<number> {
    const known = this.indexes.get(net.bridge!);
    if (known) return known;
    const link = await this.rtnl.getLink(net.bridge!);
    if (!link) throw systemError(`bridge ${net.bridge} of network ${net.name} does not exist`);
    this.indexes.set(net.bridge!, link.index);
    return link.index;
  }

  /** Plugs an endpoint into the container namespace. On failure nothing of it is left in the kernel. */
  async join(net: NetworkRecord, ep: EndpointRecord, netnsPath: string, defaultRoute: boolean): Promise<void> {
    // a kernel bridge takes the port as its master; another switch (src/drivers/ovs.ts) in plugged()
    const master = this.deviceKind === 'bridge' ? await this.bridgeIndex(net) : undefined;
    const mtu = this.mtu(net);
    // hairpin: a container reaching its own published port through a host address (see rtnl's hairpinOn)
    await this.rtnl.createVeth({ name: ep.hostVeth!, peerName: ep.ifname, peerNetnsPath: netnsPath, peerMac: ep.mac, mtu, master, up: true, hairpin: true });
    try {
      await this.plugged(net, ep);
      await configureInterface(netnsPath, { ...endpointInterface(ep, defaultRoute, net.internal), mtu });
    } catch (e) {
      await this.unplug(net, ep).catch(() => {});
      await this.rtnl.deleteLink(ep.hostVeth!).catch(() => {});
      throw e;
    }
  }

  // What another kind of switch (src/drivers/ovs.ts) does differently: its device, and its ports.
  protected readonly deviceKind: string = 'bridge';
  protected async createDevice(net: NetworkRecord, name: string): Promise<void> {
    await this.rtnl.createBridge(name, { mtu: this.mtu(net), up: true, mac: randomMac() });
  }
  /**
   * Deleting a bridge waits for the kernel to unregister it (~30-50 ms here, most of a `network rm`). The
   * bridge is taken out of use instead (down: its routes and gateway address stop working; renamed: its
   * name is free for a new network at once) and deleted in the background.
   */
  protected async deleteDevice(net: NetworkRecord): Promise<void> {
    const name = retiredName();
    if (await this.rtnl.retireLink(net.bridge!, name, RETIRED_GROUP) !== null) this.deleteLater(name);
  }
  /** the host end exists (and is up) */
  protected async plugged(_net: NetworkRecord, _ep: EndpointRecord): Promise<void> {}
  /** the host end is about to go (idempotent) */
  protected async unplug(_net: NetworkRecord | undefined, _ep: EndpointRecord): Promise<void> {}

  /** Docker's bridge options, and the device name (the option, or br-<id>) free among `others`. */
  async prepare(net: NetworkRecord, others: NetworkRecord[]): Promise<void> {
    validateBridgeOptions(net.options);
    const bridge = net.options[OPT_BRIDGE_NAME] || `br-${net.id.slice(0, 12)}`;
    if (bridge.length > 15) throw invalidParameter(`bridge name ${bridge} is longer than 15 characters`);
    if (others.some((n) => n.bridge === bridge)) throw conflict(`bridge name ${bridge} is in use by another network`);
    net.bridge = bridge;
    if (isUplinkNetwork(net)) await this.uplinks.prepare(net, others);
  }

  async leave(_net: NetworkRecord | undefined, ep: EndpointRecord, opts: LeaveOptions = {}): Promise<void> {
    if (!ep.hostVeth) return;
    await this.unplug(_net, ep);
    if (opts.sandboxGoing) this.reapLater(ep.hostVeth);
    else if (opts.netnsPath && await this.retirePeer(opts.netnsPath, ep)) {
      const name = retiredName();
      if (await this.rtnl.retireLink(ep.hostVeth, name, RETIRED_GROUP) !== null) this.deleteLater(name);
    } else await this.rtnl.deleteLink(ep.hostVeth);
  }

  /**
   * A disconnect from a container that keeps running: its interface goes down (with its routes) and is
   * renamed, so that the container's ethN and the endpoint's address are free at once; the host end is
   * retired likewise and the pair deleted in the background (deleting it waits ~20-40 ms for the kernel).
   * False when that could not be done (the caller then deletes the pair and waits).
   */
  private async retirePeer(netnsPath: string, ep: EndpointRecord): Promise<boolean> {
    let rt: Rtnl | undefined;
    try {
      rt = Rtnl.open(netnsPath);
      return await rt.retireLink(ep.ifname, retiredName()) !== null;
    } catch (e) {
      this.log.warn({ link: ep.ifname, netns: netnsPath, err: String(e) }, 'cannot take the container\'s interface out of use; deleting it now');
      return false;
    } finally {
      rt?.close();
    }
  }

  /** retired links waiting for the reaper's group deletion */
  private retired: string[] = [];
  private retiredTimer: NodeJS.Timeout | null = null;
  private firstRetiredAt = 0;

  /**
   * A retired link (down, renamed, in RETIRED_GROUP) is deleted by the reaper, together with the others
   * retired meanwhile, after a quiet second (see REAP_QUIET_MS). What a crash leaves, restore() sweeps
   * (sweepOrphans); a daemon that closes deletes them first (close()).
   */
  private deleteLater(name: string): void {
    this.reaping.add(name);
    this.retired.push(name);
    const now = Date.now();
    if (!this.retiredTimer) this.firstRetiredAt = now;
    else clearTimeout(this.retiredTimer);
    this.retiredTimer = setTimeout(() => this.reapRetired(), Math.max(0, Math.min(REAP_QUIET_MS, this.firstRetiredAt + REAP_MAX_MS - now)));
    this.retiredTimer.unref();
  }

  private reapRetired(): void {
    this.retiredTimer = null;
    const names = this.retired;
    this.retired = [];
    this.rtnl.deleteGroup(RETIRED_GROUP)
      .catch((e) => this.log.warn({ links: names, err: String(e) }, 'background deletion of retired links failed; the next start sweeps them'))
      .finally(() => { for (const n of names) this.reaping.delete(n); });
  }

  /**
   * The container namespace is about to be deleted: the kernel then destroys the veth pair by itself, in
   * the background. Deleting the link here would make the caller wait for the device to unregister (an RCU
   * grace period, ~30 ms: 90% of a detach). If something else still holds the namespace (a stray
   * `ip netns exec`, a container sharing it), the host end would stay on the bridge with a released address:
   * the reaper deletes whatever is left a little later, and restore() sweeps what a daemon crash left.
   */
  private reapLater(hostVeth: string): void {
    this.reaping.add(hostVeth);
    setTimeout(() => {
      this.reaping.delete(hostVeth);
      this.rtnl.deleteLink(hostVeth).catch((e) => this.log.warn({ link: hostVeth, err: String(e) }, 'cannot delete a leftover veth'));
    }, REAP_AFTER_MS).unref();
  }

  /** Deletes veths on loom's bridges that belong to no endpoint, and retired links (left by a crash). */
  async sweepOrphans(bridges: string[], liveVeths: Set<string>): Promise<string[]> {
    const links = await this.rtnl.listLinks();
    const masters = new Set(links.filter((l) => bridges.includes(l.name)).map((l) => l.index));
    const orphans = links.filter((l) => !this.reaping.has(l.name) && (l.name.startsWith(RETIRED_PREFIX)
      || (l.master !== undefined && masters.has(l.master) && l.kind === 'veth' && !liveVeths.has(l.name))));
    for (const l of orphans) await this.rtnl.deleteLink(l.index);
    return orphans.map((l) => l.name);
  }

  async linkExists(name: string): Promise<boolean> {
    return (await this.rtnl.getLink(name)) !== null;
  }

  async hostRoutes(): Promise<string[]> {
    const routes = await this.rtnl.listRoutes(4);
    return routes.filter((r) => r.dst !== 'default').map((r) => r.dst);
  }
}

/** A random locally administered unicast MAC. */
export function randomMac(): string {
  const b = crypto.randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}
