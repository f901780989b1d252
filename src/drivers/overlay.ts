// The overlay driver: one layer-2 network across hosts, carried in VXLAN (Docker's classic overlay).
//
// Per network and host, only while the host has endpoints on it (created at the first join, removed with
// the last leave, as Docker's joinSandbox/leaveSandbox), a namespace of its own, <exec-root>/netns/1-<id10>:
//   br0      the network's bridge, with the gateway address of every subnet, IPv4 and IPv6 (nothing
//            routes through it: egress is the docker_gwbridge endpoint the controller adds, eth1 in the
//            container). Several subnets share the one layer-2 segment (Docker gives each its own bridge
//            and VNI; a single segment keeps one tunnel device and one set of forwarding entries).
//   vxlan0   VNI of the network, local tunnel address = --cluster-advertise, UDP 4789, no learning, proxy
//            ARP. Created from the daemon's namespace directly inside this one, so its UDP socket lives in
//            the host's namespace while the device does not (nothing is moved afterwards).
//   vethXXX  one per endpoint; its peer is created directly in the container's namespace (eth0...).
// Remote endpoints come from the cluster store (src/core/cluster.ts calls addPeer/removePeer, once per
// address): each address is a neighbour entry on vxlan0 (IPv4: ARP, IPv6: NDP; IP → MAC) and the MAC a
// forwarding entry (MAC → the peer host's tunnel address), so ARP requests and neighbour solicitations are
// answered locally by vxlan0's proxy and frames are unicast to the right host; nothing floods between hosts.
// A namespace per network keeps its subnet, bridge and neighbour tables away from the host's, so two
// overlay networks may even use the same subnet.
import { KeyedSerial } from '../util/keyed-serial.ts';
import { randomMac } from './bridge.ts';
import path from 'node:path';
import { Rtnl, configureInterface, vxlanData } from '../kernel/rtnl.ts';
import { createNetns, deleteNetns, netnsExists } from '../kernel/netns.ts';
import type { EndpointRecord, NetworkRecord } from '../core/types.ts';
import { endpointAddresses, type NetworkDriver } from './driver.ts';
import { parseCidr } from '../ipam/ipam.ts';
import { invalidParameter, messageOf, systemError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';

export const OPT_VXLANID = 'com.docker.network.driver.overlay.vxlanid_list';
const OPT_MTU = 'com.docker.network.driver.mtu';
export const VXLAN_PORT = 4789;
/** libnetwork's range of automatically allocated VNIs */
export const VNI_START = 256;
export const VNI_END = (1 << 24) - 1;
/** outer IPv4 + UDP + VXLAN + inner Ethernet headers: an endpoint's MTU is the underlay's minus this */
const VXLAN_ENCAP = 50;
const BRIDGE = 'br0';
const VXLAN = 'vxlan0';

/** A remote endpoint's address (IPv4 or IPv6; an endpoint with both is two peers), its MAC on the overlay, and its host's tunnel address. */
export interface Peer { ip: string; mac: string; vtep: string }

/** The VNIs of `-o com.docker.network.driver.overlay.vxlanid_list=N[,N...]`, checked as Docker does. */
export function parseVxlanIds(v: string | undefined): number[] {
  if (v === undefined || v === '') return [];
  return v.split(',').map((s) => {
    if (!/^\d+$/.test(s.trim()) || Number(s) < 1 || Number(s) > VNI_END) throw invalidParameter(`invalid vxlan id value "${s}" passed`);
    return Number(s);
  });
}

/** Checks the overlay options of a network about to be created (before anything is written anywhere). */
export function validateOverlayOptions(net: NetworkRecord): void {
  parseVxlanIds(net.options[OPT_VXLANID]);
  const mtu = net.options[OPT_MTU];
  if (mtu !== undefined && mtu !== '') {
    if (!/^[+-]?\d+$/.test(mtu)) throw invalidParameter(`failed to parse ${mtu}: strconv.Atoi: parsing ${JSON.stringify(mtu)}: invalid syntax`);
    if (Number(mtu) < 0) throw invalidParameter(`invalid MTU value: ${Number(mtu)}`);
    if (Number(mtu) > 0 && Number(mtu) - VXLAN_ENCAP < 68) throw invalidParameter(`invalid MTU number: ${mtu} (an overlay endpoint gets the MTU minus ${VXLAN_ENCAP}, at least 68)`);
  }
  if ('encrypted' in net.options) throw invalidParameter('encrypted overlay networks need swarm mode\'s key distribution, which loom does not have');
  const v6 = net.ipam.config.filter((c) => c.Subnet.includes(':'));
  if (v6.length && !net.enableIPv6) throw invalidParameter(`invalid subnet ${v6[0].Subnet}: IPv6 has not been enabled for this network`);
  // Docker's GlobalDefault address space has no IPv6 pool: an IPv6 overlay names its subnet
  if (net.enableIPv6 && !v6.length) throw invalidParameter('could not find an available, non-overlapping IPv6 address pool among the defaults to assign to the network (an overlay network with --ipv6 needs an IPv6 --subnet)');
}

/** The MTU of an overlay network's endpoints: the network's (default 1500) minus the encapsulation. */
export function overlayMtu(net: NetworkRecord): number {
  return (Number(net.options[OPT_MTU]) || 1500) - VXLAN_ENCAP;
}

interface Sandbox { path: string; rt: Rtnl; br: number; vx: number }

export class OverlayDriver implements NetworkDriver {
  readonly type = 'overlay';
  readonly scope = 'global' as const;
  readonly publishes = false;
  /** the address other hosts reach this one at (--cluster-advertise): every vxlan0's local address */
  advertise: string | undefined;
  private readonly rtnl: Rtnl;
  private readonly log: Logger;
  private readonly sandboxDir: string;
  private readonly peers = new Map<string, Map<string, Peer>>();
  private readonly sandboxes = new Map<string, Sandbox>();
  private readonly queues = new KeyedSerial();

  constructor(log: Logger, opts: { sandboxDir: string; advertise?: string }) {
    this.log = log;
    this.sandboxDir = opts.sandboxDir;
    this.advertise = opts.advertise;
    this.rtnl = Rtnl.open();
  }

  close(): void {
    for (const s of this.sandboxes.values()) s.rt.close();
    this.sandboxes.clear();
    this.rtnl.close();
  }

  firewallView(): null {
    return null;
  }

  /** Where a network's namespace is (Docker's sandbox key: 1-<first 10 of the id>). */
  sandboxPath(netId: string): string {
    return path.join(this.sandboxDir, `1-${netId.slice(0, 10)}`);
  }

  /** One network's kernel work at a time: a join must not race the last leave tearing the namespace down. */
  private serial<T>(netId: string, fn: () => Promise<T>): Promise<T> {
    return this.queues.run(netId, fn);
  }

  prepare(net: NetworkRecord): void {
    validateOverlayOptions(net);
    if (!parseVxlanIds(net.options[OPT_VXLANID]).length) throw systemError(`overlay network ${net.name} has no vxlan id`);
  }

  /**
   * Nothing until the first endpoint; after a restart, a namespace still there is adopted. A namespace
   * that cannot be (logged by adopt) does not stop the daemon: the next join tries again.
   */
  ensureNetwork(net: NetworkRecord): Promise<void> {
    return this.serial(net.id, async () => {
      if (!this.sandboxes.has(net.id) && netnsExists(this.sandboxPath(net.id))) await this.adopt(net).catch(() => {});
    });
  }

  deleteNetwork(net: NetworkRecord): Promise<void> {
    return this.serial(net.id, async () => {
      await this.destroy(net.id);
      this.peers.delete(net.id);
    });
  }

  join(net: NetworkRecord, ep: EndpointRecord, netnsPath: string): Promise<void> {
    return this.serial(net.id, async () => {
      const sb = await this.sandbox(net);
      const mtu = overlayMtu(net);
      try {
        await sb.rt.createVeth({ name: ep.hostVeth!, peerName: ep.ifname, peerNetnsPath: netnsPath, peerMac: ep.mac, mtu, master: sb.br, up: true });
        try {
          // no default route: overlay endpoints reach the outside through the gateway bridge (eth1)
          await configureInterface(netnsPath, { ifname: ep.ifname, addresses: endpointAddresses(ep), mtu, loUp: true });
        } catch (e) {
          await sb.rt.deleteLink(ep.hostVeth!).catch(() => {});
          throw e;
        }
      } catch (e) {
        await this.destroyIfUnused(net.id, sb).catch(() => {});
        throw e;
      }
    });
  }

  /**
   * An endpoint for another engine (dockerd through loom's network plugin): the veth's network end on br0
   * as join() makes it, its other end (`peerName`, unconfigured, MTU set) in the daemon's own namespace,
   * where the engine takes it, moves it into its container and sets the addresses itself. leave() undoes it.
   */
  joinDetached(net: NetworkRecord, ep: EndpointRecord, peerName: string): Promise<void> {
    return this.serial(net.id, async () => {
      const sb = await this.sandbox(net);
      try {
        await sb.rt.createVeth({ name: ep.hostVeth!, peerName, peerNetnsPath: '/proc/self/ns/net', peerMac: ep.mac, mtu: overlayMtu(net), master: sb.br, up: true });
      } catch (e) {
        await this.destroyIfUnused(net.id, sb).catch(() => {});
        throw e;
      }
    });
  }

  /** Deletes the endpoint's veth (its peer goes with it), then the namespace if it was the last one. */
  leave(net: NetworkRecord | undefined, ep: EndpointRecord): Promise<void> {
    const netId = net?.id ?? ep.networkId;
    return this.serial(netId, async () => {
      const sb = this.sandboxes.get(netId);
      if (!sb) {
        // not adopted (its network's record is gone, or the namespace was never brought back)
        const p = this.sandboxPath(netId);
        if (!netnsExists(p)) return;
        const rt = Rtnl.open(p);
        let left = true;
        try {
          if (ep.hostVeth) await rt.deleteLink(ep.hostVeth);
          left = (await rt.listLinks()).some((l) => l.kind === 'veth');
          if (!left) await rt.deleteLink(VXLAN);
        } finally {
          rt.close();
        }
        if (!left) deleteNetns(p);
        return;
      }
      if (ep.hostVeth) await sb.rt.deleteLink(ep.hostVeth);
      await this.destroyIfUnused(netId, sb);
    });
  }

  /** A remote endpoint appeared (or moved): programmed at once if this host has the network's namespace. */
  addPeer(netId: string, p: Peer): Promise<void> {
    let m = this.peers.get(netId);
    if (!m) this.peers.set(netId, (m = new Map()));
    const old = m.get(p.ip);
    m.set(p.ip, p);
    return this.serial(netId, async () => {
      const sb = this.sandboxes.get(netId);
      if (!sb) return;
      if (old && old.mac !== p.mac) await this.unprogram(sb, old);
      await this.program(sb, p);
    });
  }

  removePeer(netId: string, ip: string): Promise<void> {
    const old = this.peers.get(netId)?.get(ip);
    if (!old) return Promise.resolve();
    this.peers.get(netId)!.delete(ip);
    return this.serial(netId, async () => {
      const sb = this.sandboxes.get(netId);
      if (sb) await this.unprogram(sb, old);
    });
  }

  /** The remote endpoints known for a network (tests, inspect). */
  peersOf(netId: string): Peer[] {
    return [...(this.peers.get(netId)?.values() ?? [])];
  }

  private async program(sb: Sandbox, p: Peer): Promise<void> {
    await sb.rt.addNeighbor({ index: sb.vx, ip: p.ip, mac: p.mac });
    await sb.rt.addNeighbor({ index: sb.vx, mac: p.mac, vtep: p.vtep });
  }

  private async unprogram(sb: Sandbox, p: Peer): Promise<void> {
    await sb.rt.delNeighbor({ index: sb.vx, ip: p.ip, mac: p.mac });
    await sb.rt.delNeighbor({ index: sb.vx, mac: p.mac, vtep: p.vtep });
  }

  private async sandbox(net: NetworkRecord): Promise<Sandbox> {
    const known = this.sandboxes.get(net.id);
    if (known) return known;
    if (netnsExists(this.sandboxPath(net.id))) return this.adopt(net);
    const p = this.sandboxPath(net.id);
    createNetns(p);
    let rt: Rtnl | null = null;
    try {
      rt = Rtnl.open(p);
      const br = await rt.createBridge(BRIDGE, { mtu: overlayMtu(net), up: true, mac: randomMac() }); // a fixed MAC: see bridge.ts
      for (const c of net.ipam.config) if (c.Gateway) await rt.addAddress(br, `${c.Gateway}/${parseCidr(c.Subnet).prefix}`, { nodad: true });
      const sb: Sandbox = { path: p, rt, br, vx: await this.createVxlan(net, rt, br) };
      this.sandboxes.set(net.id, sb);
      for (const peer of this.peers.get(net.id)?.values() ?? []) await this.program(sb, peer);
      this.log.debug({ network: net.name, sandbox: p, vni: vniOf(net) }, 'overlay sandbox created');
      return sb;
    } catch (e) {
      this.sandboxes.delete(net.id);
      if (rt) {
        await rt.deleteLink(VXLAN).catch(() => {});
        rt.close();
      }
      deleteNetns(p);
      throw e;
    }
  }

  /** vxlan0, created from the host's namespace straight into the sandbox, enslaved to br0 and up. */
  private async createVxlan(net: NetworkRecord, rt: Rtnl, br: number): Promise<number> {
    if (!this.advertise) throw systemError(`overlay network ${net.name}: this daemon has no --cluster-advertise address for its tunnel endpoint`);
    const vni = vniOf(net);
    try {
      await this.rtnl.createLink({
        name: VXLAN, kind: 'vxlan', netnsPath: this.sandboxPath(net.id), mtu: overlayMtu(net),
        data: vxlanData({ vni, local: this.advertise, port: VXLAN_PORT, learning: false, proxy: true }),
      });
    } catch (e) {
      if ((e as { code?: string }).code === 'EEXIST') throw systemError(`overlay network ${net.name}: vxlan id ${vni} is in use by another device on this host`);
      throw e;
    }
    const vx = await rt.getLink(VXLAN);
    if (!vx) throw systemError(`overlay network ${net.name}: ${VXLAN} vanished after creation`);
    await rt.setLink(vx.index, { master: br, up: true });
    return vx.index;
  }

  /**
   * A namespace left by the previous daemon: its endpoints are still in use, its tunnel device is made
   * anew (with this run's advertise address, and only the peers the cluster store knows now).
   */
  private async adopt(net: NetworkRecord): Promise<Sandbox> {
    const p = this.sandboxPath(net.id);
    const rt = Rtnl.open(p);
    try {
      const br = await rt.getLink(BRIDGE);
      if (!br) throw systemError(`overlay sandbox ${p} has no ${BRIDGE}`);
      await rt.deleteLink(VXLAN);
      const sb: Sandbox = { path: p, rt, br: br.index, vx: await this.createVxlan(net, rt, br.index) };
      this.sandboxes.set(net.id, sb);
      for (const peer of this.peers.get(net.id)?.values() ?? []) await this.program(sb, peer);
      this.log.info({ network: net.name, sandbox: p }, 'overlay sandbox adopted');
      return sb;
    } catch (e) {
      rt.close();
      this.log.warn({ network: net.name, sandbox: p, err: messageOf(e) }, 'cannot adopt overlay sandbox');
      throw e;
    }
  }

  private async destroyIfUnused(netId: string, sb: Sandbox): Promise<void> {
    if ((await sb.rt.listLinks()).some((l) => l.kind === 'veth')) return;
    await this.destroy(netId);
  }

  /** The namespace goes; vxlan0 first, so its VNI and UDP socket are free at once (not after the namespace's cleanup). */
  private async destroy(netId: string): Promise<void> {
    const sb = this.sandboxes.get(netId);
    const p = sb?.path ?? this.sandboxPath(netId);
    this.sandboxes.delete(netId);
    if (sb) {
      await sb.rt.deleteLink(VXLAN).catch((e) => this.log.warn({ sandbox: p, err: messageOf(e) }, 'cannot delete vxlan device'));
      sb.rt.close();
    } else if (netnsExists(p)) {
      const rt = Rtnl.open(p);
      await rt.deleteLink(VXLAN).catch(() => {});
      rt.close();
    }
    deleteNetns(p);
  }
}

export function vniOf(net: NetworkRecord): number {
  return parseVxlanIds(net.options[OPT_VXLANID])[0] ?? 0;
}
