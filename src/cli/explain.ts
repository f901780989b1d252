// `loom explain run|create|connect|network create ...`: POST /loom/explain; prints the plan as a script.
import type { Command } from './main.ts';
import { UsageError } from './flags.ts';
import type { Plan } from '../explain/explain.ts';
import { renderPlan } from '../explain/render.ts';

export const explainCommand: Command = async (cli, argv) => {
  const json = argv[0] === '--json';
  const args = json ? argv.slice(1) : argv;
  if (!args.length || args[0] === '--help' || args[0] === '-h') {
    if (!args.length) throw new UsageError('"explain" requires an operation: run, create, connect or network create');
    cli.out('Usage:  loom explain [--json] run|create|connect|network create ARGS...\n\nPrint the ip/nft/sysctl commands equivalent to what loom would do; nothing is changed.\n');
    return 0;
  }
  const r = (await cli.client.request('POST', '/loom/explain', { Args: args })).body as Plan;
  cli.out(json ? JSON.stringify(r, null, 2) + '\n' : renderPlan(r));
  return 0;
};
