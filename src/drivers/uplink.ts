// The bridged underlay (reference 001, "Underlay"): a bridge network with `-o loom.bridge.uplink=IFACE`
// takes a host interface as a port of its bridge and moves the interface's addresses and the routes
// through it (the default route included) to the bridge, so containers sit on the physical segment with
// its addresses, no NAT, the segment's router as their gateway.
//
// The host must never be left without its addresses or default route because of loom:
//   - what the interface had is recorded (the kernel's own address and route messages, so that giving
//     them back restores protocol, metric, scope, source, flags exactly) in the network's record before
//     anything changes; the record of a network being created is kept by the controller's intent, so a
//     daemon killed half-way finds it at its next start and restore() gives everything back;
//   - the move is: bridge (with the interface's MAC, so the host's addresses keep their MAC on the
//     segment) → interface enslaved → addresses added to the bridge → each route replaced onto the
//     bridge (NLM_F_REPLACE: never a moment without it) → addresses deleted from the interface;
//   - ensure() completes whatever part is missing and skips what is done (a restart moves nothing twice);
//     restore() undoes from any intermediate state, in the reverse order.
import type { Rtnl, LinkInfo } from '../kernel/rtnl.ts';
import type { ErrnoError } from '../kernel/netns.ts';
import os from 'node:os';
import type { NetworkRecord } from '../core/types.ts';
import { addrRequest, movableAddr, movableRoute, readAddr, readRoute, routeRequest } from '../kernel/netmsg.ts';
import { conflict, invalidParameter, systemError } from '../util/errors.ts';
import { failpoint } from '../util/failpoint.ts';
import { contains, parseCidr } from '../ipam/ipam.ts';
import type { Logger } from '../util/log.ts';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { parseEtcdUrl } from '../store/etcd.ts';

export const OPT_UPLINK = 'loom.bridge.uplink';
const STATE_KEY = 'uplink';
const { EEXIST, EADDRNOTAVAIL, ENODEV } = os.constants.errno;

/** What the uplink had before the move, kept in the network's record (driverData) */
export interface UplinkState {
  name: string;
  mac: string;
  up: boolean;
  /** dumped ifaddrmsg / rtmsg bodies, base64 */
  addrs: string[];
  routes: string[];
}

export const isUplinkNetwork = (net: NetworkRecord) => !!net.options[OPT_UPLINK];

export function uplinkState(net: NetworkRecord): UplinkState | null {
  const s = net.driverData?.[STATE_KEY];
  return s ? (JSON.parse(s) as UplinkState) : null;
}

const ignore = (...codes: number[]) => (e: ErrnoError) => {
  if (!codes.includes(e.errno)) throw e;
};

export class Uplinks {
  private readonly rtnl: Rtnl;
  private readonly log: Logger;
  /** the daemon's --cluster-store (etcd://HOST:PORT,...): an uplink that is its only way there is refused */
  clusterStore: string | undefined;

  constructor(rtnl: Rtnl, log: Logger) {
    this.rtnl = rtnl;
    this.log = log;
  }

  /**
   * Checks the uplink of a network about to be created and records what it has now. Refused: a missing
   * interface, loopback, a bridge (loom's own or another), an interface that is already a port of a bridge
   * (another underlay network's included), an internal network, a network without a subnet of its own.
   * The host's addresses in the network's subnets become auxiliary addresses: never given to a container.
   */
  async prepare(net: NetworkRecord, others: NetworkRecord[]): Promise<void> {
    const name = net.options[OPT_UPLINK]!;
    if (net.internal) throw invalidParameter(`${OPT_UPLINK} puts the network on ${name}'s segment: it cannot be --internal`);
    if (net.autoSubnets?.some((s) => !s.includes(':'))) throw invalidParameter(`${OPT_UPLINK}=${name} needs --subnet (the subnet of ${name}'s segment) and --gateway (its router)`);
    const link = await this.rtnl.getLink(name);
    if (!link) throw invalidParameter(`${OPT_UPLINK} interface was not found on the host: ${name}`);
    if (link.name === 'lo' || link.index === 1) throw invalidParameter(`${OPT_UPLINK} cannot be the loopback interface ${name}`);
    const owner = others.find((n) => n.bridge === name);
    if (owner) throw invalidParameter(`${OPT_UPLINK} cannot be ${name}: it is the bridge of network ${owner.name}`);
    if (name === net.bridge) throw invalidParameter(`${OPT_UPLINK} cannot be ${name}: it is this network's own bridge`);
    if (link.kind === 'bridge') throw invalidParameter(`${OPT_UPLINK} cannot be ${name}: it is a bridge`);
    if (link.master) {
      const m = await this.rtnl.getLink(link.master);
      const user = others.find((n) => n.bridge === m?.name);
      throw conflict(`${OPT_UPLINK} ${name} is already a port of ${m?.name ?? `link ${link.master}`}${user ? ` (network ${user.name})` : ''}`);
    }
    await this.refuseStoreRoute(name, link.index);
    const state = await this.snapshot(link);
    if (!state.routes.some((r) => readRoute(Buffer.from(r, 'base64'))!.dst === 'default')) {
      this.log.info({ network: net.name, uplink: name }, 'the uplink carries no default route');
    }
    // the host's own addresses on the segment are taken: no container gets them
    for (const c of net.ipam.config) {
      const sub = parseCidr(c.Subnet);
      const mine = state.addrs.map((a) => readAddr(Buffer.from(a, 'base64'))!).filter((a) => a.family === sub.family && contains(sub, a.address));
      mine.forEach((a, i) => {
        if (a.address === c.Gateway) throw invalidParameter(`gateway ${c.Gateway} is ${name}'s own address: give --gateway the segment's router`);
        c.AuxiliaryAddresses = { ...c.AuxiliaryAddresses, [`host-${name}${mine.length > 1 ? `-${i}` : ''}`]: a.address };
      });
    }
    net.driverData = { ...net.driverData, [STATE_KEY]: JSON.stringify(state) };
  }

  /**
   * Refuses an uplink that carries the only routes (main table) towards the cluster store: while it moves,
   * the daemon's lease in the store (its overlay and global networks) hangs on it, and a failure half-way
   * would cut the daemon off from the store it must tell. A store with an endpoint reached through another
   * interface (a less specific route elsewhere included) is not the uplink's alone.
   */
  private async refuseStoreRoute(name: string, index: number): Promise<void> {
    if (!this.clusterStore) return;
    const routes = await this.rtnl.listRoutes();
    // the host's own addresses and loopback are reached through lo (the local table), never an uplink
    const own = new Set((await this.rtnl.dumpBodies('addr')).map((b) => readAddr(b)?.address));
    let carried: string | null = null;
    for (const url of parseEtcdUrl(this.clusterStore)) {
      const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
      const ips = isIP(host) ? [host] : (await lookup(host, { all: true }).catch(() => [])).map((a) => a.address);
      for (const ip of ips) {
        const fam = isIP(ip) === 6 ? 6 : 4;
        if (own.has(ip) || ip === '::1' || ip.startsWith('127.')) return;
        const via = routes.filter((r) => r.family === fam && r.index !== undefined && (r.dst === 'default' || contains(parseCidr(r.dst), ip)));
        if (via.some((r) => r.index !== index)) return; // the store stays in reach through another interface
        if (via.length) carried ??= host === ip ? ip : `${host} (${ip})`;
      }
    }
    if (carried) throw invalidParameter(`${OPT_UPLINK} cannot be ${name}: it carries the daemon's only route to its cluster store ${carried} (--cluster-store ${this.clusterStore})`);
  }

  private async snapshot(link: LinkInfo): Promise<UplinkState> {
    const addrs = (await this.rtnl.dumpBodies('addr')).map(readAddr).filter((a) => a && a.index === link.index && movableAddr(a));
    const routes = (await this.rtnl.dumpBodies('route')).map(readRoute).filter((r) => r && movableRoute(r, link.index));
    return { name: link.name, mac: link.mac ?? '', up: link.up, addrs: addrs.map((a) => a!.body.toString('base64')), routes: routes.map((r) => r!.body.toString('base64')) };
  }

  /** Moves the uplink onto the network's bridge, or completes the move; returns the bridge's index. */
  async ensure(net: NetworkRecord): Promise<number> {
    const state = uplinkState(net);
    if (!state) throw systemError(`network ${net.name}: no record of its uplink's addresses and routes`);
    const uplink = await this.rtnl.getLink(state.name);
    if (!uplink) throw systemError(`uplink ${state.name} of network ${net.name} is not on the host`);
    let bridge = await this.rtnl.getLink(net.bridge!);
    if (!bridge) {
      await this.rtnl.createBridge(net.bridge!, { mtu: uplink.mtu, up: true, mac: state.mac || undefined });
      bridge = await this.rtnl.getLink(net.bridge!);
      if (!bridge) throw systemError(`bridge ${net.bridge} vanished after creation`);
    } else if (bridge.kind !== 'bridge') {
      throw systemError(`cannot use ${net.bridge} for network ${net.name}: it exists and is a ${bridge.kind} device`);
    } else if (!bridge.up) {
      await this.rtnl.setLink(bridge.index, { up: true });
    }
    failpoint('uplink.bridge');
    if (uplink.master !== bridge.index) {
      if (uplink.master) throw conflict(`uplink ${state.name} of network ${net.name} is a port of another device (link ${uplink.master})`);
      await this.rtnl.setLink(uplink.index, { master: bridge.index, up: true });
    }
    failpoint('uplink.enslaved');
    const addrs = state.addrs.map((a) => Buffer.from(a, 'base64'));
    for (const a of addrs) {
      await this.rtnl.sendBody('newaddr', addrRequest(a, bridge.index, { label: false, nodad: true })).catch(ignore(EEXIST));
    }
    failpoint('uplink.addresses');
    const onBridge = new Set((await this.rtnl.dumpBodies('route')).map(readRoute).filter((r) => r?.oif === bridge.index).map((r) => r!.key));
    for (const r of state.routes.map((b) => readRoute(Buffer.from(b, 'base64'))!)) {
      if (onBridge.has(r.key)) continue; // moved already (a restart)
      await this.rtnl.sendBody('newroute', routeRequest(r.body, bridge.index), { replace: true });
    }
    failpoint('uplink.routes');
    for (const a of addrs) await this.rtnl.sendBody('deladdr', addrRequest(a, uplink.index, { label: false })).catch(ignore(EADDRNOTAVAIL, ENODEV));
    return bridge.index;
  }

  /**
   * Gives the uplink back what it had and deletes the bridge, from any state ensure() may have reached
   * (or none of it). Idempotent.
   */
  async restore(net: NetworkRecord): Promise<void> {
    const state = uplinkState(net);
    const uplink = state ? await this.rtnl.getLink(state.name) : null;
    if (state && !uplink) this.log.warn({ network: net.name, uplink: state.name }, 'the uplink is gone: nothing to give back');
    if (state && uplink) {
      const bridge = await this.rtnl.getLink(net.bridge!);
      for (const a of state.addrs) await this.rtnl.sendBody('newaddr', addrRequest(Buffer.from(a, 'base64'), uplink.index, { label: true, nodad: true })).catch(ignore(EEXIST));
      if (bridge && uplink.master === bridge.index) await this.rtnl.setLink(uplink.index, { master: null });
      failpoint('uplink.restore');
      for (const r of state.routes) {
        await this.rtnl.sendBody('newroute', routeRequest(Buffer.from(r, 'base64'), uplink.index), { replace: true }).catch((e: ErrnoError) => {
          this.log.warn({ network: net.name, uplink: state.name, route: readRoute(Buffer.from(r, 'base64'))?.dst, err: String(e) }, 'cannot give a route back');
        });
      }
      if (uplink.up !== state.up) await this.rtnl.setLink(uplink.index, { up: state.up });
    }
    await this.rtnl.deleteLink(net.bridge!);
  }
}
