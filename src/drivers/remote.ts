// Remote network drivers: a legacy plugin implementing "NetworkDriver" (libnetwork's drivers/remote),
// driven over the plugin protocol. The plugin owns its networks and makes each endpoint's link in the
// host namespace; loom owns the order of calls, the addresses (IPAM) and the container side: on Join
// it moves the plugin's SrcName link into the container namespace as DstPrefix+N (the one place where
// a link must be moved: it exists before loom knows of it), sets its MAC, addresses, default route
// (the Join's Gateway) and StaticRoutes, as libnetwork's sandbox does. Leaving moves the link back
// under its SrcName, so the plugin's DeleteEndpoint finds it where it made it.
import { Rtnl, configureInterface, OWN_NETNS } from '../kernel/rtnl.ts';
import { netnsExists } from '../kernel/netns.ts';
import type { EndpointRecord, NetworkRecord } from '../core/types.ts';
import { parseCidr as ipamCidr } from '../ipam/ipam.ts';
import { LoomError } from '../util/errors.ts';
import type { NetworkDriver } from './driver.ts';
import type { Logger } from '../util/log.ts';
import { PluginCallError, type PluginClient } from '../plugins/client.ts';
import net from 'node:net';

/** libnetwork's types.NEXTHOP / types.CONNECTED route types of StaticRoutes */
const NEXTHOP = 0, CONNECTED = 1;

export interface JoinResponse {
  InterfaceName?: { SrcName?: string; DstPrefix?: string; DstName?: string } | null;
  Gateway?: string;
  GatewayIPv6?: string;
  StaticRoutes?: { Destination?: string; RouteType?: number; NextHop?: string }[] | null;
  DisableGatewayService?: boolean;
}

export interface EndpointInterface { Address?: string; AddressIPv6?: string; MacAddress?: string }

/** The driver's requests, as libnetwork's drivers/remote/api sends them. */
export class RemoteDriverApi {
  readonly name: string;
  private readonly client: PluginClient;
  constructor(name: string, client: PluginClient) {
    this.name = name;
    this.client = client;
  }

  /**
   * NetworkDriver.<method>. An answer with {"Err": ...} is Docker's "remote: <Err>"; a non-200 one
   * "NetworkDriver.<method>: <Err>"; both name the plugin at the end and are 500s, as in Docker.
   */
  async call<T extends object>(method: string, args?: unknown): Promise<T & { Err?: string }> {
    let res: T & { Err?: string };
    try {
      res = await this.client.call<T & { Err?: string }>(`NetworkDriver.${method}`, args);
    } catch (e) {
      const err = new LoomError(500, `${(e as Error).message} (network plugin ${this.name})`) as LoomError & { pluginStatus?: number };
      if (e instanceof PluginCallError) err.pluginStatus = e.status;
      throw err;
    }
    if (res && typeof res.Err === 'string' && res.Err) throw new LoomError(500, `remote: ${res.Err} (network plugin ${this.name})`);
    return res ?? ({} as T);
  }

  /** GetCapabilities: Scope local|global (required), ConnectivityScope (defaults to Scope). */
  async capabilities(): Promise<{ scope: 'local' | 'global'; connectivityScope: 'local' | 'global' }> {
    const c = await this.call<{ Scope?: string; ConnectivityScope?: string }>('GetCapabilities');
    if (c.Scope !== 'local' && c.Scope !== 'global') throw new LoomError(500, `invalid capability: expecting 'local' or 'global', got ${c.Scope ?? ''} (network plugin ${this.name})`);
    const cs = c.ConnectivityScope || c.Scope;
    if (cs !== 'local' && cs !== 'global') throw new LoomError(500, `invalid capability: expecting 'local' or 'global', got ${c.Scope} (network plugin ${this.name})`);
    return { scope: c.Scope, connectivityScope: cs };
  }

  /** EndpointOperInfo: the plugin's free-form facts about an endpoint. */
  async endpointOperInfo(networkId: string, endpointId: string): Promise<Record<string, unknown>> {
    const r = await this.call<{ Value?: Record<string, unknown> | null }>('EndpointOperInfo', { NetworkID: networkId, EndpointID: endpointId });
    return r.Value ?? {};
  }
}

/** libnetwork's IPAMData as JSON: the pool and gateway in CIDR form, the address space of the network. */
export function ipamData(net: NetworkRecord, family: 4 | 6): { AddressSpace: string; Pool: string; Gateway?: string; AuxAddresses?: Record<string, string> }[] {
  return net.ipam.config.filter((c) => (c.Subnet.includes(':') ? 6 : 4) === family).map((c) => {
    const prefix = ipamCidr(c.Subnet).prefix;
    return {
      AddressSpace: net.ipamPools?.length ? 'RemoteDefault' : 'LocalDefault',
      Pool: c.Subnet,
      ...(c.Gateway ? { Gateway: `${c.Gateway}/${prefix}` } : {}),
      ...(c.AuxiliaryAddresses ? { AuxAddresses: Object.fromEntries(Object.entries(c.AuxiliaryAddresses).map(([k, v]) => [k, `${v}/${prefix}`])) } : {}),
    };
  });
}

/** The generic options libnetwork hands a driver's CreateNetwork. */
export function createNetworkOptions(net: NetworkRecord): Record<string, unknown> {
  return {
    'com.docker.network.enable_ipv4': true,
    'com.docker.network.enable_ipv6': net.enableIPv6,
    'com.docker.network.generic': { ...net.options },
    ...(net.internal ? { 'com.docker.network.internal': true } : {}),
  };
}

const macFromV4 = (ip: string) => `02:42:${ip.split('.').map((b) => Number(b).toString(16).padStart(2, '0')).join(':')}`;

export class RemoteDriver implements NetworkDriver {
  readonly type: string;
  readonly scope: 'local' | 'global';
  readonly publishes = false;
  readonly api: RemoteDriverApi;
  private readonly rtnl: Rtnl;
  private readonly log: Logger;

  constructor(api: RemoteDriverApi, scope: 'local' | 'global', log: Logger) {
    this.api = api;
    this.type = api.name;
    this.scope = scope;
    this.log = log;
    this.rtnl = Rtnl.open();
  }

  /** Asks the plugin for its capabilities and makes its driver. */
  static async load(name: string, client: PluginClient, log: Logger): Promise<RemoteDriver> {
    const api = new RemoteDriverApi(name, client);
    const caps = await api.capabilities();
    return new RemoteDriver(api, caps.scope, log);
  }

  close(): void {
    this.rtnl.close();
  }

  firewallView(): null {
    return null;
  }

  /** CreateNetwork: the plugin checks the options and makes its side of the network (once, at create). */
  async prepare(n: NetworkRecord): Promise<void> {
    await this.api.call('CreateNetwork', { NetworkID: n.id, Options: createNetworkOptions(n), IPv4Data: ipamData(n, 4), IPv6Data: ipamData(n, 6) });
  }

  /** The plugin keeps its own state across loom's restarts: nothing to bring back. */
  async ensureNetwork(): Promise<void> {}

  async deleteNetwork(n: NetworkRecord): Promise<void> {
    await this.api.call('DeleteNetwork', { NetworkID: n.id });
  }

  async join(n: NetworkRecord, ep: EndpointRecord, netnsPath: string, defaultRoute: boolean): Promise<void> {
    // a MAC goes to the plugin only when the user asked for one (libnetwork leaves it to the driver)
    const userMac = ep.mac && !(ep.ipv4 && ep.mac === macFromV4(ep.ipv4)) ? ep.mac : '';
    const iface: EndpointInterface = {
      Address: ep.ipv4 ? `${ep.ipv4}/${ep.prefix4}` : '',
      AddressIPv6: ep.ipv6 ? `${ep.ipv6}/${ep.prefix6}` : '',
      MacAddress: userMac,
    };
    ep.hostVeth = undefined;
    ep.driverData = { netnsPath };
    const created = await this.api.call<{ Interface?: EndpointInterface | null }>('CreateEndpoint', { NetworkID: n.id, EndpointID: ep.id, Interface: iface, Options: {} });
    ep.driverData.created = 'true';
    let mac = userMac;
    try {
      const back = created.Interface;
      if (back) {
        const present = (mine: string | undefined, theirs: string | undefined, what: string) => {
          if (theirs && mine && theirs.toLowerCase() !== mine.toLowerCase()) {
            throw new LoomError(500, `driver modified interface ${what}: endpoint interface ${what} present (${mine}). Cannot be modified with (${theirs}).`);
          }
        };
        present(iface.Address, back.Address, 'address');
        present(iface.AddressIPv6, back.AddressIPv6, 'address');
        present(userMac, back.MacAddress, 'MAC address');
        if (back.MacAddress) mac = back.MacAddress;
      }
      const joined = await this.api.call<JoinResponse>('Join', { NetworkID: n.id, EndpointID: ep.id, SandboxKey: netnsPath, Options: {} });
      ep.driverData.joined = 'true';
      await this.plug(n, ep, netnsPath, defaultRoute, joined, mac);
      if (defaultRoute && !n.internal) {
        // Docker asks the gateway endpoint's driver to program external connectivity; 404 = not offered
        await this.api.call('ProgramExternalConnectivity', { NetworkID: n.id, EndpointID: ep.id, Options: {} }).then(
          () => { ep.driverData!.external = 'true'; },
          (e) => { if ((e as { pluginStatus?: number }).pluginStatus !== 404) throw e; },
        );
      }
    } catch (e) {
      const undo = await this.unplugAll(n.id, ep).then(() => 'rolled back', (u) => `failed to roll back: ${(u as Error).message}`);
      throw new LoomError((e as LoomError).status ?? 500, `${(e as Error).message}; ${undo}`);
    }
  }

  /** The container side of a Join: the plugin's link moved in, renamed, addressed and routed. */
  private async plug(n: NetworkRecord, ep: EndpointRecord, netnsPath: string, defaultRoute: boolean, res: JoinResponse, mac: string): Promise<void> {
    const gw4 = res.Gateway || undefined;
    const gw6 = res.GatewayIPv6 || undefined;
    if (gw4 && net.isIP(gw4) !== 4) throw new LoomError(500, `unable to parse Gateway "${gw4}"`);
    if (gw6 && net.isIP(gw6) !== 6) throw new LoomError(500, `unable to parse GatewayIPv6 "${gw6}"`);
    const routes = (res.StaticRoutes ?? []).map((r) => {
      if (r.NextHop && !net.isIP(r.NextHop)) throw new LoomError(500, `failed to parse nexthop IP ${r.NextHop}`);
      if (r.Destination) {
        try { ipamCidr(r.Destination); } catch { throw new LoomError(500, `invalid CIDR address: ${r.Destination}`); }
      }
      return r;
    });
    ep.gateway4 = gw4;
    ep.gateway6 = gw6;
    const names = res.InterfaceName;
    // no interface named: the plugin set the sandbox up itself (it was given the SandboxKey)
    if (!names?.SrcName) return;
    const src = await this.rtnl.getLink(names.SrcName);
    if (!src) throw new LoomError(500, `failed to set interface name: the plugin's interface ${names.SrcName} is not on the host`);
    const dst = await this.dstName(netnsPath, names.DstPrefix || 'eth', ep.ifname);
    await this.rtnl.moveLink(src.index, netnsPath, dst);
    ep.driverData = { ...ep.driverData, srcName: names.SrcName };
    ep.ifname = dst;
    const inNs = Rtnl.open(netnsPath);
    try {
      const link = await inNs.getLink(dst);
      if (!link) throw new LoomError(500, `interface ${dst} vanished from ${netnsPath}`);
      if (mac) await inNs.setLink(link.index, { mac });
      const addresses: string[] = [];
      if (ep.ipv4) addresses.push(`${ep.ipv4}/${ep.prefix4}`);
      if (ep.ipv6) addresses.push(`${ep.ipv6}/${ep.prefix6}`);
      const route = defaultRoute && !n.internal;
      await configureInterface(netnsPath, { ifname: dst, addresses, gateway4: route ? gw4 : undefined, gateway6: route ? gw6 : undefined, loUp: true });
      for (const r of routes) {
        const dest = r.Destination || (r.NextHop?.includes(':') ? '::/0' : '0.0.0.0/0');
        const dstSpec = /^(0\.0\.0\.0|::)\/0$/.test(dest) ? 'default' : dest;
        const family = dest.includes(':') ? 6 : 4;
        if (r.RouteType === CONNECTED || !r.NextHop) await inNs.addRoute({ dst: dstSpec, index: link.index, family, replace: true });
        else if (r.RouteType === NEXTHOP || r.RouteType === undefined) await inNs.addRoute({ dst: dstSpec, gateway: r.NextHop, index: link.index, family, replace: true });
      }
      ep.mac = mac || (await inNs.getLink(link.index))?.mac || '';
    } finally {
      inNs.close();
    }
  }

  /** DstPrefix + the lowest index free in the namespace; `eth` follows loom's own numbering (ep.ifname). */
  private async dstName(netnsPath: string, prefix: string, planned: string): Promise<string> {
    const r = Rtnl.open(netnsPath);
    try {
      const used = new Set((await r.listLinks()).map((l) => l.name));
      if (planned.startsWith(prefix) && /^\d+$/.test(planned.slice(prefix.length)) && !used.has(planned)) return planned;
      for (let i = 0; ; i++) if (!used.has(`${prefix}${i}`)) return `${prefix}${i}`;
    } finally {
      r.close();
    }
  }

  /** Moves the plugin's link back (as SrcName), then RevokeExternalConnectivity, Leave, DeleteEndpoint. */
  private async unplugAll(networkId: string, ep: EndpointRecord): Promise<void> {
    const d = ep.driverData ?? {};
    const errors: Error[] = [];
    const step = async (fn: () => Promise<unknown>) => {
      try { await fn(); } catch (e) { errors.push(e as Error); }
    };
    if (d.srcName && d.netnsPath && netnsExists(d.netnsPath)) {
      await step(async () => {
        const r = Rtnl.open(d.netnsPath);
        try {
          const link = await r.getLink(ep.ifname);
          if (link) await r.setLink(link.index, { up: false }).then(() => r.moveLink(link.index, OWN_NETNS, d.srcName));
        } finally {
          r.close();
        }
      });
    }
    delete d.srcName;
    const ids = { NetworkID: networkId, EndpointID: ep.id };
    if (d.external) await step(() => this.api.call('RevokeExternalConnectivity', ids).catch((e) => { if ((e as { pluginStatus?: number }).pluginStatus !== 404) throw e; }));
    delete d.external;
    if (d.joined) await step(() => this.api.call('Leave', ids));
    delete d.joined;
    if (d.created) await step(() => this.api.call('DeleteEndpoint', ids));
    delete d.created;
    if (errors.length) throw errors[0];
  }

  /** Idempotent: each step runs only if its counterpart did; every step is tried, the first failure thrown. */
  async leave(n: NetworkRecord | undefined, ep: EndpointRecord): Promise<void> {
    await this.unplugAll(n?.id ?? ep.networkId, ep);
  }
}
