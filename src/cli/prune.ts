// `loom container prune`, `loom image prune`, `loom system prune` (and the confirmation and --filter
// handling `loom network prune` shares), with the docker CLI's prompts and reports.
import type { Cli, Command } from './main.ts';
import { parseFlags, f, UsageError } from './flags.ts';
import { humanSize } from './output.ts';

/** Docker's "Are you sure" prompt; true when the answer is yes. */
export async function confirm(cli: Cli, warning: string): Promise<boolean> {
  cli.out(`${warning}\nAre you sure you want to continue? [y/N] `);
  const answer = await new Promise<string>((resolve) => {
    process.stdin.once('data', (b) => resolve(b.toString().trim()));
    process.stdin.once('end', () => resolve(''));
  });
  process.stdin.pause();
  return /^y(es)?$/i.test(answer);
}

/** `--filter k=v` flags as the API's `?filters=` query ('' when there are none). */
export function filterQuery(list: string[], extra: Record<string, string[]> = {}): string {
  const filters: Record<string, Record<string, boolean>> = {};
  for (const [k, vs] of Object.entries(extra)) for (const v of vs) (filters[k] ??= {})[v] = true;
  for (const x of list) {
    const i = x.indexOf('=');
    if (i < 0) throw new UsageError('bad format of filter (expected name=value)');
    (filters[x.slice(0, i)] ??= {})[x.slice(i + 1)] = true;
  }
  return Object.keys(filters).length ? `?filters=${encodeURIComponent(JSON.stringify(filters))}` : '';
}

const pruneFlags = [f('-f,--force'), f('--filter', 'list')];

async function pruneContainers(cli: Cli, q: string): Promise<number> {
  const r = (await cli.client.request('POST', `/containers/prune${q}`)).body;
  if (r.ContainersDeleted?.length) cli.out(`Deleted Containers:\n${r.ContainersDeleted.join('\n')}\n\n`);
  return r.SpaceReclaimed ?? 0;
}

async function pruneImages(cli: Cli, q: string): Promise<number> {
  const r = (await cli.client.request('POST', `/images/prune${q}`)).body;
  const lines = (r.ImagesDeleted ?? []).map((x: { Untagged?: string; Deleted?: string }) => (x.Untagged ? `untagged: ${x.Untagged}` : `deleted: ${x.Deleted}`));
  if (lines.length) cli.out(`Deleted Images:\n${lines.join('\n')}\n\n`);
  return r.SpaceReclaimed ?? 0;
}

export const containerPrune: Command = async (cli, argv) => {
  const p = parseFlags(argv, pruneFlags, { interspersed: true });
  if (!p.flags.force && !(await confirm(cli, 'WARNING! This will remove all stopped containers.'))) return 0;
  const space = await pruneContainers(cli, filterQuery(p.flags.filter as string[]));
  cli.out(`Total reclaimed space: ${humanSize(space)}\n`);
  return 0;
};

export const imagePrune: Command = async (cli, argv) => {
  const p = parseFlags(argv, [...pruneFlags, f('-a,--all')], { interspersed: true });
  const warning = p.flags.all ? 'WARNING! This will remove all images without at least one container associated to them.' : 'WARNING! This will remove all dangling images.';
  if (!p.flags.force && !(await confirm(cli, warning))) return 0;
  const space = await pruneImages(cli, filterQuery(p.flags.filter as string[], p.flags.all ? { dangling: ['false'] } : {}));
  cli.out(`Total reclaimed space: ${humanSize(space)}\n`);
  return 0;
};

export const systemPrune: Command = async (cli, argv) => {
  const p = parseFlags(argv, [...pruneFlags, f('-a,--all'), f('--volumes')], { interspersed: true });
  const images = p.flags.all ? '  - all images without at least one container associated to them' : '  - all dangling images';
  const volumes = p.flags.volumes ? '  - all anonymous volumes not used by at least one container\n' : '';
  const warning = `WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n${volumes}${images}\n  - unused build cache\n`;
  if (!p.flags.force && !(await confirm(cli, warning))) return 0;
  const q = filterQuery(p.flags.filter as string[]);
  let space = await pruneContainers(cli, q);
  const nets = (await cli.client.request('POST', `/networks/prune${q}`)).body;
  if (nets.NetworksDeleted?.length) cli.out(`Deleted Networks:\n${nets.NetworksDeleted.join('\n')}\n\n`);
  if (p.flags.volumes) {
    const vols = (await cli.client.request('POST', `/volumes/prune${q}`)).body;
    if (vols.VolumesDeleted?.length) cli.out(`Deleted Volumes:\n${vols.VolumesDeleted.join('\n')}\n\n`);
    space += vols.SpaceReclaimed ?? 0;
  }
  space += await pruneImages(cli, filterQuery(p.flags.filter as string[], p.flags.all ? { dangling: ['false'] } : {}));
  cli.out(`Total reclaimed space: ${humanSize(space)}\n`);
  return 0;
};
