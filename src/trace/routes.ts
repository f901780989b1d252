// Route lookups for a trace: the main table's routes of a namespace (RTM_GETROUTE dump through rtnl.ts),
// longest prefix first, as the kernel's FIB answers for a plain destination (loom adds no policy routing).
import net from 'node:net';
import ipaddr from 'ipaddr.js';
import { Rtnl, type RouteInfo } from '../kernel/rtnl.ts';

/** The best route to `ip` (IPv4 or IPv6) among `routes` (longest prefix; default last), or undefined: no route. */
export function routeFor(routes: RouteInfo[], ip: string): RouteInfo | undefined {
  const family = net.isIP(ip) === 6 ? 6 : 4;
  const x = ipaddr.parse(ip);
  let best: RouteInfo | undefined, bestLen = -1;
  for (const r of routes) {
    if (r.family !== family) continue;
    const [dst, lenS] = r.dst === 'default' ? [family === 6 ? '::' : '0.0.0.0', '0'] : r.dst.split('/');
    const len = Number(lenS ?? (family === 6 ? 128 : 32));
    // fe80::/64 is on every IPv6 link: only a link-local destination takes it
    if (len > bestLen && x.match(ipaddr.parse(dst!), len)) {
      best = r;
      bestLen = len;
    }
  }
  return best;
}

export interface RouteHop { found: boolean; text: string; dev?: string; gateway?: string }

/** "route to X: via G dev eth0" in the namespace at `netns` (the daemon's own when undefined). */
export async function lookupRoute(netns: string | undefined, ip: string): Promise<RouteHop> {
  const rt = Rtnl.open(netns);
  try {
    const family = net.isIP(ip) === 6 ? 6 : 4;
    const [routes, links] = await Promise.all([rt.listRoutes(family), rt.listLinks()]);
    const lo = links.find((l) => l.name === 'lo');
    const addrs = await rt.listAddresses();
    // a local address answers on lo (the kernel's local table, which listRoutes leaves out)
    if (ip === '::1' || addrs.some((a) => a.family === family && a.cidr.split('/')[0] === ipaddr.parse(ip).toString())) return { found: true, text: `${ip} is a local address (dev lo)`, dev: lo?.name ?? 'lo' };
    const r = routeFor(routes, ip);
    if (!r) return { found: false, text: `no route to ${ip}` };
    const dev = links.find((l) => l.index === r.index)?.name ?? String(r.index ?? '?');
    return { found: true, dev, gateway: r.gateway, text: `route to ${ip}: ${r.dst}${r.gateway ? ` via ${r.gateway}` : ''} dev ${dev}` };
  } finally {
    rt.close();
  }
}

/** ifindex → name in the namespace at `netns`. */
export async function linkNames(netns?: string): Promise<Map<number, string>> {
  const rt = Rtnl.open(netns);
  try {
    return new Map((await rt.listLinks()).map((l) => [l.index, l.name]));
  } finally {
    rt.close();
  }
}
