// `loom network graph [--format text|json|dot|svg]`: the live topology from GET /loom/topology.
import type { Command } from './main.ts';
import { parseFlags, f, UsageError } from './flags.ts';

export const graphCommand: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('--format', 'string')], { interspersed: true });
  if (p.args.length) throw new UsageError('"network graph" accepts no arguments.');
  const format = p.flags.format ?? 'text';
  if (!['text', 'json', 'dot', 'svg'].includes(format)) throw new UsageError(`invalid --format ${JSON.stringify(format)}: use text, json, dot or svg`);
  const r = await cli.client.request('GET', `/loom/topology?format=${format}`);
  cli.out(format === 'json' ? JSON.stringify(r.body, null, 2) + '\n' : String(r.body));
  return 0;
};
