// What a network driver is to the controller (libnetwork's driverapi, reduced to what loom needs). The
// controller (src/core/networks.ts) owns records, IPAM and the order of steps; a driver owns the kernel
// side of its networks and endpoints, and nothing else: it never touches the store or calls back up.
import type { EndpointRecord, NetworkRecord } from '../core/types.ts';
import type { FwNetwork } from '../firewall/model.ts';

/**
 * sandboxGoing: the container namespace is deleted next (the kernel takes the veth with it).
 * netnsPath: the container stays: a driver may take its end out of use at once (down, renamed) and leave
 * the device's deletion to the background (BridgeDriver.leave).
 */
export interface LeaveOptions { sandboxGoing?: boolean; netnsPath?: string }

export interface NetworkDriver {
  /** the name `network create -d` takes ('bridge', 'macvlan', 'overlay', a plugin's name...) */
  readonly type: string;
  /** 'local': this host only; 'global': the network exists on every host of a cluster */
  readonly scope: 'local' | 'swarm' | 'global';
  /**
   * Checks and completes a new network's driver options before anything exists (throws invalidParameter
   * naming the bad value); may set driver-owned fields such as `bridge`. `others` are the existing networks.
   */
  prepare(net: NetworkRecord, others: NetworkRecord[]): void | Promise<void>;
  /** Creates the kernel side of a network, or brings it back after a restart (idempotent). */
  ensureNetwork(net: NetworkRecord): Promise<void>;
  /** Removes the kernel side; absent is fine. */
  deleteNetwork(net: NetworkRecord): Promise<void>;
  /** Plugs an endpoint into a container namespace; on failure nothing of it is left in the kernel. */
  join(net: NetworkRecord, ep: EndpointRecord, netnsPath: string, defaultRoute: boolean): Promise<void>;
  /** Unplugs an endpoint (idempotent). sandboxGoing: the namespace is deleted next, with what is in it. */
  leave(net: NetworkRecord | undefined, ep: EndpointRecord, opts: LeaveOptions): Promise<void>;
  /** The firewall's view of a network (bridge-like drivers), or null when loom's firewall has no part in it. */
  firewallView(net: NetworkRecord): FwNetwork | null;
  /** Whether `-p` publishing and --link apply to endpoints of this driver (Docker: bridge only). */
  readonly publishes: boolean;
  close(): void;
}

/** An endpoint's addresses in the CIDR form rtnl takes (IPv4 first). */
export function endpointAddresses(ep: EndpointRecord): string[] {
  const out: string[] = [];
  if (ep.ipv4) out.push(`${ep.ipv4}/${ep.prefix4}`);
  if (ep.ipv6) out.push(`${ep.ipv6}/${ep.prefix6}`);
  return out;
}

/**
 * The container-side settings of an endpoint: its addresses, and the default routes through its gateways
 * when it carries the container's default route and its network is not internal.
 */
export function endpointInterface(ep: EndpointRecord, defaultRoute: boolean, internal: boolean) {
  const route = defaultRoute && !internal;
  return { ifname: ep.ifname, addresses: endpointAddresses(ep), gateway4: route ? ep.gateway4 : undefined, gateway6: route ? ep.gateway6 : undefined, loUp: true };
}
