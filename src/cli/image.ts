// Image verbs with the docker CLI's syntax and output: import, images, rmi, tag, history, save, load,
// and `image inspect`.
import fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type { Command, Cli } from './main.ts';
import { parseFlags, f, UsageError } from './flags.ts';
import { ApiError } from './client.ts';
import { renderTemplate } from './gotemplate.ts';
import { printTable, timeAgo, humanSize, formatOutput, ellipsis } from './output.ts';
import { filterQuery } from './prune.ts';

/** Prints a JSON message stream (status / stream lines); an `error` in it fails the command. */
function printStream(cli: Cli, text: string): void {
  for (const l of text.split('\n')) {
    if (!l.trim()) continue;
    let j: { status?: string; stream?: string; error?: string };
    try {
      j = JSON.parse(l);
    } catch {
      continue;
    }
    if (j.error) throw new ApiError(500, j.error);
    if (j.stream) cli.out(j.stream);
    else if (j.status) cli.out(`${j.status}\n`);
  }
}

const importCmd: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-c,--change', 'list', 'change'), f('-m,--message', 'string'), f('--platform', 'string')], { interspersed: true });
  const [file, ref] = p.args;
  if (!file) throw new UsageError('"import" requires at least 1 argument.');
  const q = new URLSearchParams({ fromSrc: '-' });
  if (ref) q.set('repo', ref);
  for (const c of p.flags.change) q.append('changes', c);
  if (p.flags.message) q.set('message', p.flags.message);
  if (p.flags.platform) q.set('platform', p.flags.platform);
  if (file !== '-' && !fs.existsSync(file)) throw new UsageError(`open ${file}: no such file or directory`);
  const input = file === '-' ? process.stdin : fs.createReadStream(file);
  const r = await cli.client.request('POST', `/images/create?${q}`, undefined, { raw: input, headers: { 'Content-Type': 'application/x-tar' } });
  printStream(cli, typeof r.body === 'string' ? r.body : JSON.stringify(r.body));
  return 0;
};

interface ImageSummary { Id: string; RepoTags: string[] | null; RepoDigests: string[] | null; Created: number; Size: number; Labels: Record<string, string> | null }

const nameOf = (ref: string, sep: string) => ref.slice(0, ref.lastIndexOf(sep));
const afterOf = (ref: string, sep: string) => ref.slice(ref.lastIndexOf(sep) + 1);

/** The docker CLI's rows for one image: a row per repository:tag (per digest with --digests). */
function imageRows(i: ImageSummary, digest: boolean): { repo: string; tag: string; digest: string }[] {
  const tags = (i.RepoTags ?? []).filter((t) => t !== '<none>:<none>');
  const digests = (i.RepoDigests ?? []).filter((t) => t !== '<none>@<none>');
  if (!tags.length && !digests.length) return [{ repo: '<none>', tag: '<none>', digest: '<none>' }];
  const repoTags = new Map<string, string[]>();
  const repoDigests = new Map<string, string[]>();
  for (const t of tags) repoTags.set(nameOf(t, ':'), [...(repoTags.get(nameOf(t, ':')) ?? []), afterOf(t, ':')]);
  for (const d of digests) repoDigests.set(nameOf(d, '@'), [...(repoDigests.get(nameOf(d, '@')) ?? []), afterOf(d, '@')]);
  const rows: { repo: string; tag: string; digest: string }[] = [];
  for (const [repo, ts] of repoTags) {
    const ds = digest ? repoDigests.get(repo) ?? [] : [];
    repoDigests.delete(repo);
    for (const t of ts) {
      if (!ds.length) rows.push({ repo, tag: t, digest: '<none>' });
      for (const d of ds) rows.push({ repo, tag: t, digest: d });
    }
  }
  for (const [repo, ds] of repoDigests) {
    if (digest) for (const d of ds) rows.push({ repo, tag: '<none>', digest: d });
    else rows.push({ repo, tag: '<none>', digest: '' });
  }
  return rows;
}

const images: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-a,--all'), f('-q,--quiet'), f('--no-trunc'), f('--digests'), f('-f,--filter', 'list', 'filter'), f('--format', 'string')], { interspersed: true });
  if (p.args.length > 1) throw new UsageError('"images" requires at most 1 argument.');
  const fq = filterQuery(p.flags.filter as string[], p.args[0] ? { reference: [p.args[0]] } : {});
  const q = new URLSearchParams(fq ? fq.slice(1) : '');
  if (p.flags.all) q.set('all', '1');
  const list = (await cli.client.request('GET', `/images/json?${q}`)).body as ImageSummary[];
  const trunc = !p.flags['no-trunc'];
  const id = (x: string) => (trunc ? x.slice(7, 19) : x);
  const rows: Record<string, string>[] = [];
  for (const i of list) {
    for (const r of imageRows(i, !!p.flags.digests)) {
      rows.push({
        Repository: r.repo, Tag: r.tag, Digest: r.digest, ID: id(i.Id), CreatedSince: timeAgo(i.Created * 1000),
        CreatedAt: new Date(i.Created * 1000).toString(), Size: humanSize(i.Size), Containers: 'N/A', SharedSize: 'N/A', UniqueSize: 'N/A', VirtualSize: humanSize(i.Size),
      });
    }
  }
  const headers = { Repository: 'REPOSITORY', Tag: 'TAG', ID: 'IMAGE ID', CreatedSince: 'CREATED', CreatedAt: 'CREATED AT', Size: 'SIZE', Digest: 'DIGEST', Containers: 'CONTAINERS', SharedSize: 'SHARED SIZE', UniqueSize: 'UNIQUE SIZE', VirtualSize: 'VIRTUAL SIZE' };
  if (p.flags.quiet && !p.flags.format) {
    for (const r of rows) cli.out(`${r.ID}\n`);
    return 0;
  }
  if (p.flags.format) {
    formatOutput(cli, p.flags.format, rows, headers);
    return 0;
  }
  if (p.flags.digests) printTable(cli, ['REPOSITORY', 'TAG', 'DIGEST', 'IMAGE ID', 'CREATED', 'SIZE'], rows.map((r) => [r.Repository!, r.Tag!, r.Digest!, r.ID!, r.CreatedSince!, r.Size!]));
  else printTable(cli, ['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'], rows.map((r) => [r.Repository!, r.Tag!, r.ID!, r.CreatedSince!, r.Size!]));
  return 0;
};

const rmi: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-f,--force'), f('--no-prune')], { interspersed: true });
  if (!p.args.length) throw new UsageError('"rmi" requires at least 1 argument.');
  let failed = false;
  for (const r of p.args) {
    const q = new URLSearchParams();
    if (p.flags.force) q.set('force', '1');
    if (p.flags['no-prune']) q.set('noprune', '1');
    try {
      const out = (await cli.client.request('DELETE', `/images/${r}?${q}`)).body as { Untagged?: string; Deleted?: string }[];
      for (const o of out) cli.out(o.Untagged ? `Untagged: ${o.Untagged}\n` : `Deleted: ${o.Deleted}\n`);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      cli.err(`Error response from daemon: ${e.message}\n`);
      failed = true;
    }
  }
  return failed ? 1 : 0;
};

const tag: Command = async (cli, argv) => {
  const p = parseFlags(argv, [], { interspersed: true });
  const [src, dst] = p.args;
  if (!src || !dst || p.args.length !== 2) throw new UsageError('"tag" requires exactly 2 arguments.');
  const c = dst.lastIndexOf(':');
  const slash = dst.lastIndexOf('/');
  const q = new URLSearchParams(c > slash && !dst.includes('@') ? { repo: dst.slice(0, c), tag: dst.slice(c + 1) } : { repo: dst });
  await cli.client.request('POST', `/images/${src}/tag?${q}`);
  return 0;
};

interface HistoryItem { Id: string; Created: number; CreatedBy: string; Tags: string[] | null; Size: number; Comment: string }

const history: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-H,--human', 'string'), f('-q,--quiet'), f('--no-trunc'), f('--format', 'string')], { interspersed: true });
  if (p.args.length !== 1) throw new UsageError('"history" requires exactly 1 argument.');
  const human = p.flags.human === undefined || p.flags.human === 'true';
  const list = (await cli.client.request('GET', `/images/${p.args[0]}/history`)).body as HistoryItem[];
  const trunc = !p.flags['no-trunc'];
  const rows = list.map((h) => ({
    ID: h.Id === '<missing>' || !trunc ? h.Id : h.Id.replace(/^sha256:/, '').slice(0, 12),
    CreatedSince: human ? timeAgo(h.Created * 1000) : new Date(h.Created * 1000).toISOString().replace(/\.\d+Z$/, 'Z'),
    CreatedAt: new Date(h.Created * 1000).toISOString().replace(/\.\d+Z$/, 'Z'),
    CreatedBy: trunc ? ellipsis(h.CreatedBy.replace(/\t/g, ' '), 45) : h.CreatedBy.replace(/\t/g, ' '),
    Size: human ? humanSize(h.Size) : String(h.Size),
    Comment: h.Comment,
    Tags: (h.Tags ?? []).join(', '),
  }));
  if (p.flags.quiet && !p.flags.format) {
    for (const r of rows) cli.out(`${r.ID}\n`);
    return 0;
  }
  const headers = { ID: 'IMAGE', CreatedSince: 'CREATED', CreatedAt: 'CREATED AT', CreatedBy: 'CREATED BY', Size: 'SIZE', Comment: 'COMMENT', Tags: 'TAGS' };
  formatOutput(cli, p.flags.format || 'table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}', rows, headers);
  return 0;
};

const save: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-o,--output', 'string'), f('--platform', 'string')], { interspersed: true });
  if (!p.args.length) throw new UsageError('"save" requires at least 1 argument.');
  if (!p.flags.output && process.stdout.isTTY) {
    cli.err('cowardly refusing to save to a terminal. Use the -o flag or redirect\n');
    return 1;
  }
  const q = new URLSearchParams();
  for (const n of p.args) q.append('names', n);
  if (p.flags.platform) q.set('platform', p.flags.platform);
  const res = await cli.client.stream('GET', `/images/get?${q}`);
  if (p.flags.output) {
    const tmp = `${p.flags.output}.${process.pid}.tmp`;
    try {
      await pipeline(res, fs.createWriteStream(tmp));
      fs.renameSync(tmp, p.flags.output);
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  } else {
    await pipeline(res, process.stdout, { end: false });
  }
  if (!res.complete) throw new ApiError(500, 'the image archive was cut short');
  return 0;
};

const load: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-i,--input', 'string'), f('-q,--quiet'), f('--platform', 'string')], { interspersed: true });
  if (p.args.length) throw new UsageError('"load" accepts no arguments.');
  let input: NodeJS.ReadableStream;
  if (p.flags.input) {
    if (!fs.existsSync(p.flags.input)) throw new UsageError(`open ${p.flags.input}: no such file or directory`);
    input = fs.createReadStream(p.flags.input);
  } else {
    if (process.stdin.isTTY) {
      cli.err('requested load from stdin, but stdin is empty\n');
      return 1;
    }
    input = process.stdin;
  }
  const q = new URLSearchParams({ quiet: '1' });
  if (p.flags.platform) q.set('platform', p.flags.platform);
  const r = await cli.client.request('POST', `/images/load?${q}`, undefined, { raw: input, headers: { 'Content-Type': 'application/x-tar' } });
  printStream(cli, typeof r.body === 'string' ? r.body : JSON.stringify(r.body));
  return 0;
};

/** `image inspect`: images only (plain `inspect` tries containers first). */
const imageInspect: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-f,--format', 'string')], { interspersed: true });
  if (!p.args.length) throw new UsageError('"image inspect" requires at least 1 argument.');
  const results: unknown[] = [];
  let failed = false;
  for (const ref of p.args) {
    try {
      results.push((await cli.client.request('GET', `/images/${ref}/json`)).body);
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 404) throw e;
      cli.err(`Error: No such image: ${ref}\n`);
      failed = true;
    }
  }
  if (p.flags.format) for (const r of results) cli.out(renderTemplate(p.flags.format, r) + '\n');
  else cli.out(JSON.stringify(results, null, 4) + '\n');
  return failed ? 1 : 0;
};

export const imageCommands: Record<string, Command> = { import: importCmd, images, rmi, tag, history, save, load };
export const imageSubcommands: Record<string, Command> = { ls: images, list: images, rm: rmi, remove: rmi, inspect: imageInspect, import: importCmd, history, tag, save, load };
