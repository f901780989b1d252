// `loom system reconcile`: asks the daemon to check the kernel against its records and repair what
// differs (POST /system/reconcile, a loom extension of the Engine API); prints one line per difference.
import type { Command } from './main.ts';

export const systemReconcile: Command = async (cli, argv) => {
  if (argv.length) {
    cli.err(`loom: "system reconcile" accepts no arguments.\n`);
    return 1;
  }
  const diffs = (await cli.client.request('POST', '/system/reconcile')).body.Differences as { Kind: string; Object: string; Found: string; Action: string; Error?: string }[];
  if (!diffs.length) {
    cli.out('kernel and records agree: nothing to repair\n');
    return 0;
  }
  for (const d of diffs) cli.out(`${d.Kind} ${d.Object}: ${d.Found} -> ${d.Error ? `NOT repaired: ${d.Error}` : d.Action}\n`);
  return diffs.some((d) => d.Error) ? 1 : 0;
};
