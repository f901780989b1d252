// Who a trace is between: a container (name or id), `host`, `outside:IP` or (as destination) a published
// port `HOSTIP:PORT` or a plain address. Resolved against the controller's records, with Docker's errors.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { ContainerRecord, EndpointRecord } from '../core/types.ts';
import type { Containers } from '../core/containers.ts';
import { conflict, invalidParameter, notFound } from '../util/errors.ts';
import { findPeerNamespace } from './outside.ts';
import { Rtnl } from '../kernel/rtnl.ts';

export interface Party {
  kind: 'container' | 'host' | 'outside' | 'address';
  /** as the user named it */
  label: string;
  /** namespace the probe is sent from (undefined: the daemon's own, i.e. the host's) */
  netns?: string;
  /** address it is reached at / sends from (undefined: the kernel picks) */
  ip?: string;
  /** port given as part of a destination HOSTIP:PORT */
  port?: number;
  container?: ContainerRecord;
  /** the endpoint used (container parties) */
  endpoint?: EndpointRecord;
}

export interface PartyContext {
  containers: Containers;
  /** where `ip netns` namespaces live (outside:IP is looked for there) */
  netnsDir: string;
  /** loom's own container namespaces there carry this prefix: never an "outside" */
  netnsPrefix: string;
}

function runningContainer(ctx: PartyContext, ref: string): ContainerRecord {
  const c = ctx.containers.find(ref);
  if (!c) throw notFound(`No such container: ${ref}`);
  if (!c.state.Running) throw conflict(`Container ${c.name} is not running`);
  return c;
}

/** The container whose namespace `c` uses (itself, or the target of --network container:X). */
function namespaceOwner(ctx: PartyContext, c: ContainerRecord): ContainerRecord {
  const mode = c.networkMode;
  if (!mode.startsWith('container:')) return c;
  return runningContainer(ctx, mode.slice('container:'.length));
}

function containerParty(ctx: PartyContext, ref: string): Party {
  const c = runningContainer(ctx, ref);
  const owner = namespaceOwner(ctx, c);
  if (owner.networkMode === 'none') throw invalidParameter(`container ${c.name} has no network path: its network mode is none (only lo)`);
  if (owner.networkMode === 'host') return { kind: 'container', label: c.name, container: owner };
  if (!owner.netnsPath) throw conflict(`container ${c.name} has no network namespace`);
  return { kind: 'container', label: c.name, container: owner, netns: owner.netnsPath };
}

function ipv4Endpoints(c: ContainerRecord): EndpointRecord[] {
  return Object.values(c.endpoints).filter((e) => e.ipv4).sort((a, b) => a.ifname.localeCompare(b.ifname, undefined, { numeric: true }));
}

export async function resolveParties(ctx: PartyContext, srcSpec: string, dstSpec: string): Promise<{ src: Party; dst: Party }> {
  if (!srcSpec || !dstSpec) throw invalidParameter('a trace needs a source and a destination');
  let src: Party;
  if (srcSpec === 'host') src = { kind: 'host', label: 'host' };
  else if (srcSpec.startsWith('outside:')) {
    const ip = srcSpec.slice('outside:'.length);
    if (net.isIP(ip) !== 4) throw invalidParameter(`invalid outside address ${JSON.stringify(ip)}: an IPv4 address is needed (outside:198.51.100.2)`);
    const candidates = fs.existsSync(ctx.netnsDir)
      ? fs.readdirSync(ctx.netnsDir).filter((n) => !n.startsWith(ctx.netnsPrefix)).map((n) => path.join(ctx.netnsDir, n))
      : [];
    const found = await findPeerNamespace(ip, candidates);
    const rt = Rtnl.open(found);
    try {
      if (!(await rt.listAddresses()).some((a) => a.cidr.split('/')[0] === ip)) {
        throw invalidParameter(`outside:${ip}: no interface of the namespace behind the host's uplink (${path.basename(found)}) has the address ${ip}`);
      }
    } finally {
      rt.close();
    }
    src = { kind: 'outside', label: `outside:${ip}`, ip, netns: found };
  } else if (net.isIP(srcSpec)) {
    throw invalidParameter(`invalid source ${JSON.stringify(srcSpec)}: use a container, host or outside:${srcSpec}`);
  } else src = containerParty(ctx, srcSpec);

  let dst: Party;
  const hostPort = /^(\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(dstSpec);
  if (dstSpec === 'host' && src.kind !== 'container') {
    throw invalidParameter(`destination host: from ${src.label}, name the host's address and port instead (HOSTIP:PORT, e.g. 198.51.100.1:8080)`);
  } else if (dstSpec === 'host') {
    // the host as the container sees it: its network's gateway (the bridge's address)
    const gw = src.container ? ipv4Endpoints(src.container).find((e) => e.gateway4)?.gateway4 : undefined;
    dst = { kind: 'host', label: 'host', ip: gw ?? '127.0.0.1' };
  } else if (hostPort) {
    if (net.isIP(hostPort[1]!) !== 4) throw invalidParameter(`invalid destination address ${JSON.stringify(hostPort[1])}`);
    dst = { kind: 'address', label: dstSpec, ip: hostPort[1]!, port: checkPort(hostPort[2]!) };
  } else if (dstSpec.startsWith('outside:')) {
    const ip = dstSpec.slice('outside:'.length);
    if (net.isIP(ip) !== 4) throw invalidParameter(`invalid outside address ${JSON.stringify(ip)}`);
    dst = { kind: 'outside', label: dstSpec, ip };
  } else if (net.isIP(dstSpec) === 4) {
    dst = { kind: 'address', label: dstSpec, ip: dstSpec };
  } else {
    const d = containerParty(ctx, dstSpec);
    const eps = ipv4Endpoints(d.container!);
    if (!d.netns) throw invalidParameter(`container ${d.label} uses the host's network: trace to host or to a host address instead`);
    // the address on a network both share, as one container would reach the other; else its first one
    const shared = src.container ? eps.find((e) => src.container!.endpoints[e.networkName]) : undefined;
    d.endpoint = shared ?? eps[0];
    if (!d.endpoint) throw invalidParameter(`container ${d.label} has no IPv4 address to trace to`);
    d.ip = d.endpoint.ipv4;
    dst = d;
  }
  if (src.container && src.netns) {
    const eps = ipv4Endpoints(src.container);
    src.endpoint = (dst.endpoint && eps.find((e) => e.networkId === dst.endpoint!.networkId)) ?? eps[0];
    src.ip = src.endpoint?.ipv4;
  }
  return { src, dst };
}

export function checkPort(p: string | number): number {
  const n = Number(p);
  if (!/^\d+$/.test(String(p)) || n < 1 || n > 65535) throw invalidParameter(`invalid port ${JSON.stringify(String(p))}: a port is a number from 1 to 65535`);
  return n;
}
