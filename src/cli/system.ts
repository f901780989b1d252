// System verbs: version, info, events (the image verbs are in image.ts).
import type { Command } from './main.ts';
import { parseFlags, f } from './flags.ts';
import { ApiError } from './client.ts';
import { renderTemplate } from './gotemplate.ts';
import { humanSize } from './output.ts';

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
  if (i.ClusterStore) {
    cli.out(` Cluster Store: ${i.ClusterStore}\n Cluster Advertise: ${i.ClusterAdvertise}\n`);
    cli.out(i.ClusterStoreStatus === 'reachable' ? ` Cluster Members: ${i.ClusterMembers} (${i.ClusterMembersReady} ready)\n` : ` Cluster Store Status: ${i.ClusterStoreStatus}\n`);
  }
  for (const w of i.Warnings ?? []) cli.err(`${w}\n`);
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

export const systemCommands: Record<string, Command> = { version, info, events };
