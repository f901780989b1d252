// `loom volume create|ls|inspect|rm|prune` and `loom system df [-v]`, with the docker CLI's output.
import type { Cli, Command } from './main.ts';
import { parseFlags, f, UsageError } from './flags.ts';
import { ApiError } from './client.ts';
import { confirm, filterQuery } from './prune.ts';
import { renderTemplate } from './gotemplate.ts';
import { printTable, formatOutput, timeAgo, ellipsis, humanSize } from './output.ts';
import { naturalCompare } from './network.ts';

function kv(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const x of list) {
    const i = x.indexOf('=');
    out[i < 0 ? x : x.slice(0, i)] = i < 0 ? '' : x.slice(i + 1);
  }
  return out;
}

/** go-units HumanSize (4 significant digits), as `docker system df` prints sizes. */
const humanSize4 = (n: number) => humanSize(n, 4);

const create: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-d,--driver', 'string'), f('-o,--opt', 'list'), f('--label', 'list'), f('--name', 'string')], { interspersed: true });
  if (p.args.length > 1) throw new UsageError('"volume create" requires at most 1 argument.');
  if (p.args[0] && p.flags.name && p.args[0] !== p.flags.name) throw new UsageError(`conflicting options: cannot specify a volume-name through both --name and as a positional arg`);
  const r = await cli.client.request('POST', '/volumes/create', {
    Name: p.args[0] ?? p.flags.name ?? '', Driver: p.flags.driver ?? 'local', DriverOpts: kv(p.flags.opt), Labels: kv(p.flags.label),
  });
  cli.out(`${r.body.Name}\n`);
  return 0;
};

const ls: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-q,--quiet'), f('-f,--filter', 'list', 'filter'), f('--format', 'string'), f('--cluster')], { interspersed: true });
  const body = (await cli.client.request('GET', `/volumes${filterQuery(p.flags.filter)}`)).body;
  const list = ((body.Volumes ?? []) as any[]).sort((a, b) => naturalCompare(a.Name, b.Name));
  for (const w of body.Warnings ?? []) cli.err(`${w}\n`);
  if (p.flags.quiet && !p.flags.format) {
    for (const v of list) cli.out(`${v.Name}\n`);
    return 0;
  }
  const rows = list.map((v) => ({
    Name: v.Name, Driver: v.Driver, Scope: v.Scope, Mountpoint: v.Mountpoint, CreatedAt: v.CreatedAt,
    Labels: Object.entries(v.Labels ?? {}).map(([k, x]) => `${k}=${x}`).join(','), Links: 'N/A', Size: 'N/A',
    Label: (k: string) => v.Labels?.[k] ?? '',
  }));
  if (p.flags.format) {
    formatOutput(cli, p.flags.format, rows, { Name: 'VOLUME NAME', Driver: 'DRIVER', Scope: 'SCOPE', Mountpoint: 'MOUNTPOINT', CreatedAt: 'CREATED', Labels: 'LABELS', Links: 'LINKS', Size: 'SIZE' });
    return 0;
  }
  printTable(cli, ['DRIVER', 'VOLUME NAME'], rows.map((r) => [r.Driver, r.Name]));
  return 0;
};

const inspect: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-f,--format', 'string')], { interspersed: true });
  if (!p.args.length) throw new UsageError('"volume inspect" requires at least 1 argument.');
  const out: unknown[] = [];
  let failed = false;
  for (const r of p.args) {
    try {
      out.push((await cli.client.request('GET', `/volumes/${encodeURIComponent(r)}`)).body);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      cli.err(`Error response from daemon: ${e.message}\n`);
      failed = true;
    }
  }
  if (p.flags.format) for (const v of out) cli.out(renderTemplate(p.flags.format, v) + '\n');
  else cli.out(JSON.stringify(out, null, 4) + '\n');
  return failed ? 1 : 0;
};

const rm: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-f,--force')], { interspersed: true });
  if (!p.args.length) throw new UsageError('"volume rm" requires at least 1 argument.');
  let failed = false;
  for (const r of p.args) {
    try {
      await cli.client.request('DELETE', `/volumes/${encodeURIComponent(r)}${p.flags.force ? '?force=1' : ''}`);
      cli.out(`${r}\n`);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      cli.err(`Error response from daemon: ${e.message}\n`);
      failed = true;
    }
  }
  return failed ? 1 : 0;
};

const prune: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-f,--force'), f('-a,--all'), f('--filter', 'list')], { interspersed: true });
  const warning = p.flags.all
    ? 'WARNING! This will remove all local volumes not used by at least one container.'
    : 'WARNING! This will remove anonymous local volumes not used by at least one container.';
  if (!p.flags.force && !(await confirm(cli, warning))) return 0;
  const r = (await cli.client.request('POST', `/volumes/prune${filterQuery(p.flags.filter as string[], p.flags.all ? { all: ['true'] } : {})}`)).body;
  if (r.VolumesDeleted?.length) cli.out(`Deleted Volumes:\n${r.VolumesDeleted.join('\n')}\n\n`);
  cli.out(`Total reclaimed space: ${humanSize4(r.SpaceReclaimed ?? 0)}\n`);
  return 0;
};

const subs: Record<string, Command> = { create, ls, list: ls, inspect, rm, remove: rm, prune };

export const volumeCommand: Command = async (cli, argv) => {
  const [sub, ...rest] = argv;
  const fn = sub ? subs[sub] : undefined;
  if (!fn) {
    cli.out('Usage:  loom volume COMMAND\n\nManage volumes\n\nCommands:\n  create      Create a volume\n  inspect     Display detailed information on one or more volumes\n  ls          List volumes\n  prune       Remove unused local volumes\n  rm          Remove one or more volumes\n');
    return sub ? 1 : 0;
  }
  return fn(cli, rest);
};

// ---------------------------------------------------------------------------- system df

const pct = (part: number, total: number) => (total > 0 ? `${humanSize4(part)} (${Math.trunc((part * 100) / total)}%)` : humanSize4(part));

export const systemDf = async (cli: Cli, argv: string[]): Promise<number> => {
  const p = parseFlags(argv, [f('-v,--verbose'), f('--format', 'string')], { interspersed: true });
  const du = (await cli.client.request('GET', '/system/df')).body;
  const images = (du.Images ?? []) as any[];
  const containers = (du.Containers ?? []) as any[];
  const volumes = (du.Volumes ?? []) as any[];
  const cache = (du.BuildCache ?? []) as any[];
  if (p.flags.verbose) return dfVerbose(cli, images, containers, volumes, cache);
  const imgSize = du.LayersSize ?? 0;
  const imgUnused = images.filter((i) => !i.Containers).reduce((s, i) => s + (i.Size ?? 0), 0);
  const ctrSize = containers.reduce((s, c) => s + (c.SizeRw ?? 0), 0);
  const ctrReclaim = containers.filter((c) => c.State !== 'running' && c.State !== 'paused').reduce((s, c) => s + (c.SizeRw ?? 0), 0);
  const volSize = volumes.reduce((s, v) => s + Math.max(0, v.UsageData?.Size ?? 0), 0);
  const volReclaim = volumes.filter((v) => !v.UsageData?.RefCount).reduce((s, v) => s + Math.max(0, v.UsageData?.Size ?? 0), 0);
  const rows = [
    { Type: 'Images', TotalCount: String(images.length), Active: String(images.filter((i) => i.Containers > 0).length), Size: humanSize4(imgSize), Reclaimable: pct(imgUnused, imgSize) },
    { Type: 'Containers', TotalCount: String(containers.length), Active: String(containers.filter((c) => c.State === 'running' || c.State === 'paused').length), Size: humanSize4(ctrSize), Reclaimable: pct(ctrReclaim, ctrSize) },
    { Type: 'Local Volumes', TotalCount: String(volumes.length), Active: String(volumes.filter((v) => v.UsageData?.RefCount > 0).length), Size: humanSize4(volSize), Reclaimable: pct(volReclaim, volSize) },
    { Type: 'Build Cache', TotalCount: String(cache.length), Active: '0', Size: '0B', Reclaimable: '0B' },
  ];
  if (p.flags.format) {
    formatOutput(cli, p.flags.format, rows, { Type: 'TYPE', TotalCount: 'TOTAL', Active: 'ACTIVE', Size: 'SIZE', Reclaimable: 'RECLAIMABLE' });
    return 0;
  }
  printTable(cli, ['TYPE', 'TOTAL', 'ACTIVE', 'SIZE', 'RECLAIMABLE'], rows.map((r) => [r.Type, r.TotalCount, r.Active, r.Size, r.Reclaimable]));
  return 0;
};

function dfVerbose(cli: Cli, images: any[], containers: any[], volumes: any[], _cache: any[]): number {
  cli.out('Images space usage:\n\n');
  const irows: string[][] = [];
  for (const i of images) {
    const tags: string[] = i.RepoTags?.length ? i.RepoTags : ['<none>:<none>'];
    for (const t of tags) {
      const c = t.lastIndexOf(':');
      irows.push([t.slice(0, c), t.slice(c + 1), String(i.Id).slice(7, 19), timeAgo(i.Created * 1000), humanSize(i.Size), humanSize4(i.SharedSize > 0 ? i.SharedSize : 0), humanSize4(i.Size - Math.max(0, i.SharedSize ?? 0)), String(i.Containers ?? 0)]);
    }
  }
  printTable(cli, ['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE', 'SHARED SIZE', 'UNIQUE SIZE', 'CONTAINERS'], irows);
  cli.out('\nContainers space usage:\n\n');
  printTable(cli, ['CONTAINER ID', 'IMAGE', 'COMMAND', 'LOCAL VOLUMES', 'SIZE', 'CREATED', 'STATUS', 'NAMES'], containers.map((c) => [
    String(c.Id).slice(0, 12), c.Image, `"${ellipsis(c.Command, 20)}"`, String((c.Mounts ?? []).filter((m: any) => m.Type === 'volume').length),
    humanSize4(c.SizeRw ?? 0), timeAgo(c.Created * 1000), c.Status, (c.Names ?? []).map((n: string) => n.replace(/^\//, '')).join(','),
  ]));
  cli.out('\nLocal Volumes space usage:\n\n');
  printTable(cli, ['VOLUME NAME', 'LINKS', 'SIZE'], volumes.map((v) => [v.Name, String(v.UsageData?.RefCount ?? 0), v.UsageData?.Size >= 0 ? humanSize4(v.UsageData.Size) : 'N/A']));
  cli.out('\nBuild cache usage: 0B\n\n');
  printTable(cli, ['CACHE ID', 'CACHE TYPE', 'SIZE', 'CREATED', 'LAST USED', 'USAGE', 'SHARED'], []);
  return 0;
}
