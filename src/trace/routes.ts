// Route lookups for a trace: the main table's routes of a namespace (RTM_GETROUTE dump through rtnl.ts),
// longest prefix first, as the kernel's FIB answers for a plain destination (loom adds no policy routing).
import { Rtnl, type RouteInfo } from '../kernel/rtnl.ts';

function toInt(ip: string): number {
  return ip.split('.').reduce((a, o) => ((a << 8) | Number(o)) >>> 0, 0);
}

/** The best IPv4 route to `ip` among `routes` (longest prefix; default last), or undefined: no route. */
export function routeFor(routes: RouteInfo[], ip: string): RouteInfo | undefined {
  const x = toInt(ip);
  let best: RouteInfo | undefined, bestLen = -1;
  for (const r of routes) {
    if (r.family !== 4) continue;
    const [net, lenS] = r.dst === 'default' ? ['0.0.0.0', '0'] : r.dst.split('/');
    const len = Number(lenS ?? 32);
    const mask = len === 0 ? 0 : (~0 << (32 - len)) >>> 0;
    if (((x & mask) >>> 0) === ((toInt(net!) & mask) >>> 0) && len > bestLen) {
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
    const [routes, links] = await Promise.all([rt.listRoutes(4), rt.listLinks()]);
    const lo = links.find((l) => l.name === 'lo');
    const addrs = await rt.listAddresses();
    // a local address answers on lo (the kernel's local table, which listRoutes leaves out)
    if (addrs.some((a) => a.family === 4 && a.cidr.split('/')[0] === ip)) return { found: true, text: `${ip} is a local address (dev lo)`, dev: lo?.name ?? 'lo' };
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
