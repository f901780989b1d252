// `loom network ...`: create, ls, inspect, rm, prune, connect, disconnect.
import type { Command } from './main.ts';
import { parseFlags, f, UsageError } from './flags.ts';
import { confirm, filterQuery } from './prune.ts';
import { ApiError } from './client.ts';
import { renderTemplate } from './gotemplate.ts';
import { printTable, formatOutput } from './output.ts';
import { contains, parseCidr, type Cidr } from '../ipam/ipam.ts';
import { graphCommand } from './graph.ts';
import { traceCommand } from './trace.ts';

function kv(list: string[], what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const x of list) {
    const i = x.indexOf('=');
    if (i <= 0 && what !== 'label') throw new UsageError(`invalid ${what} format: ${x} (expected key=value)`);
    out[i < 0 ? x : x.slice(0, i)] = i < 0 ? '' : x.slice(i + 1);
  }
  return out;
}

/** Go's net.ParseCIDR / net.ParseIP, as the docker CLI matches ranges, gateways and aux addresses with them. */
function parseCidrGo(s: string): Cidr | null {
  try {
    return /^[^/]+\/\d+$/.test(s) ? parseCidr(s) : null;
  } catch {
    return null;
  }
}

function inSubnet(subnet: string, data: string): boolean {
  const s = parseCidrGo(subnet);
  if (!s) throw new CliError(`invalid subnet: invalid CIDR address: ${subnet}`);
  let ip = data;
  if (data.includes('/')) {
    const d = parseCidrGo(data);
    if (!d) throw new CliError(`invalid CIDR address: ${data}`);
    ip = d.address;
  }
  try {
    return contains(s, ip);
  } catch {
    return false;
  }
}

/**
 * The docker CLI's consolidateIpam: each --ip-range, --gateway and --aux-address goes to the --subnet that
 * contains it (not by position), with its error messages; the daemon then validates the result.
 */
export function consolidateIpam(subnets: string[], ranges: string[], gateways: string[], aux: Record<string, string>): IpamConfigIn[] {
  if (subnets.length < ranges.length || subnets.length < gateways.length) throw new CliError('every ip-range or gateway must have a corresponding subnet');
  const data = new Map<string, IpamConfigIn>();
  for (const s of subnets) {
    for (const k of data.keys()) {
      if (inSubnet(s, k) || inSubnet(k, s)) throw new CliError('multiple overlapping subnet configuration is not supported');
    }
    data.set(s, { Subnet: s });
  }
  for (const r of ranges) {
    let match = false;
    for (const s of subnets) {
      if (!inSubnet(s, r)) continue;
      const d = data.get(s)!;
      if (d.IPRange) throw new CliError(`cannot configure multiple ranges (${r}, ${d.IPRange}) on the same subnet (${s})`);
      d.IPRange = r;
      match = true;
    }
    if (!match) throw new CliError(`no matching subnet for range ${r}`);
  }
  for (const g of gateways) {
    let match = false;
    for (const s of subnets) {
      if (!inSubnet(s, g)) continue;
      const d = data.get(s)!;
      if (d.Gateway) throw new CliError(`cannot configure multiple gateways (${g}, ${d.Gateway}) for the same subnet (${s})`);
      d.Gateway = g;
      match = true;
    }
    if (!match) throw new CliError(`no matching subnet for gateway ${g}`);
  }
  for (const [k, a] of Object.entries(aux)) {
    let match = false;
    for (const s of subnets) {
      if (!inSubnet(s, a)) continue;
      const d = data.get(s)!;
      d.AuxiliaryAddresses = { ...(d.AuxiliaryAddresses ?? {}), [k]: a };
      match = true;
    }
    if (!match) throw new CliError(`no matching subnet for aux-address ${a}`);
  }
  return [...data.values()];
}

/** A client-side error the docker CLI prints as it is (exit 1), without "Error response from daemon". */
class CliError extends ApiError {
  constructor(message: string) {
    super(0, message);
  }
}

interface IpamConfigIn { Subnet: string; IPRange?: string; Gateway?: string; AuxiliaryAddresses?: Record<string, string> }

const create: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-d,--driver', 'string'), f('--subnet', 'list'), f('--gateway', 'list'), f('--ip-range', 'list'),
    f('--aux-address', 'list'), f('--ipv6'), f('--ipv4'), f('--internal'), f('--attachable'), f('--label', 'list'), f('-o,--opt', 'list', 'opt'),
    f('--ipam-driver', 'string'), f('--ipam-opt', 'list'), f('--scope', 'string'), f('--ingress'), f('--config-only'), f('--config-from', 'string')], { interspersed: true });
  if (p.args.length !== 1) throw new UsageError('"network create" requires exactly 1 argument.');
  const config = consolidateIpam(p.flags.subnet, p.flags['ip-range'], p.flags.gateway, kv(p.flags['aux-address'], 'aux-address'));
  const body = {
    Name: p.args[0], Driver: p.flags.driver ?? 'bridge', Internal: !!p.flags.internal, Attachable: !!p.flags.attachable,
    EnableIPv6: !!p.flags.ipv6, IPAM: { Driver: p.flags['ipam-driver'] ?? 'default', Config: config, Options: kv(p.flags['ipam-opt'], 'ipam-opt') },
    Options: kv(p.flags.opt, 'opt'), Labels: kv(p.flags.label, 'label'),
  };
  const r = await cli.client.request('POST', '/networks/create', body);
  cli.out(`${r.body.Id}\n`);
  return 0;
};

/** The docker CLI sorts networks by name in natural order (fvbommel/sortorder): digit runs by value. */
export function naturalCompare(a: string, b: string): number {
  const re = /(\d+|\D+)/g;
  const pa = a.match(re) ?? [], pb = b.match(re) ?? [];
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i]!, y = pb[i]!;
    if (x === y) continue;
    const dx = /^\d/.test(x), dy = /^\d/.test(y);
    if (dx && dy) {
      const nx = x.replace(/^0+/, ''), ny = y.replace(/^0+/, '');
      if (nx.length !== ny.length) return nx.length - ny.length;
      if (nx !== ny) return nx < ny ? -1 : 1;
      return x.length - y.length;
    }
    return x < y ? -1 : 1;
  }
  return pa.length - pb.length;
}

const ls: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-q,--quiet'), f('--no-trunc'), f('-f,--filter', 'list', 'filter'), f('--format', 'string')], { interspersed: true });
  const filters: Record<string, string[]> = {};
  for (const x of p.flags.filter) {
    const i = x.indexOf('=');
    if (i < 0) throw new UsageError(`bad format of filter (expected name=value)`);
    (filters[x.slice(0, i)] ??= []).push(x.slice(i + 1));
  }
  const q = Object.keys(filters).length ? `?filters=${encodeURIComponent(JSON.stringify(filters))}` : '';
  const list = ((await cli.client.request('GET', `/networks${q}`)).body as any[]).sort((a, b) => naturalCompare(a.Name, b.Name));
  const id = (x: string) => (p.flags['no-trunc'] ? x : x.slice(0, 12));
  if (p.flags.quiet) {
    for (const n of list) cli.out(`${id(n.Id)}\n`);
    return 0;
  }
  const rows = list.map((n) => ({ ID: id(n.Id), Name: n.Name, Driver: n.Driver, Scope: n.Scope, IPv6: String(n.EnableIPv6), Internal: String(n.Internal), CreatedAt: n.Created, Labels: Object.entries(n.Labels ?? {}).map(([k, v]) => `${k}=${v}`).join(',') }));
  if (p.flags.format) {
    formatOutput(cli, p.flags.format, rows, { ID: 'NETWORK ID', Name: 'NAME', Driver: 'DRIVER', Scope: 'SCOPE', IPv6: 'IPV6', Internal: 'INTERNAL', CreatedAt: 'CREATED', Labels: 'LABELS' });
    return 0;
  }
  printTable(cli, ['NETWORK ID', 'NAME', 'DRIVER', 'SCOPE'], rows.map((r) => [r.ID, r.Name, r.Driver, r.Scope]));
  return 0;
};

const inspect: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-f,--format', 'string'), f('-v,--verbose')], { interspersed: true });
  if (!p.args.length) throw new UsageError('"network inspect" requires at least 1 argument.');
  const out: unknown[] = [];
  let failed = false;
  for (const r of p.args) {
    try {
      out.push((await cli.client.request('GET', `/networks/${encodeURIComponent(r)}`)).body);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      cli.err(`Error response from daemon: ${e.message}\n`);
      failed = true;
    }
  }
  if (p.flags.format) for (const n of out) cli.out(renderTemplate(p.flags.format, n) + '\n');
  else cli.out(JSON.stringify(out, null, 4) + '\n'); // `[]` when none was found, as the docker CLI prints
  return failed ? 1 : 0;
};

const rm: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-f,--force')], { interspersed: true });
  if (!p.args.length) throw new UsageError('"network rm" requires at least 1 argument.');
  let failed = false;
  for (const r of p.args) {
    try {
      await cli.client.request('DELETE', `/networks/${encodeURIComponent(r)}`);
      cli.out(`${r}\n`);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      if (p.flags.force && e.status === 404) continue;
      cli.err(`Error response from daemon: ${e.message}\n`);
      failed = true;
    }
  }
  return failed ? 1 : 0;
};

const prune: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-f,--force'), f('--filter', 'list')], { interspersed: true });
  if (!p.flags.force && !(await confirm(cli, 'WARNING! This will remove all custom networks not used by at least one container.'))) return 0;
  const r = (await cli.client.request('POST', `/networks/prune${filterQuery(p.flags.filter as string[])}`)).body;
  if (r.NetworksDeleted?.length) cli.out(`Deleted Networks:\n${r.NetworksDeleted.join('\n')}\n\n`);
  return 0;
};

const connect: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('--ip', 'string'), f('--ip6', 'string'), f('--alias', 'list'), f('--link', 'list'), f('--link-local-ip', 'list'), f('--driver-opt', 'list'), f('--gw-priority', 'string')], { interspersed: true });
  const [net, ctr] = p.args;
  if (!net || !ctr) throw new UsageError('"network connect" requires exactly 2 arguments.');
  await cli.client.request('POST', `/networks/${encodeURIComponent(net)}/connect`, {
    Container: ctr,
    EndpointConfig: { IPAMConfig: { ...(p.flags.ip ? { IPv4Address: p.flags.ip } : {}), ...(p.flags.ip6 ? { IPv6Address: p.flags.ip6 } : {}) }, Aliases: p.flags.alias, Links: p.flags.link },
  });
  return 0;
};

const disconnect: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-f,--force')], { interspersed: true });
  const [net, ctr] = p.args;
  if (!net || !ctr) throw new UsageError('"network disconnect" requires exactly 2 arguments.');
  await cli.client.request('POST', `/networks/${encodeURIComponent(net)}/disconnect`, { Container: ctr, Force: !!p.flags.force });
  return 0;
};

const subs: Record<string, Command> = { create, ls, list: ls, inspect, rm, remove: rm, prune, connect, disconnect, graph: graphCommand, trace: traceCommand };

export const networkCommand: Command = async (cli, argv) => {
  const [sub, ...rest] = argv;
  const fn = sub ? subs[sub] : undefined;
  if (!fn) {
    cli.out('Usage:  loom network COMMAND\n\nManage networks\n\nCommands:\n  connect     Connect a container to a network\n  create      Create a network\n  disconnect  Disconnect a container from a network\n  graph       Draw the live topology (text, json, dot, svg)\n  inspect     Display detailed information on one or more networks\n  ls          List networks\n  prune       Remove all unused networks\n  rm          Remove one or more networks\n  trace       Trace the path of a probe between two endpoints\n');
    return sub ? 1 : 0;
  }
  return fn(cli, rest);
};
