// The bridge driver: one Linux bridge per network (docker0 model), one veth pair per endpoint whose
// container end is created directly inside the container's namespace (never moved: ~18 ms a move here).
// Kernel work goes through one in-process rtnetlink socket in the daemon's namespace; firewall state is
// handed to the Firewall as plain data.
import { Rtnl, configureInterface } from '../kernel/rtnl.ts';
import fs from 'node:fs';
import type { EndpointRecord, NetworkRecord } from '../core/types.ts';
import type { FwNetwork } from '../firewall/model.ts';
import { parseCidr } from '../ipam/ipam.ts';
import { systemError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';

export const OPT_BRIDGE_NAME = 'com.docker.network.bridge.name';
export const OPT_ICC = 'com.docker.network.bridge.enable_icc';
export const OPT_MASQ = 'com.docker.network.bridge.enable_ip_masquerade';
export const OPT_HOST_BINDING = 'com.docker.network.bridge.host_binding_ipv4';
export const OPT_MTU = 'com.docker.network.driver.mtu';

const truthy = (v: string | undefined, dflt: boolean) => (v === undefined ? dflt : !/^(false|0|no)$/i.test(v));

// The daemon's own namespace: /proc/sys/net is that of the thread opening it, and the daemon runs in its host.
function writeProcSys(key: string, value: string): void {
  fs.writeFileSync(`/proc/sys/${key}`, value);
}

export class BridgeDriver {
  private readonly rtnl: Rtnl;
  private readonly log: Logger;
  private readonly indexes = new Map<string, number>();
  private forwardingOn = false;
  private readonly defaults: { icc: boolean; ipMasq: boolean };

  constructor(log: Logger, defaults: { icc: boolean; ipMasq: boolean }) {
    this.rtnl = Rtnl.open();
    this.log = log;
    this.defaults = defaults;
  }

  close(): void {
    this.rtnl.close();
  }

  /** The firewall's view of a network: plain data. */
  firewallView(net: NetworkRecord): FwNetwork {
    const subnets = net.ipam.config.map((c) => c.Subnet);
    return {
      id: net.id,
      bridge: net.bridge!,
      subnets4: subnets.filter((s) => !s.includes(':')),
      subnets6: subnets.filter((s) => s.includes(':')),
      masquerade: truthy(net.options[OPT_MASQ], true) && (net.isDefault ? this.defaults.ipMasq : true),
      icc: truthy(net.options[OPT_ICC], true) && (net.isDefault ? this.defaults.icc : true),
      internal: net.internal,
      hostBindingIpv4: net.options[OPT_HOST_BINDING],
    };
  }

  mtu(net: NetworkRecord): number | undefined {
    const m = net.options[OPT_MTU];
    return m ? Number(m) : undefined;
  }

  /** Creates (or adopts, after a restart) the bridge device with its gateway addresses, up. Idempotent. */
  async ensureNetwork(net: NetworkRecord): Promise<void> {
    const name = net.bridge!;
    let link = await this.rtnl.getLink(name);
    let created = false;
    if (!link) {
      await this.rtnl.createBridge(name, { mtu: this.mtu(net), up: true });
      created = true;
      link = await this.rtnl.getLink(name);
      if (!link) throw systemError(`bridge ${name} vanished after creation`);
    } else if (link.kind && link.kind !== 'bridge') {
      throw systemError(`cannot use ${name} for network ${net.name}: it exists and is a ${link.kind} device`);
    }
    try {
      for (const c of net.ipam.config) {
        if (!c.Gateway) continue;
        const prefix = parseCidr(c.Subnet).prefix;
        await this.rtnl.addAddress(link.index, `${c.Gateway}/${prefix}`, { ignoreExisting: true, nodad: true });
      }
      if (!link.up) await this.rtnl.setLink(link.index, { up: true });
    } catch (e) {
      if (created) await this.rtnl.deleteLink(name).catch(() => {});
      throw e;
    }
    this.indexes.set(name, link.index);
    if (!this.forwardingOn) {
      writeProcSys('net/ipv4/ip_forward', '1');
      this.forwardingOn = true;
    }
    // Published ports are DNATed from 127.0.0.1 too (no userland proxy): the bridge must route 127/8 sources.
    writeProcSys(`net/ipv4/conf/${name}/route_localnet`, '1');
    if (net.enableIPv6) {
      try { writeProcSys('net/ipv6/conf/all/forwarding', '1'); } catch (e) { this.log.warn({ err: String(e) }, 'cannot enable IPv6 forwarding'); }
    }
  }

  async deleteNetwork(net: NetworkRecord): Promise<void> {
    await this.rtnl.deleteLink(net.bridge!);
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
    const master = await this.bridgeIndex(net);
    const mtu = this.mtu(net);
    await this.rtnl.createVeth({ name: ep.hostVeth!, peerName: ep.ifname, peerNetnsPath: netnsPath, peerMac: ep.mac, mtu, master, up: true });
    try {
      const addresses: string[] = [];
      if (ep.ipv4) addresses.push(`${ep.ipv4}/${ep.prefix4}`);
      if (ep.ipv6) addresses.push(`${ep.ipv6}/${ep.prefix6}`);
      await configureInterface(netnsPath, {
        ifname: ep.ifname,
        addresses,
        gateway4: defaultRoute && !net.internal ? ep.gateway4 : undefined,
        gateway6: defaultRoute && !net.internal ? ep.gateway6 : undefined,
        mtu,
        loUp: true,
      });
    } catch (e) {
      await this.rtnl.deleteLink(ep.hostVeth!).catch(() => {});
      throw e;
    }
  }

  /** Idempotent: deleting the host end removes the pair; a missing device is fine. */
  async leave(ep: EndpointRecord): Promise<void> {
    if (ep.hostVeth) await this.rtnl.deleteLink(ep.hostVeth);
  }

  async linkExists(name: string): Promise<boolean> {
    return (await this.rtnl.getLink(name)) !== null;
  }

  async hostRoutes(): Promise<string[]> {
    const routes = await this.rtnl.listRoutes(4);
    return routes.filter((r) => r.dst !== 'default').map((r) => r.dst);
  }
}
