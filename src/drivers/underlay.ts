// What the macvlan and ipvlan drivers share (libnetwork's two drivers are near copies of each other):
// the parent link (an existing device, an 802.1Q sub-interface `eth0.10` the driver creates, or a dummy
// link `dm-<id>` / `di-<id>` when no parent is given), and endpoints that are links on that parent,
// created directly inside the container namespace as eth0/ethN — no host side, no bridge, no NAT, no
// firewall part. The gateway is the external router's address: it is never assigned on the host.
import os from 'node:os';
import { Rtnl, configureInterface, vlanData, type LinkData } from '../kernel/rtnl.ts';
import { netnsExists, type ErrnoError } from '../kernel/netns.ts';
import type { EndpointRecord, NetworkRecord } from '../core/types.ts';
import type { FwNetwork } from '../firewall/model.ts';
import { invalidParameter, LoomError, systemError } from '../util/errors.ts';
import { endpointInterface, type NetworkDriver } from './driver.ts';
import type { Logger } from '../util/log.ts';
import { macFromIpv4 } from '../ipam/ipam.ts';

const { EOPNOTSUPP, EEXIST } = os.constants.errno;

export const PARENT_OPT = 'parent';

/** The kernel has no such link kind (its module is absent): rtnetlink answers EOPNOTSUPP. */
export const missingKind = (e: unknown) => (e as ErrnoError)?.errno === EOPNOTSUPP;

/** What each kind needs from the kernel, for errors that name it. */
export const KERNEL_SUPPORT: Record<string, string> = {
  vlan: 'this kernel has no 802.1Q VLAN support (module 8021q)',
  dummy: 'this kernel has no dummy link support (module dummy)',
  macvlan: 'this kernel has no macvlan support (module macvlan)',
  ipvlan: 'this kernel has no ipvlan support (module ipvlan, CONFIG_IPVLAN)',
};

/**
 * Docker's parseVlan (-o parent=eth0.10): `name.vid` with a numeric VLAN id 1-4094 on an existing
 * interface. `exists` answers whether an interface is on the host.
 */
export async function parseVlan(linkName: string, exists: (name: string) => Promise<boolean>): Promise<{ parent: string; vid: number }> {
  const split = linkName.split('.');
  if (split.length !== 2) {
    throw invalidParameter(`required interface name format is: name.vlan_id, ex. eth0.10 for vlan 10, instead received ${linkName}`);
  }
  const [parent, vidStr] = split as [string, string];
  // Go's strconv.Atoi: optional sign, decimal digits
  if (!/^[+-]?\d+$/.test(vidStr)) throw invalidParameter(`unable to parse a valid vlan id from: ${vidStr} (ex. eth0.10 for vlan 10)`);
  if (!(await exists(parent))) throw invalidParameter(`-o parent interface was not found on the host: ${parent}`);
  const vid = Number(vidStr);
  if (vid > 4094 || vid < 1) throw invalidParameter(`vlan id must be between 1-4094, received: ${vid}`);
  return { parent, vid };
}

/** Options of one underlay network, parsed (mode, flag: the driver's own). */
export interface UnderlayConfig {
  /** the user's -o parent, '' when none was given */
  parent: string;
  mode: string;
  flag?: string;
  /** --internal, or no parent (the dummy parent reaches nothing): no default route */
  internal: boolean;
}

export abstract class UnderlayDriver implements NetworkDriver {
  abstract readonly type: 'macvlan' | 'ipvlan';
  readonly scope = 'local' as const;
  readonly publishes = false;
  /** 'dm-' (macvlan) or 'di-' (ipvlan): the dummy parent of a network without -o parent */
  protected abstract readonly dummyPrefix: string;
  protected readonly rtnl: Rtnl;
  protected readonly log: Logger;
  /** the driver's networks (id → parent) seen by ensureNetwork, to know a parent's last user */
  private readonly parents = new Map<string, { parent: string; created: boolean }>();
  /** networks between prepare() and the end of their first ensureNetwork(): errors there are the user's */
  private readonly creating = new Set<string>();

  constructor(log: Logger) {
    this.rtnl = Rtnl.open();
    this.log = log;
  }

  close(): void {
    this.rtnl.close();
  }

  firewallView(): FwNetwork | null {
    return null;
  }

  /** Docker's parseNetworkOptions: the driver's options, checked (throws 400 naming the bad value). */
  abstract parseOptions(options: Record<string, string>, internal: boolean): UnderlayConfig;
  /** The driver's checks against the other networks of its type that use the same parent. */
  protected abstract checkShared(cfg: UnderlayConfig, net: NetworkRecord, sameParent: NetworkRecord[]): void;
  /** The port link's kind data (mode, flags). */
  protected abstract linkData(cfg: UnderlayConfig): LinkData[];
  /** Whether the port carries the endpoint's MAC (ipvlan ports share the parent's). */
  protected abstract readonly ownMac: boolean;

  /** The parent link's name: -o parent, else the dummy `dm-<12 hex of the id>`. */
  parentOf(net: NetworkRecord): string {
    return net.options[PARENT_OPT] || this.dummyPrefix + net.id.slice(0, 12);
  }

  prepare(net: NetworkRecord, others: NetworkRecord[]): void {
    const cfg = this.parseOptions(net.options, net.internal);
    const parent = this.parentOf(net);
    this.checkShared(cfg, net, others.filter((o) => o.driver === this.type && o.id !== net.id && this.parentOf(o) === parent));
    this.creating.add(net.id);
  }

  private async linkExists(name: string): Promise<boolean> {
    return (await this.rtnl.getLink(name)) !== null;
  }

  /**
   * The parent link: there already, or created — a dummy for a network without -o parent, an 802.1Q
   * sub-interface for `-o parent=eth0.10`. At a daemon restart a parent the driver made is made again
   * if it is gone, and a missing user-given parent is logged (the network's endpoints fail until it is
   * back) rather than stopping the daemon.
   */
  async ensureNetwork(net: NetworkRecord): Promise<void> {
    const atCreate = this.creating.has(net.id);
    try {
      const parent = this.parentOf(net);
      const sharedCreated = [...this.parents.values()].some((p) => p.parent === parent && p.created);
      let created = net.driverData?.createdParent === 'true' || sharedCreated;
      if (!(await this.linkExists(parent))) {
        if (!atCreate && !created) {
          this.log.warn({ network: net.name, parent }, `the parent interface ${parent} of ${this.type} network ${net.name} is not on the host`);
          this.parents.set(net.id, { parent, created });
          return;
        }
        if (!net.options[PARENT_OPT]) await this.createDummy(parent, net);
        else await this.createVlan(parent);
        created = true;
      }
      if (created && atCreate) net.driverData = { ...(net.driverData ?? {}), createdParent: 'true' };
      this.parents.set(net.id, { parent, created });
    } finally {
      this.creating.delete(net.id);
    }
  }

  private async createDummy(name: string, net: NetworkRecord): Promise<void> {
    try {
      await this.rtnl.createLink({ name, kind: 'dummy', up: true });
    } catch (e) {
      if (missingKind(e)) {
        throw systemError(`failed to create the dummy parent link ${name} of ${this.type} network ${net.name}: operation not supported: ${KERNEL_SUPPORT.dummy}; give the network a parent interface with -o parent=IFACE`);
      }
      throw systemError(`failed to create the dummy parent link ${name}: ${(e as Error).message}`);
    }
  }

  /** Docker's createVlanLink: only `name.vid` names are made; any other missing parent is an error. */
  private async createVlan(name: string): Promise<void> {
    if (!name.includes('.')) throw invalidParameter(`invalid subinterface vlan name ${name}, example formatting is eth0.10`);
    const { parent, vid } = await parseVlan(name, (n) => this.linkExists(n));
    const lower = await this.rtnl.getLink(parent);
    if (!lower) throw invalidParameter(`failed to find master interface ${parent} on the Docker host`);
    try {
      await this.rtnl.createLink({ name, kind: 'vlan', link: lower.index, data: vlanData(vid), up: true });
    } catch (e) {
      if (missingKind(e)) throw systemError(`failed to create ${name} vlan link: operation not supported: ${KERNEL_SUPPORT.vlan}`);
      if ((e as ErrnoError).errno === EEXIST) return;
      throw systemError(`failed to create ${name} vlan link: ${(e as Error).message}`);
    }
  }

  /** Deletes the parent the driver created when this network was its last user (Docker's rule). */
  async deleteNetwork(net: NetworkRecord): Promise<void> {
    const mine = this.parents.get(net.id);
    this.parents.delete(net.id);
    this.creating.delete(net.id);
    const parent = this.parentOf(net);
    const created = net.driverData?.createdParent === 'true' || !!mine?.created;
    if (!created || [...this.parents.values()].some((p) => p.parent === parent)) return;
    // only names the driver makes: the network's dummy, or a name.vid sub-interface
    if (parent !== this.dummyPrefix + net.id.slice(0, 12) && !/^[^.]+\.\d+$/.test(parent)) return;
    const link = await this.rtnl.getLink(parent);
    if (!link || (link.kind && link.kind !== 'dummy' && link.kind !== 'vlan')) return;
    await this.rtnl.deleteLink(link.index).catch((e) => this.log.warn({ link: parent, err: String(e) }, `the parent link ${parent} was not deleted`));
  }

  /**
   * The endpoint: a port link on the parent, created inside the container namespace under its final
   * name, then its addresses and (unless the network is internal) the default route via the network's
   * gateway. On failure the port is deleted again.
   */
  async join(net: NetworkRecord, ep: EndpointRecord, netnsPath: string, defaultRoute: boolean): Promise<void> {
    const cfg = this.parseOptions(net.options, net.internal);
    const parentName = this.parentOf(net);
    const parent = await this.rtnl.getLink(parentName);
    if (!parent) throw systemError(`the requested parent interface ${parentName} was not found on the Docker host`);
    if (!this.ownMac) {
      // a MAC other than the one derived from the address was asked for (--mac-address): Docker refuses it
      if (ep.mac && ep.ipv4 && ep.mac !== macFromIpv4(ep.ipv4)) throw invalidParameter(`${this.type} interfaces do not support custom mac address assignment`);
      ep.mac = '';
    }
    try {
      await this.rtnl.createLink({ name: ep.ifname, kind: this.type, link: parent.index, netnsPath, mac: this.ownMac ? ep.mac || undefined : undefined, data: this.linkData(cfg) });
    } catch (e) {
      if (missingKind(e)) throw systemError(`failed to create the ${this.type} port: operation not supported: ${KERNEL_SUPPORT[this.type]}`);
      // e.g. EBUSY: a macvlan and an ipvlan on one parent (the kernel allows one kind per parent)
      throw systemError(`failed to create the ${this.type} port: ${(e as Error).message}`);
    }
    // no host side: the namespace is where the port is unplugged from (the bridge's hostVeth has no use)
    ep.hostVeth = undefined;
    ep.driverData = { ...(ep.driverData ?? {}), netnsPath };
    if (cfg.internal) {
      // Docker sets no gateway on an internal (or parent-less) network's endpoint
      ep.gateway4 = undefined;
      ep.gateway6 = undefined;
    }
    try {
      await this.configure(cfg, ep, netnsPath, defaultRoute);
      if (!this.ownMac) {
        const r = Rtnl.open(netnsPath);
        try { ep.mac = (await r.getLink(ep.ifname))?.mac ?? ''; } finally { r.close(); }
      }
    } catch (e) {
      await this.unplug(ep, netnsPath).catch(() => {});
      throw e;
    }
  }

  /** Addresses and routes of the port (ipvlan's L3 modes override the routes). */
  protected async configure(cfg: UnderlayConfig, ep: EndpointRecord, netnsPath: string, defaultRoute: boolean): Promise<void> {
    await configureInterface(netnsPath, endpointInterface(ep, defaultRoute, cfg.internal));
  }

  private async unplug(ep: EndpointRecord, netnsPath: string): Promise<void> {
    if (!netnsExists(netnsPath)) return;
    const r = Rtnl.open(netnsPath);
    try {
      await r.deleteLink(ep.ifname);
    } finally {
      r.close();
    }
  }

  /** The port lives only in the container namespace: deleted there, or with the namespace itself. */
  async leave(_net: NetworkRecord | undefined, ep: EndpointRecord, opts: { sandboxGoing?: boolean } = {}): Promise<void> {
    const ns = ep.driverData?.netnsPath;
    if (opts.sandboxGoing || !ns) return;
    await this.unplug(ep, ns);
  }
}

/** A conflict with another network on the same parent, as a 409 (Docker answers these with a plain error). */
export const parentConflict = (msg: string) => new LoomError(409, msg);
