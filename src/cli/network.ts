// `loom network ...`: create, ls, inspect, rm, prune, connect, disconnect.
import type { Command } from './main.ts';
import { parseFlags, f, UsageError } from './flags.ts';
import { ApiError } from './client.ts';
import { renderTemplate } from './gotemplate.ts';
import { printTable, formatOutput } from './output.ts';

function kv(list: string[], what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const x of list) {
    const i = x.indexOf('=');
    if (i <= 0 && what !== 'label') throw new UsageError(`invalid ${what} format: ${x} (expected key=value)`);
    out[i < 0 ? x : x.slice(0, i)] = i < 0 ? '' : x.slice(i + 1);
  }
  return out;
}

const create: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-d,--driver', 'string'), f('--subnet', 'list'), f('--gateway', 'list'), f('--ip-range', 'list'),
    f('--aux-address', 'list'), f('--ipv6'), f('--ipv4'), f('--internal'), f('--attachable'), f('--label', 'list'), f('-o,--opt', 'list', 'opt'),
    f('--ipam-driver', 'string'), f('--ipam-opt', 'list'), f('--scope', 'string'), f('--ingress'), f('--config-only'), f('--config-from', 'string')], { interspersed: true });
  if (p.args.length !== 1) throw new UsageError('"network create" requires exactly 1 argument.');
  const subnets: string[] = p.flags.subnet;
  const gws: string[] = p.flags.gateway;
  const ranges: string[] = p.flags['ip-range'];
  if (gws.length > subnets.length) throw new UsageError('every gateway must have a corresponding subnet');
  if (ranges.length > subnets.length) throw new UsageError('every ip-range must have a corresponding subnet');
  const aux = kv(p.flags['aux-address'], 'aux-address');
  const config = subnets.map((s, i) => ({
    Subnet: s,
    ...(gws[i] ? { Gateway: gws[i] } : {}),
    ...(ranges[i] ? { IPRange: ranges[i] } : {}),
    ...(Object.keys(aux).length && i === 0 ? { AuxiliaryAddresses: aux } : {}),
  }));
  const body = {
    Name: p.args[0], Driver: p.flags.driver ?? 'bridge', Internal: !!p.flags.internal, Attachable: !!p.flags.attachable,
    EnableIPv6: !!p.flags.ipv6, IPAM: { Driver: p.flags['ipam-driver'] ?? 'default', Config: config, Options: kv(p.flags['ipam-opt'], 'ipam-opt') },
    Options: kv(p.flags.opt, 'opt'), Labels: kv(p.flags.label, 'label'),
  };
  const r = await cli.client.request('POST', '/networks/create', body);
  cli.out(`${r.body.Id}\n`);
  return 0;
};

const ls: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-q,--quiet'), f('--no-trunc'), f('-f,--filter', 'list', 'filter'), f('--format', 'string')], { interspersed: true });
  const filters: Record<string, string[]> = {};
  for (const x of p.flags.filter) {
    const i = x.indexOf('=');
    if (i < 0) throw new UsageError(`bad format of filter (expected name=value)`);
    (filters[x.slice(0, i)] ??= []).push(x.slice(i + 1));
  }
  const q = Object.keys(filters).length ? `?filters=${encodeURIComponent(JSON.stringify(filters))}` : '';
  const list = ((await cli.client.request('GET', `/networks${q}`)).body as any[]).sort((a, b) => a.Name.localeCompare(b.Name));
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
  else if (out.length || !failed) cli.out(JSON.stringify(out, null, 4) + '\n');
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
  if (!p.flags.force) {
    cli.out('WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] ');
    const answer = await new Promise<string>((resolve) => {
      process.stdin.once('data', (b) => resolve(b.toString().trim()));
      process.stdin.once('end', () => resolve(''));
    });
    process.stdin.pause();
    if (!/^y(es)?$/i.test(answer)) return 0;
  }
  const r = (await cli.client.request('POST', '/networks/prune')).body;
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

const subs: Record<string, Command> = { create, ls, list: ls, inspect, rm, remove: rm, prune, connect, disconnect };

export const networkCommand: Command = async (cli, argv) => {
  const [sub, ...rest] = argv;
  const fn = sub ? subs[sub] : undefined;
  if (!fn) {
    cli.out('Usage:  loom network COMMAND\n\nManage networks\n\nCommands:\n  connect     Connect a container to a network\n  create      Create a network\n  disconnect  Disconnect a container from a network\n  inspect     Display detailed information on one or more networks\n  ls          List networks\n  prune       Remove all unused networks\n  rm          Remove one or more networks\n');
    return sub ? 1 : 0;
  }
  return fn(cli, rest);
};
