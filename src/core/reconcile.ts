// `loom system reconcile`: the kernel checked against what loom's records say, every difference repaired
// and reported. What is checked, in the order a repair needs it:
//   1. each bridge network's device: present, up, with its gateway addresses (recreated by its driver);
//   2. each running container with a namespace of its own: the namespace file (mounted again from the
//      container's process), each endpoint's interface (re-plugged when gone), its addresses, the default
//      route, the host end of its veth on the right bridge, and its embedded DNS sockets;
//   3. loom's nftables tables: listed, put back whole in one transaction, listed again: the lines that
//      differ are the differences (nft's canonical listing makes equal states print alike).
import type { ContainerRecord, EndpointRecord, NetworkRecord } from './types.ts';
import type { Firewall } from '../firewall/firewall.ts';
import { Rtnl } from '../kernel/rtnl.ts';
import { netnsExists } from '../kernel/netns.ts';
import { messageOf } from '../util/errors.ts';

export interface Difference {
  /** what kind of object: netns, link, address, route, veth, bridge, dns, nftables */
  Kind: string;
  /** which one: a container, network or table name, with the device */
  Object: string;
  /** what was found */
  Found: string;
  /** what loom did about it ('' when it could not: see Error) */
  Action: string;
  Error?: string;
}

/** What the reconciler needs of the controller (plain functions: it never calls back up otherwise). */
export interface ReconcileHooks {
  runningContainers(): ContainerRecord[];
  networks(): NetworkRecord[];
  /** the network driver's idempotent "make the network's device exist as recorded" */
  ensureNetwork(net: NetworkRecord): Promise<void>;
  join(ep: EndpointRecord, netnsPath: string, defaultRoute: boolean): Promise<void>;
  leave(ep: EndpointRecord): Promise<void>;
  isInternal(networkId: string): boolean;
  remountNetns(c: ContainerRecord): void;
  /** containers whose embedded DNS sockets are open */
  dnsAttached(): string[];
  usesEmbeddedDns(c: ContainerRecord): boolean;
  startDns(c: ContainerRecord): Promise<void>;
  firewall: Firewall;
}

export async function reconcile(h: ReconcileHooks): Promise<Difference[]> {
  const out: Difference[] = [];
  const attempt = async (d: Omit<Difference, 'Error'>, fix: () => Promise<void> | void) => {
    try {
      await fix();
      out.push(d);
    } catch (e) {
      out.push({ ...d, Action: '', Error: messageOf(e) });
    }
  };
  const host = Rtnl.open();
  try {
    // 1. bridges
    for (const net of h.networks()) {
      if (net.driver !== 'bridge' || !net.bridge) continue;
      const link = await host.getLink(net.bridge);
      if (!link) {
        await attempt({ Kind: 'bridge', Object: `${net.name} (${net.bridge})`, Found: 'device missing', Action: 'created again' }, () => h.ensureNetwork(net));
        continue;
      }
      const have = new Set((await host.listAddresses(link.index)).map((a) => a.cidr));
      const missing = net.ipam.config.filter((c) => c.Gateway && ![...have].some((a) => a.startsWith(`${c.Gateway}/`)));
      if (!link.up || missing.length) {
        await attempt({ Kind: 'bridge', Object: `${net.name} (${net.bridge})`, Found: !link.up ? 'device down' : `gateway ${missing.map((m) => m.Gateway).join(', ')} missing`, Action: 'repaired' }, () => h.ensureNetwork(net));
      }
    }
    const bridges = new Map<string, number>();
    for (const l of await host.listLinks()) if (l.kind === 'bridge') bridges.set(l.name, l.index);
    const byId = new Map(h.networks().map((n) => [n.id, n]));

    // 2. containers
    for (const c of h.runningContainers()) {
      if (!c.netnsPath) continue; // host mode, or sharing another container's namespace
      if (!netnsExists(c.netnsPath)) {
        await attempt({ Kind: 'netns', Object: c.name, Found: `${c.netnsPath} not mounted`, Action: 'mounted again from the container process' }, () => {
          h.remountNetns(c);
          if (!netnsExists(c.netnsPath!)) throw new Error('cannot mount it again');
        });
        if (!netnsExists(c.netnsPath)) continue;
      }
      const eps = Object.values(c.endpoints);
      const routeHolder = eps.find((e) => e.gateway4 && !h.isInternal(e.networkId));
      const ns = Rtnl.open(c.netnsPath);
      try {
        for (const ep of eps) {
          const net = byId.get(ep.networkId);
          const what = `${c.name} ${ep.ifname} (${ep.networkName})`;
          let link = await ns.getLink(ep.ifname);
          if (!link) {
            if (net?.driver !== 'bridge') {
              out.push({ Kind: 'link', Object: what, Found: 'interface missing', Action: '', Error: `re-plugging a ${net?.driver ?? 'unknown'} endpoint is not supported: restart the container` });
              continue;
            }
            await attempt({ Kind: 'link', Object: what, Found: 'interface missing', Action: 'plugged again' }, async () => {
              await h.leave(ep).catch(() => {});
              await h.join(ep, c.netnsPath!, ep === routeHolder);
            });
            continue; // a fresh plug has its addresses and route
          }
          if (!link.up) await attempt({ Kind: 'link', Object: what, Found: 'interface down', Action: 'set up' }, () => ns.setLink(link!.index, { up: true }));
          const have = (await ns.listAddresses(link.index)).map((a) => a.cidr);
          for (const [ip, prefix] of [[ep.ipv4, ep.prefix4], [ep.ipv6, ep.prefix6]] as const) {
            if (!ip || have.includes(`${ip}/${prefix}`)) continue;
            await attempt({ Kind: 'address', Object: what, Found: `${ip}/${prefix} missing`, Action: 'added' }, () => ns.addAddress(link!.index, `${ip}/${prefix}`, { ignoreExisting: true, nodad: true }));
          }
          if (ep === routeHolder && ep.gateway4) {
            const routes = await ns.listRoutes(4);
            if (!routes.some((r) => r.dst === 'default')) {
              await attempt({ Kind: 'route', Object: what, Found: 'default route missing', Action: `added via ${ep.gateway4}` }, () => ns.addRoute({ dst: 'default', gateway: ep.gateway4, index: link!.index }));
            }
          }
          // the host end: there, and a port of the network's bridge
          if (net?.driver === 'bridge' && net.bridge && ep.hostVeth) {
            const veth = await host.getLink(ep.hostVeth);
            const br = bridges.get(net.bridge) ?? (await host.getLink(net.bridge))?.index;
            if (veth && br !== undefined && veth.master !== br) {
              await attempt({ Kind: 'veth', Object: `${c.name} ${ep.hostVeth}`, Found: `not a port of ${net.bridge}`, Action: `enslaved to ${net.bridge}` }, () => host.setLink(veth.index, { master: br, up: true }));
            }
            link = await ns.getLink(ep.ifname);
          }
        }
      } finally {
        ns.close();
      }
      if (h.usesEmbeddedDns(c) && !h.dnsAttached().includes(c.id)) {
        await attempt({ Kind: 'dns', Object: c.name, Found: 'embedded DNS sockets closed', Action: 'opened again' }, () => h.startDns(c));
      }
    }
  } finally {
    host.close();
  }

  // 3. nftables
  const list = () => h.firewall.listing();
  const before = list();
  await attempt({ Kind: 'nftables', Object: 'loom', Found: '', Action: '' }, () => h.firewall.reconcile(h.firewall.state()));
  const last = out.pop()!;
  const after = list();
  if (last.Error) out.push({ ...last, Found: 'could not be checked', Action: '' });
  else if (before !== after) {
    const a = new Set(after.split('\n')), b = new Set(before.split('\n'));
    const missing = [...a].filter((l) => !b.has(l)).map((l) => l.trim()).filter(Boolean);
    const extra = [...b].filter((l) => !a.has(l)).map((l) => l.trim()).filter(Boolean);
    out.push({
      Kind: 'nftables', Object: 'loom', Action: 'tables put back whole',
      Found: [missing.length ? `missing: ${missing.slice(0, 5).join(' | ')}${missing.length > 5 ? ` (+${missing.length - 5})` : ''}` : '',
        extra.length ? `unexpected: ${extra.slice(0, 5).join(' | ')}${extra.length > 5 ? ` (+${extra.length - 5})` : ''}` : ''].filter(Boolean).join('; '),
    });
  }
  return out;
}
