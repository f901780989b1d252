// FwState -> nftables text. Pure: no I/O, deterministic output (golden-tested).
//
// Shape (one table per family, `ip loom` and `ip6 loom`, the only tables loom ever touches):
//   set bridges      every loom bridge; "into a container network" is `oifname @bridges`
//   four maps of published ports, one element per port or port range (never one rule per port), so the
//   packet path is at most four lookups however many ports are published, and publishing or unpublishing
//   is one element in one transaction:
//     ports             -p 8080:80            protocol . host port : container address . port   (hash)
//     ports_on_addr     -p 10.0.0.1:8080:80   host address . protocol . host port : ...          (hash)
//     port_ranges       -p 9000-9009:80       host address(es) . protocol . host ports : ...     (interval)
//     port_ranges_same  -p 8000-8010:8000-8010  ... : container address; DNAT keeps the port    (interval)
//   Single ports live in hash maps because nft 1.0.6 reads a whole interval map back before deleting
//   one element of it (removal cost grows with the map: 20 ms at 3000 elements, against 0.25 ms here).
//   set links        --link exceptions to icc=false: bridge . from . to . protocol . port
//   chain prerouting / output   local destination addresses go to chain published: DNAT by the maps
//   chain postrouting           masquerade: outbound, hairpin, and the host's 127.0.0.1 into a bridge
//   chain input                 isolation for the host's side of a bridge: other networks' containers
//                               may not reach a network's gateway address
//   chain forward               which traffic may enter a container network (policy stays accept: loom
//                               only drops traffic headed into, or leaving, its own bridges)
// Per-network rules (masquerade, icc, internal) are plain rules keyed on the bridge name, like Docker's
// iptables rules, so `nft list table ip loom` reads like `iptables-save`. Networks change rarely; they
// are applied by rewriting the table. Ports and links change with every container start and stop; they
// are set/map elements, added and deleted incrementally.
import net from 'node:net';
import ipaddr from 'ipaddr.js';
import type { FwLink, FwNetwork, FwPort, FwProto, FwState } from './model.ts';

export const TABLE = 'loom';

interface Family {
  /** nft address family of the table */
  nf: 'ip' | 'ip6';
  /** payload keyword for addresses */
  addr: 'ip' | 'ip6';
  addrType: 'ipv4_addr' | 'ipv6_addr';
  /** the key of a port published on every address */
  any: string;
  version: 4 | 6;
}

const V4: Family = { nf: 'ip', addr: 'ip', addrType: 'ipv4_addr', any: '0.0.0.0/0', version: 4 };
const V6: Family = { nf: 'ip6', addr: 'ip6', addrType: 'ipv6_addr', any: '::/0', version: 6 };

/** Thrown for input that cannot be rendered; names the offending value. */
export class FwInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FwInputError';
  }
}

// ---------------------------------------------------------------------------------------------------
// Validation and normalisation. Every value below ends up inside nft text, so each one is checked
// against its grammar first: a bridge name with a quote in it must fail here, not inject a rule.

const IFNAME = /^[A-Za-z0-9_.:@+-]{1,15}$/;
const PROTOS: readonly FwProto[] = ['tcp', 'udp', 'sctp'];

export function checkBridge(name: string): string {
  if (typeof name !== 'string' || !IFNAME.test(name)) throw new FwInputError(`invalid bridge name: ${JSON.stringify(name)}`);
  return name;
}

function checkProto(p: string): FwProto {
  if (!PROTOS.includes(p as FwProto)) throw new FwInputError(`invalid protocol: ${JSON.stringify(p)}`);
  return p as FwProto;
}

function checkPort(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new FwInputError(`invalid ${what}: ${JSON.stringify(n)}`);
  return n;
}

/** Canonical text of an address (IPv6 compressed per RFC 5952), so equal addresses compare equal. */
export function normAddr(ip: string, version: 4 | 6): string {
  // node's check first: it refuses forms ipaddr.js would accept and reinterpret (010.1.1.1 as octal).
  if (typeof ip !== 'string' || net.isIP(ip) !== version) throw new FwInputError(`invalid IPv${version} address: ${JSON.stringify(ip)}`);
  return version === 4 ? ipaddr.IPv4.parse(ip).toString() : ipaddr.IPv6.parse(ip).toRFC5952String();
}

/** A subnet with its host bits cleared (nft refuses a prefix with host bits set). */
export function normSubnet(cidr: string, version: 4 | 6): string {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(typeof cidr === 'string' ? cidr : '');
  if (!m || net.isIP(m[1]!) !== version || Number(m[2]) > (version === 4 ? 32 : 128)) {
    throw new FwInputError(`invalid IPv${version} subnet: ${JSON.stringify(cidr)}`);
  }
  const network = version === 4
    ? ipaddr.IPv4.networkAddressFromCIDR(cidr).toString()
    : ipaddr.IPv6.networkAddressFromCIDR(cidr).toRFC5952String();
  return `${network}/${m[2]}`;
}

function hostIpOf(ip: string, version: 4 | 6): string {
  if (!ip || ip === '0.0.0.0' || ip === '::') return '';
  return normAddr(ip, version);
}

/** Checked, canonical copy of a network. */
export function normNetwork(n: FwNetwork): FwNetwork {
  if (!n || typeof n.id !== 'string' || !n.id) throw new FwInputError(`network without an id: ${JSON.stringify(n)}`);
  const out: FwNetwork = {
    id: n.id,
    bridge: checkBridge(n.bridge),
    subnets4: [...new Set((n.subnets4 ?? []).map((s) => normSubnet(s, 4)))],
    subnets6: [...new Set((n.subnets6 ?? []).map((s) => normSubnet(s, 6)))],
    masquerade: !!n.masquerade,
    icc: !!n.icc,
    internal: !!n.internal,
  };
  const gw4 = [...new Set((n.gateways4 ?? []).map((g) => normAddr(g, 4)))];
  const gw6 = [...new Set((n.gateways6 ?? []).map((g) => normAddr(g, 6)))];
  if (gw4.length) out.gateways4 = gw4;
  if (gw6.length) out.gateways6 = gw6;
  if (n.hostBindingIpv4 !== undefined) out.hostBindingIpv4 = n.hostBindingIpv4;
  return out;
}

/**
 * Checked, canonical port elements. Shifting ranges (8000-8009:9000-9009) become one element per port:
 * DNAT to a port range keeps the packet's port when it lies inside the range, which maps N:N only when
 * the numbers are equal, and N:1 always; anything else needs one element per port.
 */
export function normPorts(p: FwPort): FwPort[] {
  const family = p.family === 6 ? 6 : p.family === 4 ? 4 : null;
  if (!family) throw new FwInputError(`invalid port family: ${JSON.stringify(p.family)}`);
  const base: FwPort = {
    proto: checkProto(p.proto),
    hostIp: hostIpOf(p.hostIp, family),
    hostPort: checkPort(p.hostPort, 'host port'),
    hostPortEnd: checkPort(p.hostPortEnd ?? p.hostPort, 'host port'),
    containerIp: normAddr(p.containerIp, family),
    containerPort: checkPort(p.containerPort, 'container port'),
    containerPortEnd: checkPort(p.containerPortEnd ?? p.containerPort, 'container port'),
    bridge: checkBridge(p.bridge),
    family,
  };
  const hostLen = base.hostPortEnd - base.hostPort, ctrLen = base.containerPortEnd - base.containerPort;
  if (hostLen < 0 || ctrLen < 0) throw new FwInputError(`invalid port range: ${describePort(base)}`);
  if (ctrLen === 0 || (hostLen === ctrLen && base.hostPort === base.containerPort)) return [base];
  if (hostLen !== ctrLen) throw new FwInputError(`host and container port ranges differ in length: ${describePort(base)}`);
  return Array.from({ length: hostLen + 1 }, (_, i) => ({ ...base, hostPort: base.hostPort + i, hostPortEnd: base.hostPort + i, containerPort: base.containerPort + i, containerPortEnd: base.containerPort + i }));
}

export function normLink(l: FwLink): FwLink {
  const version = net.isIP(l.fromIp) === 6 ? 6 : 4;
  return {
    bridge: checkBridge(l.bridge),
    fromIp: normAddr(l.fromIp, version),
    toIp: normAddr(l.toIp, version),
    proto: checkProto(l.proto),
    port: checkPort(l.port, 'link port'),
  };
}

const range = (a: number, b: number) => (a === b ? String(a) : `${a}-${b}`);

/** "tcp 0.0.0.0:8080-8090 -> 172.17.0.2:8080-8090", for messages. */
export function describePort(p: FwPort): string {
  const host = p.hostIp ? (p.family === 6 ? `[${p.hostIp}]` : p.hostIp) : p.family === 6 ? '[::]' : '0.0.0.0';
  const ctr = p.family === 6 ? `[${p.containerIp}]` : p.containerIp;
  return `${p.proto} ${host}:${range(p.hostPort, p.hostPortEnd)} -> ${ctr}:${range(p.containerPort, p.containerPortEnd)}`;
}

export function describeLink(l: FwLink): string {
  return `${l.fromIp} -> ${l.toIp}:${l.port}/${l.proto} on ${l.bridge}`;
}

/** Identity of a port element (its map key): two elements with the same key cannot coexist. */
export function portKey(p: FwPort): string {
  return `${p.family}|${p.proto}|${p.hostIp}|${p.hostPort}-${p.hostPortEnd}`;
}

export function linkKey(l: FwLink): string {
  return `${l.bridge}|${l.fromIp}|${l.toIp}|${l.proto}|${l.port}`;
}

/**
 * Two port elements whose keys overlap (same family and protocol, address equal or one of them "every
 * address", port ranges intersecting). The map has interval keys and nft refuses overlapping intervals,
 * but only with "File exists"; this names both sides.
 */
export function portsOverlap(a: FwPort, b: FwPort): boolean {
  return a.family === b.family && a.proto === b.proto && (a.hostIp === b.hostIp || !a.hostIp || !b.hostIp)
    && a.hostPort <= b.hostPortEnd && b.hostPort <= a.hostPortEnd;
}

// ---------------------------------------------------------------------------------------------------
// Elements

const isRange = (p: FwPort) => p.hostPortEnd > p.hostPort;

/**
 * A range published on the same numbers (8000-8010:8000-8010) maps to the container address alone: DNAT
 * without a port keeps the packet's port. Not one map with interval data ("C . 8000-8010") for all ranges:
 * nft 1.0.6 then mislays the registers of IPv6 data and the kernel refuses the rule (ENODATA).
 */
const keepsPort = (p: FwPort) => isRange(p) && p.containerPort === p.hostPort && p.containerPortEnd === p.hostPortEnd;

type PortMap = 'ports' | 'ports_on_addr' | 'port_ranges' | 'port_ranges_same';

function portMap(p: FwPort): PortMap {
  if (keepsPort(p)) return 'port_ranges_same';
  if (isRange(p)) return 'port_ranges';
  return p.hostIp ? 'ports_on_addr' : 'ports';
}

function portElementKey(p: FwPort, f: Family): string {
  const key = `${p.proto} . ${range(p.hostPort, p.hostPortEnd)}`;
  if (portMap(p) === 'ports') return key;
  return `${p.hostIp || f.any} . ${key}`;
}

function portElement(p: FwPort, f: Family): string {
  return `${portElementKey(p, f)} : ${p.containerIp}${keepsPort(p) ? '' : ` . ${p.containerPort}`}`;
}

/** nft's text of a port's element (the key, and the value when adding), for messages */
export function portElementText(p: FwPort, withValue: boolean): string {
  const f = familyOf(p.family);
  return withValue ? portElement(p, f) : portElementKey(p, f);
}

export function linkElement(l: FwLink): string {
  return `"${l.bridge}" . ${l.fromIp} . ${l.toIp} . ${l.proto} . ${l.port}`;
}

const linkVersion = (l: FwLink): 4 | 6 => (l.fromIp.includes(':') ? 6 : 4);

function sortPorts(ps: FwPort[]): FwPort[] {
  return [...ps].sort((a, b) => a.family - b.family || a.proto.localeCompare(b.proto) || a.hostIp.localeCompare(b.hostIp) || a.hostPort - b.hostPort);
}

function sortLinks(ls: FwLink[]): FwLink[] {
  return [...ls].sort((a, b) => linkKey(a).localeCompare(linkKey(b)));
}

/** One command per element, so that nft's error (which names a line) names the element. */
const elementCommand = (verb: 'add' | 'delete', f: Family, set: string, element: string) => `${verb} element ${f.nf} ${TABLE} ${set} { ${element} }\n`;
const familyOf = (v: 4 | 6) => (v === 4 ? V4 : V6);

export function renderAddPorts(ports: FwPort[]): string {
  return sortPorts(ports.flatMap(normPorts)).map((p) => elementCommand('add', familyOf(p.family), portMap(p), portElement(p, familyOf(p.family)))).join('');
}

/** Deletes by exact key: nft 1.0.6 deletes an interval element that merely *contains* a missing key. */
export function renderDeletePorts(ports: FwPort[]): string {
  return sortPorts(ports.flatMap(normPorts)).map((p) => elementCommand('delete', familyOf(p.family), portMap(p), portElementKey(p, familyOf(p.family)))).join('');
}

export function renderAddLinks(links: FwLink[]): string {
  return sortLinks(links.map(normLink)).map((l) => elementCommand('add', familyOf(linkVersion(l)), 'links', linkElement(l))).join('');
}

export function renderDeleteLinks(links: FwLink[]): string {
  return sortLinks(links.map(normLink)).map((l) => elementCommand('delete', familyOf(linkVersion(l)), 'links', linkElement(l))).join('');
}

// ---------------------------------------------------------------------------------------------------
// The whole table

const q = (s: string) => `"${s}"`;
const short = (id: string) => id.slice(0, 12);

function elementsBlock(elements: string[]): string[] {
  if (!elements.length) return []; // nft has no syntax for an empty element list
  return [`\t\telements = { ${elements.join(',\n\t\t\t     ')} }`];
}

function renderFamily(state: FwState, f: Family): string {
  const nets = [...state.networks].sort((a, b) => a.bridge.localeCompare(b.bridge));
  const subnets = (n: FwNetwork) => (f.version === 4 ? n.subnets4 : n.subnets6);
  const ports = sortPorts(state.ports.filter((p) => p.family === f.version));
  const links = sortLinks(state.links.filter((l) => linkVersion(l) === f.version));
  const a = f.addr;
  const portMapBlock = (name: PortMap, type: string, interval: boolean, comment: string) => [
    `\tmap ${name} {`,
    `\t\ttype ${type}`,
    ...(interval ? ['\t\tflags interval'] : []),
    `\t\tcomment "${comment}"`,
    ...elementsBlock(ports.filter((p) => portMap(p) === name).map((p) => portElement(p, f))),
    `\t}`,
  ];
  const postrouting: string[] = [];
  if (f.version === 4) {
    // DNAT in output sends the host's own 127.0.0.1 traffic out of a bridge (allowed by route_localnet on
    // the bridge); the container could not answer 127.0.0.1, so the source becomes the bridge's address.
    postrouting.push(`ip saddr 127.0.0.0/8 oifname @bridges masquerade comment "host's loopback to a published port"`);
  }
  for (const n of nets) {
    if (n.internal || !subnets(n).length) continue;
    if (n.masquerade) {
      for (const s of subnets(n)) postrouting.push(`${a} saddr ${s} oifname != ${q(n.bridge)} masquerade comment "outbound from ${short(n.id)}"`);
    }
    // Hairpin: a container reaching a published port of its own network through a host address. Unless
    // masqueraded, the server's reply would go straight back over the bridge from the server's own
    // address, which the client does not expect (and a container talking to itself would see its own
    // address as the source). Docker masquerades only container-to-itself and relies on br_netfilter
    // for the rest. The match is on the source subnet, not on iifname: when br_netfilter hands a DNATed
    // packet back to the bridge, postrouting sees no input interface.
    for (const s of subnets(n)) {
      postrouting.push(`${a} saddr ${s} oifname ${q(n.bridge)} ct status dnat masquerade comment "hairpin in ${short(n.id)}"`);
    }
  }

  // A gateway address is the host's own, so traffic to it meets the input hook, not forward: isolation
  // between networks covers it there (a container may still reach its own network's gateway).
  const input: string[] = [];
  for (const n of nets) {
    for (const g of (f.version === 4 ? n.gateways4 : n.gateways6) ?? []) {
      input.push(`${a} daddr ${g} iifname @bridges iifname != ${q(n.bridge)} drop comment "isolation: gateway of ${short(n.id)}"`);
    }
  }

  const forward: string[] = [];
  for (const n of nets.filter((x) => x.internal)) {
    forward.push(`iifname ${q(n.bridge)} oifname != ${q(n.bridge)} drop comment "internal ${short(n.id)}: no way out"`);
    forward.push(`oifname ${q(n.bridge)} iifname != ${q(n.bridge)} drop comment "internal ${short(n.id)}: no way in"`);
  }
  forward.push(`oifname @bridges ct state established,related accept comment "replies into containers"`);
  // Published ports are for anyone who can reach the host: DNATed traffic enters whatever its source
  // network, including another loom network (Docker's userland proxy gives the same reach).
  forward.push(`oifname @bridges ct status dnat accept comment "published ports"`);
  // A link is allowed both ways by lookup in one set: requests by destination port, replies by source port.
  forward.push(`iifname . ${a} saddr . ${a} daddr . meta l4proto . th dport @links accept comment "links: requests"`);
  forward.push(`iifname . ${a} daddr . ${a} saddr . meta l4proto . th sport @links accept comment "links: replies"`);
  // Same-bridge traffic only reaches this hook when br_netfilter hands bridged packets to it (Docker's
  // model too): icc=false is enforced here, so an icc=false bridge asks for it (nf_call_iptables on the
  // bridge, src/drivers/brnetfilter.ts); other bridges' frames skip this hook when the namespace's switch is off.
  for (const n of nets) {
    forward.push(n.icc
      ? `iifname ${q(n.bridge)} oifname ${q(n.bridge)} accept comment "icc in ${short(n.id)}"`
      : `iifname ${q(n.bridge)} oifname ${q(n.bridge)} drop comment "no icc in ${short(n.id)}"`);
  }
  forward.push(`iifname @bridges oifname @bridges drop comment "isolation between networks"`);
  forward.push(`iifname @bridges accept comment "containers reach out"`);
  forward.push(`oifname @bridges drop comment "nothing else into containers"`);

  const lines = [
    `table ${f.nf} ${TABLE} {`,
    `\tcomment "managed by loom, rewritten as a whole: do not edit"`,
    `\tset bridges {`,
    `\t\ttype ifname`,
    `\t\tcomment "every loom bridge"`,
    ...elementsBlock(nets.map((n) => q(n.bridge))),
    `\t}`,
    ...portMapBlock('ports', `inet_proto . inet_service : ${f.addrType} . inet_service`, false,
      'published on every host address: protocol . host port : container address . port'),
    ...portMapBlock('ports_on_addr', `${f.addrType} . inet_proto . inet_service : ${f.addrType} . inet_service`, false,
      'published on one host address: host address . protocol . host port : container address . port'),
    ...portMapBlock('port_ranges', `${f.addrType} . inet_proto . inet_service : ${f.addrType} . inet_service`, true,
      'port ranges: host address(es) . protocol . host ports : container address . port'),
    ...portMapBlock('port_ranges_same', `${f.addrType} . inet_proto . inet_service : ${f.addrType}`, true,
      'port ranges on the same numbers: DNAT to the container address keeps the port'),
    `\tset links {`,
    `\t\ttype ifname . ${f.addrType} . ${f.addrType} . inet_proto . inet_service`,
    `\t\tcomment "links under icc=false: bridge . from . to . protocol . port"`,
    ...elementsBlock(links.map(linkElement)),
    `\t}`,
    `\tchain prerouting {`,
    `\t\ttype nat hook prerouting priority dstnat; policy accept;`,
    `\t\tfib daddr type local jump published`,
    `\t}`,
    `\tchain output {`,
    `\t\ttype nat hook output priority -100; policy accept;`,
    // ::1 cannot be DNATed out of the host (IPv6 has no route_localnet): leave it to the host's own sockets.
    `\t\t${f.version === 6 ? 'ip6 daddr != ::1 ' : ''}fib daddr type local jump published`,
    `\t}`,
    `\tchain published {`,
    // A rule that rewrites the port must itself pin a protocol that has ports (nft refuses it otherwise).
    `\t\tmeta l4proto { tcp, udp, sctp } dnat ${a} to meta l4proto . th dport map @ports`,
    `\t\tmeta l4proto { tcp, udp, sctp } dnat ${a} to ${a} daddr . meta l4proto . th dport map @ports_on_addr`,
    `\t\tmeta l4proto { tcp, udp, sctp } dnat ${a} to ${a} daddr . meta l4proto . th dport map @port_ranges`,
    `\t\tdnat ${a} to ${a} daddr . meta l4proto . th dport map @port_ranges_same`,
    `\t}`,
    `\tchain postrouting {`,
    `\t\ttype nat hook postrouting priority srcnat; policy accept;`,
    ...postrouting.map((r) => `\t\t${r}`),
    `\t}`,
    `\tchain input {`,
    `\t\ttype filter hook input priority filter; policy accept;`,
    ...input.map((r) => `\t\t${r}`),
    `\t}`,
    `\tchain forward {`,
    `\t\ttype filter hook forward priority filter; policy accept;`,
    ...forward.map((r) => `\t\t${r}`),
    `\t}`,
    `}`,
  ];
  return lines.join('\n') + '\n';
}

/** Checked, canonical copy of a whole state (ports expanded where needed). */
export function normState(state: FwState): FwState {
  return {
    networks: (state.networks ?? []).map(normNetwork),
    ports: (state.ports ?? []).flatMap(normPorts),
    links: (state.links ?? []).map(normLink),
  };
}

/**
 * Both tables as one script. Each starts with `table X loom` + `delete table X loom`: creating an
 * existing table is a no-op and deleting it then always succeeds, so the script replaces whatever was
 * there (or nothing) in the same transaction — atomic and idempotent, and never touching other tables.
 */
export function renderRuleset(state: FwState): string {
  const s = normState(state);
  return [V4, V6].map((f) => `table ${f.nf} ${TABLE}\ndelete table ${f.nf} ${TABLE}\n${renderFamily(s, f)}`).join('');
}

/** Removes loom's tables (for `loom system reset` and tests); fine when they do not exist. */
export function renderDeleteAll(): string {
  return [V4, V6].map((f) => `table ${f.nf} ${TABLE}\ndelete table ${f.nf} ${TABLE}\n`).join('');
}
