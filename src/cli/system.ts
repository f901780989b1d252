// Image and system verbs: import, images, rmi, tag, version, info, events.
import fs from 'node:fs';
import type { Command } from './main.ts';
import { parseFlags, f, UsageError } from './flags.ts';
import { ApiError } from './client.ts';
import { renderTemplate } from './gotemplate.ts';
import { printTable, timeAgo, humanSize, formatOutput } from './output.ts';

const importCmd: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-c,--change', 'list', 'change'), f('-m,--message', 'string'), f('--platform', 'string')], { interspersed: true });
  const [file, ref] = p.args;
  if (!file) throw new UsageError('"import" requires at least 1 argument.');
  const q = new URLSearchParams({ fromSrc: '-' });
  if (ref) {
    const slash = ref.lastIndexOf('/');
    const colon = ref.lastIndexOf(':');
    if (colon > slash) {
      q.set('repo', ref.slice(0, colon));
      q.set('tag', ref.slice(colon + 1));
    } else q.set('repo', ref);
  }
  for (const c of p.flags.change) q.append('changes', c);
  if (p.flags.message) q.set('message', p.flags.message);
  const input = file === '-' ? process.stdin : fs.createReadStream(file);
  if (file !== '-' && !fs.existsSync(file)) throw new UsageError(`open ${file}: no such file or directory`);
  const r = await cli.client.request('POST', `/images/create?${q}`, undefined, { raw: input, headers: { 'Content-Type': 'application/x-tar' } });
  const lines = String(typeof r.body === 'string' ? r.body : JSON.stringify(r.body)).trim().split('\n');
  for (const l of lines) {
    try {
      const j = JSON.parse(l);
      if (j.status) cli.out(`${j.status}\n`);
      if (j.error) throw new ApiError(500, j.error);
    } catch (e) {
      if (e instanceof ApiError) throw e;
    }
  }
  return 0;
};

const images: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-a,--all'), f('-q,--quiet'), f('--no-trunc'), f('--digests'), f('-f,--filter', 'list', 'filter'), f('--format', 'string')], { interspersed: true });
  const q = new URLSearchParams();
  if (p.args[0]) q.set('filters', JSON.stringify({ reference: [p.args[0]] }));
  const list = (await cli.client.request('GET', `/images/json?${q}`)).body as any[];
  const id = (x: string) => (p.flags['no-trunc'] ? x : x.slice(7, 19));
  if (p.flags.quiet) {
    for (const i of list) cli.out(`${id(i.Id)}\n`);
    return 0;
  }
  const rows: Record<string, string>[] = [];
  for (const i of list) {
    const tags = i.RepoTags.length ? i.RepoTags : ['<none>:<none>'];
    for (const t of tags) {
      const c = t.lastIndexOf(':');
      rows.push({ Repository: t.slice(0, c), Tag: t.slice(c + 1), ID: id(i.Id), CreatedSince: timeAgo(i.Created * 1000), CreatedAt: new Date(i.Created * 1000).toString(), Size: humanSize(i.Size), Digest: '<none>' });
    }
  }
  if (p.flags.format) {
    formatOutput(cli, p.flags.format, rows, { Repository: 'REPOSITORY', Tag: 'TAG', ID: 'IMAGE ID', CreatedSince: 'CREATED', CreatedAt: 'CREATED AT', Size: 'SIZE', Digest: 'DIGEST' });
    return 0;
  }
  printTable(cli, ['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'], rows.map((r) => [r.Repository!, r.Tag!, r.ID!, r.CreatedSince!, r.Size!]));
  return 0;
};

const rmi: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-f,--force'), f('--no-prune')], { interspersed: true });
  if (!p.args.length) throw new UsageError('"rmi" requires at least 1 argument.');
  let failed = false;
  for (const r of p.args) {
    try {
      const out = (await cli.client.request('DELETE', `/images/${r}${p.flags.force ? '?force=1' : ''}`)).body as any[];
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
  const [src, dst] = argv;
  if (!src || !dst) throw new UsageError('"tag" requires exactly 2 arguments.');
  const c = dst.lastIndexOf(':');
  const slash = dst.lastIndexOf('/');
  const q = new URLSearchParams(c > slash ? { repo: dst.slice(0, c), tag: dst.slice(c + 1) } : { repo: dst });
  await cli.client.request('POST', `/images/${src}/tag?${q}`);
  return 0;
};

const version: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-f,--format', 'string')], { interspersed: true });
  const client = { Version: '0.1.0', ApiVersion: '1.50', Os: 'linux', Arch: 'amd64', GoVersion: `node ${process.version}` };
  let server: any = null;
  try {
    server = (await cli.client.request('GET', '/version')).body;
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
    if (!p.flags.format) cli.out(`Client:\n Version:\t${client.Version}\n API version:\t${client.ApiVersion}\n\n`);
    throw e;
  }
  if (p.flags.format) {
    cli.out(renderTemplate(p.flags.format, { Client: client, Server: server }) + '\n');
    return 0;
  }
  cli.out(`Client:\n Version:           ${client.Version}\n API version:       ${client.ApiVersion}\n Node version:      ${process.version}\n OS/Arch:           linux/amd64\n\n`);
  cli.out(`Server: loom\n Engine:\n  Version:          ${server.Version}\n  API version:      ${server.ApiVersion} (minimum version ${server.MinAPIVersion})\n  OS/Arch:          ${server.Os}/${server.Arch}\n  Kernel version:   ${server.KernelVersion}\n`);
  return 0;
};

const info: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-f,--format', 'string')], { interspersed: true });
  const i = (await cli.client.request('GET', '/info')).body;
  if (p.flags.format) {
    cli.out(renderTemplate(p.flags.format, i) + '\n');
    return 0;
  }
  cli.out(`Server:\n Containers: ${i.Containers}\n  Running: ${i.ContainersRunning}\n  Paused: ${i.ContainersPaused}\n  Stopped: ${i.ContainersStopped}\n Images: ${i.Images}\n Server Version: ${i.ServerVersion}\n Storage Driver: ${i.Driver}\n Network: ${i.Plugins.Network.join(' ')}\n Kernel Version: ${i.KernelVersion}\n Operating System: ${i.OperatingSystem}\n CPUs: ${i.NCPU}\n Total Memory: ${humanSize(i.MemTotal)}\n Name: ${i.Name}\n ID: ${i.ID}\n Docker Root Dir: ${i.DockerRootDir}\n`);
  return 0;
};

const events: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('--since', 'string'), f('--until', 'string'), f('-f,--filter', 'list', 'filter'), f('--format', 'string')], { interspersed: true });
  const q = new URLSearchParams();
  const toUnix = (s: string) => (/^\d+(\.\d+)?$/.test(s) ? s : String(Date.parse(s) / 1000));
  if (p.flags.since) q.set('since', toUnix(p.flags.since));
  if (p.flags.until) q.set('until', toUnix(p.flags.until));
  const filters: Record<string, string[]> = {};
  for (const x of p.flags.filter) {
    const i = x.indexOf('=');
    (filters[x.slice(0, i)] ??= []).push(x.slice(i + 1));
  }
  if (Object.keys(filters).length) q.set('filters', JSON.stringify(filters));
  const res = await cli.client.stream('GET', `/events?${q}`);
  let buf = '';
  await new Promise<void>((resolve) => {
    res.on('data', (b: Buffer) => {
      buf += b.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.trim()) continue;
        const e = JSON.parse(line);
        if (p.flags.format) cli.out(renderTemplate(p.flags.format === 'json' ? '{{json .}}' : p.flags.format, e) + '\n');
        else {
          const attrs = Object.entries(e.Actor.Attributes).sort().map(([k, v]) => `${k}=${v}`).join(', ');
          const t = new Date(Math.floor(e.timeNano / 1e6)).toISOString().replace('Z', '000000Z');
          cli.out(`${t} ${e.Type} ${e.Action} ${e.Actor.ID}${attrs ? ` (${attrs})` : ''}\n`);
        }
      }
    });
    res.on('end', resolve);
  });
  return 0;
};

export const systemCommands: Record<string, Command> = { import: importCmd, images, rmi, tag, version, info, events };
