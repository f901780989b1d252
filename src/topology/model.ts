// The live topology of one host as plain data (GET /loom/topology): uplinks, networks with their bridges,
// gateways and subnets, containers with their endpoints (the veth pair's host name ↔ the name inside),
// addresses, MACs, published ports and links. Built from the controller's records and the firewall's view
// of each network (icc, masquerade, internal as they are applied), so the picture is what loom enforces.
// Pure: the caller gathers the inputs (see gatherTopology in src/api/routes/loom.ts).
import type { ContainerRecord, NetworkRecord } from '../core/types.ts';
import type { FwNetwork } from '../firewall/model.ts';

export interface TopoUplink { name: string; addresses: string[] }

export interface TopoNetwork {
  id: string;
  name: string;
  driver: string;
  scope: string;
  /** the Linux bridge (bridge driver), the overlay namespace's br0, or undefined (macvlan, ipvlan, host, null) */
  bridge?: string;
  subnets: string[];
  gateways: string[];
  internal: boolean;
  /** inter-container communication, as the firewall applies it (undefined where loom's firewall has no part) */
  icc?: boolean;
  masquerade?: boolean;
  isDefault: boolean;
  /** macvlan/ipvlan parent interface */
  parent?: string;
  /** overlay: VXLAN id */
  vni?: string;
  /** overlay: this host's tunnel endpoint and the remote hosts' endpoints on this network (from the cluster store) */
  tunnel?: { local?: string; remotes: { host: string; vtep: string; endpoints: { name: string; ipv4: string; mac: string }[] }[] };
}

export interface TopoEndpoint {
  network: string;
  networkId: string;
  ifname: string;
  hostVeth?: string;
  mac: string;
  ipv4?: string;
  prefix4?: number;
  gateway4?: string;
  ipv6?: string;
  prefix6?: number;
  aliases: string[];
}

export interface TopoPort { proto: string; hostIp: string; hostPort: number; containerPort: number }

export interface TopoContainer {
  id: string;
  name: string;
  state: string;
  /** bridge, host, none, container:<id>, or a network's name */
  networkMode: string;
  endpoints: TopoEndpoint[];
  ports: TopoPort[];
  /** --link NAME:ALIAS */
  links: { name: string; alias: string }[];
  /** names the embedded DNS answers for it on user-defined networks */
  dnsNames: string[];
}

export interface Topology {
  host: { name: string; uplinks: TopoUplink[] };
  networks: TopoNetwork[];
  containers: TopoContainer[];
}

export interface TopologyInput {
  hostName: string;
  uplinks: TopoUplink[];
  networks: NetworkRecord[];
  containers: ContainerRecord[];
  /** the firewall's per-network view (icc, masquerade, internal as applied), by network id */
  firewall: FwNetwork[];
  /** overlay: endpoints on other hosts, per network id (the cluster's view), and --cluster-advertise */
  remoteEndpoints?: (networkId: string) => { host: string; vtep: string; name?: string; container?: string; ipv4: string; mac: string }[];
  advertise?: string;
}

function parseLinks(links: string[] | null | undefined): { name: string; alias: string }[] {
  return (links ?? []).map((l) => {
    const [name, alias] = l.split(':');
    return { name: name!.replace(/^\//, ''), alias: (alias ?? name!).replace(/^.*\//, '') };
  });
}

export function buildTopology(input: TopologyInput): Topology {
  const fw = new Map(input.firewall.map((f) => [f.id, f]));
  const networks: TopoNetwork[] = input.networks.map((n) => {
    const f = fw.get(n.id);
    const t: TopoNetwork = {
      id: n.id, name: n.name, driver: n.driver, scope: n.scope,
      subnets: n.ipam.config.map((c) => c.Subnet),
      gateways: n.ipam.config.flatMap((c) => (c.Gateway ? [c.Gateway] : [])),
      internal: n.internal, isDefault: !!n.isDefault,
    };
    if (n.bridge) t.bridge = n.bridge;
    if (n.driver === 'overlay') t.bridge = 'br0';
    if (f) {
      t.icc = f.icc;
      t.masquerade = f.masquerade;
    }
    if (n.options.parent) t.parent = n.options.parent;
    const vni = n.options['com.docker.network.driver.overlay.vxlanid_list'] ?? n.driverData?.vni;
    if (vni) t.vni = vni;
    if (n.driver === 'overlay') {
      const byHost = new Map<string, { host: string; vtep: string; endpoints: { name: string; ipv4: string; mac: string }[] }>();
      for (const e of input.remoteEndpoints?.(n.id) ?? []) {
        const h = byHost.get(e.host) ?? byHost.set(e.host, { host: e.host, vtep: e.vtep, endpoints: [] }).get(e.host)!;
        h.endpoints.push({ name: e.name ?? e.container?.slice(0, 12) ?? '', ipv4: e.ipv4, mac: e.mac });
      }
      t.tunnel = { ...(input.advertise ? { local: input.advertise } : {}), remotes: [...byHost.values()].sort((a, b) => a.vtep.localeCompare(b.vtep)) };
    }
    return t;
  }).sort((a, b) => a.name.localeCompare(b.name));
  const userNet = new Set(input.networks.filter((n) => !n.isDefault && n.driver !== 'host' && n.driver !== 'null').map((n) => n.id));
  const containers: TopoContainer[] = input.containers.map((c) => {
    const running = c.state.Running;
    const endpoints: TopoEndpoint[] = running ? Object.values(c.endpoints).map((e) => {
      const t: TopoEndpoint = { network: e.networkName, networkId: e.networkId, ifname: e.ifname, mac: e.mac, aliases: e.aliases ?? [] };
      if (e.hostVeth) t.hostVeth = e.hostVeth;
      if (e.ipv4) Object.assign(t, { ipv4: e.ipv4, prefix4: e.prefix4, gateway4: e.gateway4 });
      if (e.ipv6) Object.assign(t, { ipv6: e.ipv6, prefix6: e.prefix6 });
      return t;
    }).sort((a, b) => a.ifname.localeCompare(b.ifname, undefined, { numeric: true })) : [];
    const onUser = endpoints.some((e) => userNet.has(e.networkId));
    const dnsNames = onUser ? [...new Set([c.name, c.id.slice(0, 12), ...endpoints.flatMap((e) => e.aliases)])] : [];
    return {
      id: c.id, name: c.name, state: c.state.Status, networkMode: c.networkMode, endpoints,
      ports: running ? (c.published ?? []).map((p) => ({ proto: p.proto, hostIp: p.hostIp, hostPort: p.hostPort, containerPort: p.containerPort })) : [],
      links: parseLinks(c.hostConfig.Links), dnsNames,
    };
  }).sort((a, b) => a.name.localeCompare(b.name));
  return { host: { name: input.hostName, uplinks: input.uplinks }, networks, containers };
}

/** Containers drawn under a network: those with an endpoint on it. */
export function membersOf(t: Topology, networkId: string): TopoContainer[] {
  return t.containers.filter((c) => c.endpoints.some((e) => e.networkId === networkId));
}

/** "8080->80/tcp" or "127.0.0.1:8080->80/tcp", as docker ps shows ports. */
export function portText(p: TopoPort): string {
  const host = p.hostIp && p.hostIp !== '0.0.0.0' ? `${p.hostIp.includes(':') ? `[${p.hostIp}]` : p.hostIp}:` : '';
  return `${host}${p.hostPort}->${p.containerPort}/${p.proto}`;
}
