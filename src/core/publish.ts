// Pure planning for published ports and legacy links: what to bind, what the firewall gets, what a
// linking container sees (hosts entries, environment). No I/O here.
import type { ContainerRecord } from './types.ts';
import type { FwLink, FwPort } from '../firewall/model.ts';
import type { Proto } from './ports.ts';
import net from 'node:net';
import { invalidParameter } from '../util/errors.ts';

export interface PortRequest {
  proto: Proto;
  containerPort: number;
  hostIp: string;
  /** 0 = any free port; from..to = the first free port of that range */
  hostFrom: number;
  hostTo: number;
}

export interface Mapping {
  proto: Proto;
  containerPort: number;
  hostIp: string;
  hostPort: number;
}

function parseKey(k: string): { port: number; proto: Proto } {
  const [p = '', proto = 'tcp', ...rest] = k.split('/');
  const port = /^\d{1,5}$/.test(p) ? Number(p) : NaN;
  // Docker: `invalid port specification: "0/tcp"` for a key that is not PORT[/PROTO] with PORT in 1-65535
  if (rest.length || !Number.isInteger(port) || port < 1 || port > 65535) throw invalidParameter(`invalid port specification: ${JSON.stringify(k)}`);
  if (proto !== 'tcp' && proto !== 'udp' && proto !== 'sctp') throw invalidParameter(`invalid proto: ${proto}`);
  return { port, proto };
}

/** HostPort of a binding: '' or '0' = any free port, 'N' = that port, 'N-M' = the first free port of the range. */
function parseHostPort(s: string): [number, number] {
  if (!s || s === '0') return [0, 0];
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(s);
  const a = m ? Number(m[1]) : NaN;
  const b = m?.[2] ? Number(m[2]) : a;
  if (!m || a < 1 || b > 65535 || b < a) throw invalidParameter(`invalid port specification: ${JSON.stringify(s)}`);
  return [a, b];
}

function checkHostIp(ip: string): void {
  if (ip && !net.isIP(ip)) throw invalidParameter(`invalid IP address: ${ip}`);
}

/**
 * Create-time check of HostConfig.PortBindings (Docker validates them when the container is created, not
 * when it starts): every key is PORT[/PROTO], every host port empty, a port or a range, every host IP an IP.
 */
export function validatePortBindings(bindings: Record<string, { HostIp?: string; HostPort?: string }[] | null> | undefined): void {
  for (const [key, list] of Object.entries(bindings ?? {})) {
    parseKey(key);
    for (const b of list ?? []) {
      parseHostPort(b?.HostPort ?? '');
      checkHostIp(b?.HostIp ?? '');
    }
  }
}

/** ExposedPorts keys (from the API or an image): PORT[/PROTO]. */
export function validateExposedPorts(exposed: Record<string, object> | undefined): void {
  for (const key of Object.keys(exposed ?? {})) parseKey(key);
}

/** Requests from HostConfig.PortBindings, plus every exposed port for -P. */
export function portRequests(c: ContainerRecord, defaultHostIp: string): PortRequest[] {
  const out: PortRequest[] = [];
  const bindings = c.hostConfig.PortBindings ?? {};
  for (const [key, list] of Object.entries(bindings)) {
    const { port, proto } = parseKey(key);
    for (const b of list ?? [{ HostIp: '', HostPort: '' }]) {
      const [from, to] = parseHostPort(b.HostPort ?? '');
      let ip = b.HostIp ?? '';
      checkHostIp(ip);
      if (ip === '0.0.0.0') ip = '';
      out.push({ proto, containerPort: port, hostIp: ip || (defaultHostIp === '0.0.0.0' ? '' : defaultHostIp), hostFrom: from, hostTo: to });
    }
  }
  if (c.hostConfig.PublishAllPorts) {
    for (const key of Object.keys(c.config.ExposedPorts ?? {})) {
      if (key in bindings) continue;
      const { port, proto } = parseKey(key);
      out.push({ proto, containerPort: port, hostIp: defaultHostIp === '0.0.0.0' ? '' : defaultHostIp, hostFrom: 0, hostTo: 0 });
    }
  }
  return out;
}

/** NetworkSettings.Ports as Docker shows them. */
export function publishedView(ms: Mapping[]): Record<string, { HostIp: string; HostPort: string }[]> {
  const out: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const m of ms) (out[`${m.containerPort}/${m.proto}`] ??= []).push({ HostIp: m.hostIp || '0.0.0.0', HostPort: String(m.hostPort) });
  return out;
}

/**
 * Firewall elements: consecutive mappings (host port and container port both +1, same proto and address)
 * become one range, so `-p 8000-8999:8000-8999` is one element, not a thousand.
 */
export function firewallPorts(ms: Mapping[], containerIp: string, bridge: string): FwPort[] {
  const sorted = [...ms].sort((a, b) => a.proto.localeCompare(b.proto) || a.hostIp.localeCompare(b.hostIp) || a.hostPort - b.hostPort);
  const out: FwPort[] = [];
  for (const m of sorted) {
    const last = out[out.length - 1];
    // Only runs that keep the port number (host port = container port) merge: DNAT to a port range keeps
    // a packet's port when it lies inside the range, which is exactly this case.
    if (last && last.proto === m.proto && last.hostIp === m.hostIp && last.hostPortEnd + 1 === m.hostPort && last.containerPortEnd + 1 === m.containerPort && m.hostPort === m.containerPort && last.hostPort === last.containerPort) {
      last.hostPortEnd = m.hostPort;
      last.containerPortEnd = m.containerPort;
      continue;
    }
    out.push({ proto: m.proto, hostIp: m.hostIp, hostPort: m.hostPort, hostPortEnd: m.hostPort, containerIp, containerPort: m.containerPort, containerPortEnd: m.containerPort, bridge, family: containerIp.includes(':') ? 6 : 4 });
  }
  return out;
}

export interface LinkSpec {
  name: string; // linked container's name
  alias: string;
}

export function parseLinks(links: string[] | null): LinkSpec[] {
  return (links ?? []).map((l) => {
    const s = l.replace(/^\//, '');
    const [name, alias] = s.split(':');
    if (!name) throw invalidParameter(`invalid link: ${l}`);
    return { name, alias: (alias ?? name).replace(/^.*\//, '') };
  });
}

/**
 * Docker's link environment (daemon/links): ALIAS_PORT, ALIAS_PORT_80_TCP{,_ADDR,_PORT,_PROTO} per exposed
 * port (tcp first, then by number), _START/_END for runs of consecutive ports, ALIAS_NAME, ALIAS_ENV_*.
 */
export function linkEnv(linkerName: string, alias: string, linked: ContainerRecord, ip: string): string[] {
  const A = alias.toUpperCase().replace(/-/g, '_');
  const env: string[] = [];
  const ports = Object.keys(linked.config.ExposedPorts ?? {}).map((k) => {
    const [p, proto = 'tcp'] = k.split('/');
    return { port: Number(p), proto: proto! };
  }).sort((a, b) => (a.proto === b.proto ? a.port - b.port : a.proto === 'tcp' ? -1 : b.proto === 'tcp' ? 1 : a.proto.localeCompare(b.proto)));
  let start = ports[0], end = ports[0];
  const key = (p: { port: number; proto: string }) => `${A}_PORT_${p.port}_${p.proto.toUpperCase()}`;
  ports.forEach((p, i) => {
    if (i === 0) env.push(`${A}_PORT=${p.proto}://${ip}:${p.port}`);
    const P = key(p);
    env.push(`${P}=${p.proto}://${ip}:${p.port}`, `${P}_ADDR=${ip}`, `${P}_PORT=${p.port}`, `${P}_PROTO=${p.proto}`);
    if (p.port === end!.port + 1 && p.proto === end!.proto) {
      end = p;
      if (i < ports.length - 1) return;
    }
    if (end !== start) {
      const S = key(start!);
      env.push(`${S}_START=${start!.proto}://${ip}:${start!.port}`, `${S}_PORT_START=${start!.port}`, `${S}_END=${end!.proto}://${ip}:${end!.port}`, `${S}_PORT_END=${end!.port}`);
    }
    start = p;
    end = p;
  });
  env.push(`${A}_NAME=/${linkerName}/${alias}`);
  for (const e of linked.config.Env) {
    const i = e.indexOf('=');
    if (i < 0) continue;
    const k = e.slice(0, i);
    if (k === 'HOME' || k === 'PATH') continue;
    env.push(`${A}_ENV_${k}=${e.slice(i + 1)}`);
  }
  return env;
}

/** Firewall exceptions for a link when icc is off: the linker may reach the linked container's exposed ports. */
export function linkRules(bridge: string, fromIp: string, linked: ContainerRecord, toIp: string): FwLink[] {
  return Object.keys(linked.config.ExposedPorts ?? {}).map((k) => {
    const [p, proto = 'tcp'] = k.split('/');
    return { bridge, fromIp, toIp, proto: proto as Proto, port: Number(p) };
  });
}
