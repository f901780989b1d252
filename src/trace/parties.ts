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

/** A container's endpoints with an address of the family, eth0 first. */
function endpointsOf(c: ContainerRecord, family: 4 | 6): EndpointRecord[] {
  return Object.values(c.endpoints).filter((e) => (family === 6 ? e.ipv6 : e.ipv4)).sort((a, b) => a.ifname.localeCompare(b.ifname, undefined, { numeric: true }));
}

/** `[2001:db8::1]:8080` or `198.51.100.1:8080` */
const HOST_PORT = /^(?:\[([0-9a-fA-F:.]+)\]|(\d+\.\d+\.\d+\.\d+)):(\d+)$/;

/**
 * The two parties of a trace. The address family is the one of an address named in SRC or DST, else
 * IPv6 when `ipv6` (containers are then reached at their IPv6 addresses), else IPv4.
 */
export async function resolveParties(ctx: PartyContext, srcSpec: string, dstSpec: string, ipv6 = false): Promise<{ src: Party; dst: Party; family: 4 | 6 }> {
  if (!srcSpec || !dstSpec) throw invalidParameter('a trace needs a source and a destination');
  const named = [srcSpec.replace(/^outside:/, ''), dstSpec.replace(/^outside:/, ''), HOST_PORT.exec(dstSpec)?.[1] ?? ''].map((x) => net.isIP(x)).find((v) => v);
  const family: 4 | 6 = named === 6 ? 6 : named === 4 ? 4 : ipv6 ? 6 : 4;
  if (ipv6 && family === 4) throw invalidParameter(`--ipv6 with an IPv4 address in "${srcSpec} ${dstSpec}": name IPv6 addresses, or leave --ipv6 out`);
  const v = family === 6 ? 'IPv6' : 'IPv4';
  let src: Party;
  if (srcSpec === 'host') src = { kind: 'host', label: 'host' };
  else if (srcSpec.startsWith('outside:')) {
    const ip = srcSpec.slice('outside:'.length);
    if (!net.isIP(ip)) throw invalidParameter(`invalid outside address ${JSON.stringify(ip)}: an IP address is needed (outside:198.51.100.2)`);
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
  const hostPort = HOST_PORT.exec(dstSpec);
  if (dstSpec === 'host' && src.kind !== 'container') {
    throw invalidParameter(`destination host: from ${src.label}, name the host's address and port instead (HOSTIP:PORT, e.g. 198.51.100.1:8080)`);
  } else if (dstSpec === 'host') {
    // the host as the container sees it: its network's gateway (the bridge's address)
    const gw = src.container ? endpointsOf(src.container, family).map((e) => (family === 6 ? e.gateway6 : e.gateway4)).find(Boolean) : undefined;
    dst = { kind: 'host', label: 'host', ip: gw ?? (family === 6 ? '::1' : '127.0.0.1') };
  } else if (hostPort) {
    const ip = hostPort[1] ?? hostPort[2]!;
    if (!net.isIP(ip)) throw invalidParameter(`invalid destination address ${JSON.stringify(ip)}`);
    dst = { kind: 'address', label: dstSpec, ip, port: checkPort(hostPort[3]!) };
  } else if (dstSpec.startsWith('outside:')) {
    const ip = dstSpec.slice('outside:'.length);
    if (!net.isIP(ip)) throw invalidParameter(`invalid outside address ${JSON.stringify(ip)}`);
    dst = { kind: 'outside', label: dstSpec, ip };
  } else if (net.isIP(dstSpec)) {
    dst = { kind: 'address', label: dstSpec, ip: dstSpec };
  } else {
    const d = containerParty(ctx, dstSpec);
    const eps = endpointsOf(d.container!, family);
    if (!d.netns) throw invalidParameter(`container ${d.label} uses the host's network: trace to host or to a host address instead`);
    // the address on a network both share, as one container would reach the other; else its first one
    const shared = src.container ? eps.find((e) => src.container!.endpoints[e.networkName]) : undefined;
    d.endpoint = shared ?? eps[0];
    if (!d.endpoint) throw invalidParameter(`container ${d.label} has no ${v} address to trace to${family === 6 ? ' (its networks were not created with --ipv6)' : ''}`);
    d.ip = family === 6 ? d.endpoint.ipv6 : d.endpoint.ipv4;
    dst = d;
  }
  if (net.isIP(dst.ip!) !== family || (src.ip && net.isIP(src.ip) !== family)) throw invalidParameter(`a trace is IPv4 or IPv6, not both: ${srcSpec} → ${dstSpec}`);
  if (src.container && src.netns) {
    const eps = endpointsOf(src.container, family);
    src.endpoint = (dst.endpoint && eps.find((e) => e.networkId === dst.endpoint!.networkId)) ?? eps[0];
    src.ip = family === 6 ? src.endpoint?.ipv6 : src.endpoint?.ipv4;
    if (!src.endpoint && family === 6) throw invalidParameter(`container ${src.label} has no IPv6 address (its networks were not created with --ipv6)`);
  }
  return { src, dst, family };
}

export function checkPort(p: string | number): number {
  const n = Number(p);
  if (!/^\d+$/.test(String(p)) || n < 1 || n > 65535) throw invalidParameter(`invalid port ${JSON.stringify(String(p))}: a port is a number from 1 to 65535`);
  return n;
}
