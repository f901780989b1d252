// `loom node ls|inspect|rm`: the cluster's hosts (GET /nodes, answered from the cluster store). The table
// has docker's first columns and, for a classic cluster, the tunnel address and when a host was last seen.
import type { Cli, Command } from './main.ts';
import { parseFlags, f, UsageError } from './flags.ts';
import { filterQuery } from './prune.ts';
import { printTable, formatOutput, timeAgo } from './output.ts';

const cap = (s: string) => (s ? s[0]!.toUpperCase() + s.slice(1) : s);

async function fetchInfo(cli: Cli): Promise<any> {
  return (await cli.client.request('GET', '/info')).body;
}

const ls: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-q,--quiet'), f('-f,--filter', 'list', 'filter'), f('--format', 'string')], { interspersed: true });
  if (p.args.length) throw new UsageError('"node ls" accepts no arguments.');
  const nodes = (await cli.client.request('GET', `/nodes${filterQuery(p.flags.filter)}`)).body as any[];
  if (p.flags.quiet && !p.flags.format) {
    for (const n of nodes) cli.out(`${n.ID}\n`);
    return 0;
  }
  const self = nodes.length ? (await fetchInfo(cli)).Swarm?.NodeID : '';
  const rows = nodes.map((n) => ({
    ID: n.ID, Self: n.ID === self, Hostname: n.Description.Hostname, Status: cap(n.Status.State), Availability: cap(n.Spec.Availability),
    ManagerStatus: '', EngineVersion: n.Description.Engine.EngineVersion, Address: n.Status.Addr,
    LastSeen: n.Status.State === 'ready' ? 'now' : timeAgo(Date.parse(n.UpdatedAt)), TLS: 'Unknown',
  }));
  if (p.flags.format) {
    formatOutput(cli, p.flags.format, rows, { ID: 'ID', Self: '', Hostname: 'HOSTNAME', Status: 'STATUS', Availability: 'AVAILABILITY', ManagerStatus: 'MANAGER STATUS', EngineVersion: 'ENGINE VERSION', Address: 'ADDRESS', LastSeen: 'LAST SEEN', TLS: 'TLS STATUS' });
    return 0;
  }
  printTable(cli, ['ID', 'HOSTNAME', 'STATUS', 'ADDRESS', 'ENGINE VERSION', 'LAST SEEN'],
    rows.map((r) => [r.Self ? `${r.ID} *` : r.ID, r.Hostname, r.Status, r.Address, r.EngineVersion, r.LastSeen]));
  return 0;
};

const inspect: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-f,--format', 'string'), f('--pretty')], { interspersed: true });
  if (!p.args.length) throw new UsageError('"node inspect" requires at least 1 argument.');
  const out = [];
  for (const ref of p.args) out.push((await cli.client.request('GET', `/nodes/${encodeURIComponent(ref === 'self' ? (await fetchInfo(cli)).Swarm.NodeID : ref)}`)).body);
  cli.out(`${JSON.stringify(out, null, 4)}\n`);
  return 0;
};

const rm: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-f,--force')], { interspersed: true });
  if (!p.args.length) throw new UsageError('"node rm" requires at least 1 argument.');
  let failed = 0;
  for (const ref of p.args) {
    try {
      await cli.client.request('DELETE', `/nodes/${encodeURIComponent(ref)}${p.flags.force ? '?force=1' : ''}`);
      cli.out(`${ref}\n`);
    } catch (e) {
      cli.err(`Error response from daemon: ${(e as Error).message}\n`);
      failed++;
    }
  }
  return failed ? 1 : 0;
};

const subs: Record<string, Command> = { ls, list: ls, inspect, rm, remove: rm };

export const nodeCommand: Command = async (cli, argv) => {
  const [sub, ...rest] = argv;
  const fn = sub ? subs[sub] : undefined;
  if (!fn) {
    cli.out('Usage:  loom node COMMAND\n\nManage the cluster\'s hosts (daemons started with --cluster-store)\n\nCommands:\n  inspect     Display detailed information on one or more nodes\n  ls          List the cluster\'s hosts\n  rm          Forget one or more hosts that are down\n');
    return sub ? 1 : 0;
  }
  return fn(cli, rest);
};
