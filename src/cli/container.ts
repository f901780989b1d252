// Container verbs: run, create, start, stop, restart, kill, rm, ps, logs, exec, inspect, wait, pause, unpause.
import fs from 'node:fs';
import type { Cli, Command } from './main.ts';
import { parseFlags, f, UsageError, type Parsed } from './flags.ts';
import { ApiError, demux } from './client.ts';
import { renderTemplate } from './gotemplate.ts';
import { printTable, formatOutput, timeAgo } from './output.ts';

const runSpecs = [
  f('-d,--detach'), f('--rm'), f('--name', 'string'), f('-e,--env', 'list'), f('--env-file', 'list'), f('-h,--hostname', 'string'),
  f('--domainname', 'string'), f('--network,--net', 'string', 'network'), f('-i,--interactive'), f('-t,--tty'), f('-p,--publish', 'list'),
  f('-P,--publish-all'), f('--expose', 'list'), f('--link', 'list'), f('--ip', 'string'), f('--ip6', 'string'),
  f('--network-alias,--net-alias', 'list', 'network-alias'), f('--mac-address', 'string'), f('--dns', 'list'),
  f('--dns-search', 'list'), f('--dns-option,--dns-opt', 'list', 'dns-option'), f('--add-host', 'list'), f('-l,--label', 'list'),
  f('-w,--workdir', 'string'), f('-u,--user', 'string'), f('--entrypoint', 'string'), f('--restart', 'string'),
  f('--init'), f('--privileged'), f('--stop-signal', 'string'), f('--stop-timeout', 'string'), f('-a,--attach', 'list'),
  f('--cidfile', 'string'), f('--pull', 'string'), f('--platform', 'string'), f('-q,--quiet'), f('--sig-proxy', 'bool'),
  f('--detach-keys', 'string'),
];

function parseEnvFile(p: string): string[] {
  return fs.readFileSync(p, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))
    .map((l) => (l.includes('=') ? l : `${l}=${process.env[l] ?? ''}`));
}

/** -p [ip:][hostPort:]containerPort[/proto] (ranges allowed) → ExposedPorts + PortBindings. */
export function parsePublish(specs: string[]): { exposed: Record<string, object>; bindings: Record<string, { HostIp: string; HostPort: string }[]> } {
  const exposed: Record<string, object> = {};
  const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const spec of specs) {
    let rest = spec;
    let proto = 'tcp';
    const slash = rest.lastIndexOf('/');
    if (slash >= 0) {
      proto = rest.slice(slash + 1).toLowerCase();
      rest = rest.slice(0, slash);
      if (!['tcp', 'udp', 'sctp'].includes(proto)) throw new UsageError(`invalid proto: ${proto}`);
    }
    let ip = '';
    if (rest.startsWith('[')) {
      const end = rest.indexOf(']');
      ip = rest.slice(1, end);
      rest = rest.slice(end + 2);
    } else {
      const parts = rest.split(':');
      if (parts.length === 3) {
        ip = parts[0]!;
        rest = parts.slice(1).join(':');
      } else if (parts.length > 3) throw new UsageError(`invalid port format: ${spec}`);
    }
    const [hostPart, ctrPart] = rest.includes(':') ? rest.split(':') as [string, string] : ['', rest];
    const range = (s: string): [number, number] => {
      const m = /^(\d+)(?:-(\d+))?$/.exec(s);
      if (!m) throw new UsageError(`invalid containerPort: ${s}`);
      const a = Number(m[1]);
      const b = m[2] ? Number(m[2]) : a;
      if (a < 1 || b > 65535 || b < a) throw new UsageError(`invalid port range: ${s}`);
      return [a, b];
    };
    const [c0, c1] = range(ctrPart);
    let h: [number, number] | undefined;
    if (hostPart) {
      const m = /^(\d+)(?:-(\d+))?$/.exec(hostPart);
      if (!m) throw new UsageError(`invalid hostPort: ${hostPart}`);
      h = [Number(m[1]), m[2] ? Number(m[2]) : Number(m[1])];
      if (h[0] < 1 || h[1] > 65535 || h[1] < h[0]) throw new UsageError(`invalid hostPort: ${hostPart}`);
      if (c1 - c0 !== h[1] - h[0] && c0 !== c1) throw new UsageError(`invalid ranges specified for container and host Ports: ${ctrPart} and ${hostPart}`);
    }
    for (let p = c0; p <= c1; p++) {
      const key = `${p}/${proto}`;
      exposed[key] = {};
      const hp = !h ? '' : c0 === c1 ? (h[0] === h[1] ? String(h[0]) : `${h[0]}-${h[1]}`) : String(h[0] + (p - c0));
      (bindings[key] ??= []).push({ HostIp: ip, HostPort: hp });
    }
  }
  return { exposed, bindings };
}

function buildCreate(p: Parsed): { body: any; name?: string } {
  const fl = p.flags;
  const [image, ...cmd] = p.args;
  if (!image) throw new UsageError('"run" requires at least 1 argument.');
  const env = [...fl['env-file'].flatMap(parseEnvFile), ...fl.env.map((e: string) => (e.includes('=') ? e : `${e}=${process.env[e] ?? ''}`))];
  const pub = parsePublish(fl.publish);
  for (const e of fl.expose) {
    const [port, proto = 'tcp'] = e.split('/');
    const [a, b = a] = port.split('-').map(Number);
    if (!a || a > 65535 || b < a) throw new UsageError(`invalid range format for --expose: ${e}`);
    for (let x = a; x <= b; x++) pub.exposed[`${x}/${proto}`] = {};
  }
  let restart = { Name: 'no', MaximumRetryCount: 0 };
  if (fl.restart) {
    const [n, c] = String(fl.restart).split(':');
    restart = { Name: n!, MaximumRetryCount: c ? Number(c) : 0 };
  }
  const labels: Record<string, string> = {};
  for (const l of fl.label) {
    const i = l.indexOf('=');
    labels[i < 0 ? l : l.slice(0, i)] = i < 0 ? '' : l.slice(i + 1);
  }
  const network = fl.network || 'default';
  const epConfig: any = {};
  if (fl.ip || fl.ip6 || fl['network-alias'].length || fl['mac-address']) {
    epConfig.IPAMConfig = { ...(fl.ip ? { IPv4Address: fl.ip } : {}), ...(fl.ip6 ? { IPv6Address: fl.ip6 } : {}) };
    epConfig.Aliases = fl['network-alias'];
    if (fl['mac-address']) epConfig.MacAddress = fl['mac-address'];
  }
  const attach = !fl.detach;
  const body = {
    Hostname: fl.hostname ?? '',
    Domainname: fl.domainname ?? '',
    User: fl.user ?? '',
    AttachStdin: attach && !!fl.interactive,
    AttachStdout: attach,
    AttachStderr: attach,
    Tty: !!fl.tty,
    OpenStdin: !!fl.interactive,
    StdinOnce: attach && !!fl.interactive,
    Env: env,
    Cmd: cmd.length ? cmd : null,
    Image: image,
    WorkingDir: fl.workdir ?? '',
    Entrypoint: fl.entrypoint !== undefined ? (fl.entrypoint ? [fl.entrypoint] : ['']) : null,
    Labels: labels,
    ExposedPorts: pub.exposed,
    ...(fl['stop-signal'] ? { StopSignal: fl['stop-signal'] } : {}),
    ...(fl['stop-timeout'] ? { StopTimeout: Number(fl['stop-timeout']) } : {}),
    ...(fl['mac-address'] && network === 'default' ? { MacAddress: fl['mac-address'] } : {}),
    HostConfig: {
      NetworkMode: network,
      PortBindings: pub.bindings,
      PublishAllPorts: !!fl['publish-all'],
      RestartPolicy: restart,
      AutoRemove: !!fl.rm,
      Links: fl.link.length ? fl.link : null,
      Dns: fl.dns,
      DnsSearch: fl['dns-search'],
      DnsOptions: fl['dns-option'],
      ExtraHosts: fl['add-host'].length ? fl['add-host'] : null,
      Init: fl.init ? true : null,
      Privileged: !!fl.privileged,
    },
    NetworkingConfig: { EndpointsConfig: Object.keys(epConfig).length ? { [network === 'default' ? 'bridge' : network]: epConfig } : {} },
  };
  return { body, name: fl.name };
}

async function createContainer(cli: Cli, body: any, name?: string): Promise<string> {
  const q = name ? `?name=${encodeURIComponent(name)}` : '';
  const r = await cli.client.request('POST', `/containers/create${q}`, body);
  return r.body.Id as string;
}

const run: Command = async (cli, argv) => {
  let p: Parsed;
  let created: { body: any; name?: string };
  try {
    p = parseFlags(argv, runSpecs, { interspersed: false });
    created = buildCreate(p);
  } catch (e) {
    cli.err(`loom: ${(e as Error).message}\n\nRun 'loom run --help' for more information\n`);
    return 125;
  }
  if (p.flags.detach && p.flags.rm === undefined) { /* fine */ }
  let id: string;
  try {
    id = await createContainer(cli, created.body, created.name);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404 && /No such image/.test(e.message)) {
      cli.err(`Unable to find image '${created.body.Image}' locally\nloom: Error response from daemon: ${e.message}.\n\nRun 'loom run --help' for more information\n`);
      return 125;
    }
    return daemonError(cli, e);
  }
  if (p.flags.detach) {
    try {
      await cli.client.request('POST', `/containers/${id}/start`);
    } catch (e) {
      return daemonError(cli, e);
    }
    cli.out(`${id}\n`);
    return 0;
  }
  const tty = !!p.flags.tty;
  const stdin = !!p.flags.interactive;
  let sock;
  try {
    sock = await cli.client.hijack(`/containers/${id}/attach?stream=1&stdout=1&stderr=1${stdin ? '&stdin=1' : ''}`);
  } catch (e) {
    return daemonError(cli, e);
  }
  const waitP = cli.client.request('POST', `/containers/${id}/wait?condition=${p.flags.rm ? 'removed' : 'next-exit'}`);
  const streamDone = pumpStreams(sock, tty, stdin);
  try {
    await cli.client.request('POST', `/containers/${id}/start`);
  } catch (e) {
    sock.destroy();
    if (p.flags.rm) await cli.client.request('DELETE', `/containers/${id}?force=1`).catch(() => {});
    return daemonError(cli, e);
  }
  const [w] = await Promise.all([waitP, streamDone]);
  return Number(w.body.StatusCode ?? 0);
};

function pumpStreams(sock: import('node:net').Socket, tty: boolean, stdin: boolean): Promise<void> {
  return new Promise((resolve) => {
    if (tty) sock.on('data', (b: Buffer) => process.stdout.write(b));
    else demux(sock, (b) => process.stdout.write(b), (b) => process.stderr.write(b));
    if (stdin) {
      process.stdin.on('data', (b) => sock.write(b));
      process.stdin.on('end', () => sock.end());
    }
    sock.on('end', () => {
      if (stdin) process.stdin.destroy();
      resolve();
    });
    sock.on('close', () => resolve());
    sock.on('error', () => resolve());
  });
}

function daemonError(cli: Cli, e: unknown): number {
  if (e instanceof ApiError) {
    cli.err(e.status === 0 ? `${e.message}\n` : `loom: Error response from daemon: ${e.message}\n\nRun 'loom run --help' for more information\n`);
    return 125;
  }
  throw e;
}

const create: Command = async (cli, argv) => {
  const p = parseFlags(argv, runSpecs, { interspersed: false });
  const c = buildCreate(p);
  c.body.AttachStdout = false;
  c.body.AttachStderr = false;
  const id = await createContainer(cli, c.body, c.name);
  cli.out(`${id}\n`);
  return 0;
};

/** Applies `fn` to each argument, printing errors as docker does and failing at the end if any failed. */
async function eachRef(cli: Cli, refs: string[], fn: (r: string) => Promise<void | string>): Promise<number> {
  if (!refs.length) throw new UsageError('requires at least 1 argument');
  let failed = false;
  for (const r of refs) {
    try {
      const out = await fn(r);
      cli.out(`${out ?? r}\n`);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      cli.err(`Error response from daemon: ${e.message}\n`);
      failed = true;
    }
  }
  return failed ? 1 : 0;
}

const start: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-a,--attach'), f('-i,--interactive')], { interspersed: true });
  if (p.flags.attach && p.args.length === 1) {
    const id = p.args[0]!;
    const info = (await cli.client.request('GET', `/containers/${encodeURIComponent(id)}/json`)).body;
    const sock = await cli.client.hijack(`/containers/${encodeURIComponent(id)}/attach?stream=1&stdout=1&stderr=1`);
    const waitP = cli.client.request('POST', `/containers/${encodeURIComponent(id)}/wait?condition=next-exit`);
    const done = pumpStreams(sock, info.Config.Tty, false);
    await cli.client.request('POST', `/containers/${encodeURIComponent(id)}/start`);
    const [w] = await Promise.all([waitP, done]);
    return Number(w.body.StatusCode ?? 0);
  }
  return eachRef(cli, p.args, async (r) => {
    await cli.client.request('POST', `/containers/${encodeURIComponent(r)}/start`);
  });
};

const stop: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-t,--time,--timeout', 'string', 'time'), f('-s,--signal', 'string')], { interspersed: true });
  const q = new URLSearchParams();
  if (p.flags.time !== undefined) q.set('t', p.flags.time);
  if (p.flags.signal) q.set('signal', p.flags.signal);
  return eachRef(cli, p.args, async (r) => {
    await cli.client.request('POST', `/containers/${encodeURIComponent(r)}/stop?${q}`);
  });
};

const restart: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-t,--time,--timeout', 'string', 'time'), f('-s,--signal', 'string')], { interspersed: true });
  const q = p.flags.time !== undefined ? `?t=${p.flags.time}` : '';
  return eachRef(cli, p.args, async (r) => {
    await cli.client.request('POST', `/containers/${encodeURIComponent(r)}/restart${q}`);
  });
};

const kill: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-s,--signal', 'string')], { interspersed: true });
  const q = p.flags.signal ? `?signal=${encodeURIComponent(p.flags.signal)}` : '';
  return eachRef(cli, p.args, async (r) => {
    await cli.client.request('POST', `/containers/${encodeURIComponent(r)}/kill${q}`);
  });
};

const rm: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-f,--force'), f('-v,--volumes'), f('-l,--link')], { interspersed: true });
  return eachRef(cli, p.args, async (r) => {
    await cli.client.request('DELETE', `/containers/${encodeURIComponent(r)}${p.flags.force ? '?force=1' : ''}`);
  });
};

const pause: Command = async (cli, argv) => eachRef(cli, argv, async (r) => {
  await cli.client.request('POST', `/containers/${encodeURIComponent(r)}/pause`);
});
const unpause: Command = async (cli, argv) => eachRef(cli, argv, async (r) => {
  await cli.client.request('POST', `/containers/${encodeURIComponent(r)}/unpause`);
});

const wait: Command = async (cli, argv) => eachRef(cli, argv, async (r) => {
  const w = await cli.client.request('POST', `/containers/${encodeURIComponent(r)}/wait`);
  return String(w.body.StatusCode);
});

function portsText(ports: { IP?: string; PrivatePort: number; PublicPort?: number; Type: string }[]): string {
  return ports.map((p) => (p.PublicPort ? `${p.IP === '::' ? '[::]' : p.IP}:${p.PublicPort}->${p.PrivatePort}/${p.Type}` : `${p.PrivatePort}/${p.Type}`)).join(', ');
}

const ps: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-a,--all'), f('-q,--quiet'), f('-n,--last', 'string', 'last'), f('-l,--latest'), f('--no-trunc'), f('-f,--filter', 'list', 'filter'), f('--format', 'string'), f('-s,--size')], { interspersed: true });
  const filters: Record<string, string[]> = {};
  for (const x of p.flags.filter) {
    const i = x.indexOf('=');
    if (i < 0) throw new UsageError(`bad format of filter (expected name=value)`);
    (filters[x.slice(0, i)] ??= []).push(x.slice(i + 1));
  }
  const q = new URLSearchParams();
  if (p.flags.all || p.flags.last || p.flags.latest) q.set('all', '1');
  if (p.flags.last) q.set('limit', p.flags.last);
  if (p.flags.latest) q.set('limit', '1');
  if (Object.keys(filters).length) q.set('filters', JSON.stringify(filters));
  const list = (await cli.client.request('GET', `/containers/json?${q}`)).body as any[];
  const trunc = !p.flags['no-trunc'];
  if (p.flags.quiet) {
    for (const c of list) cli.out(`${trunc ? c.Id.slice(0, 12) : c.Id}\n`);
    return 0;
  }
  const rows = list.map((c) => {
    const cmd = trunc && c.Command.length > 20 ? `${c.Command.slice(0, 19)}…` : c.Command;
    return {
      ID: trunc ? c.Id.slice(0, 12) : c.Id, Image: c.Image, Command: `"${cmd}"`, CreatedAt: new Date(c.Created * 1000).toString(),
      RunningFor: timeAgo(c.Created * 1000), Status: c.Status, State: c.State, Ports: portsText(c.Ports),
      Names: c.Names.map((n: string) => n.slice(1)).join(','), Labels: Object.entries(c.Labels ?? {}).map(([k, v]) => `${k}=${v}`).join(','),
      Networks: Object.keys(c.NetworkSettings?.Networks ?? {}).join(','), Mounts: '', Size: '',
    };
  });
  if (p.flags.format && p.flags.format !== 'table') {
    formatOutput(cli, p.flags.format, rows, {
      ID: 'CONTAINER ID', Image: 'IMAGE', Command: 'COMMAND', CreatedAt: 'CREATED AT', RunningFor: 'CREATED', Status: 'STATUS',
      State: 'STATE', Ports: 'PORTS', Names: 'NAMES', Labels: 'LABELS', Networks: 'NETWORKS', Mounts: 'MOUNTS', Size: 'SIZE',
    });
    return 0;
  }
  printTable(cli, ['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'PORTS', 'NAMES'], rows.map((r) => [r.ID, r.Image, r.Command, r.RunningFor, r.Status, r.Ports, r.Names]));
  return 0;
};

const logs: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-f,--follow'), f('--tail,-n', 'string', 'tail'), f('-t,--timestamps'), f('--since', 'string'), f('--until', 'string'), f('--details')], { interspersed: true });
  if (p.args.length !== 1) throw new UsageError('"logs" requires exactly 1 argument.');
  const id = encodeURIComponent(p.args[0]!);
  const info = (await cli.client.request('GET', `/containers/${id}/json`)).body;
  const q = new URLSearchParams({ stdout: '1', stderr: '1' });
  if (p.flags.follow) q.set('follow', '1');
  if (p.flags.tail) q.set('tail', p.flags.tail);
  if (p.flags.timestamps) q.set('timestamps', '1');
  if (p.flags.since) q.set('since', p.flags.since);
  const res = await cli.client.stream('GET', `/containers/${id}/logs?${q}`);
  await new Promise<void>((resolve) => {
    if (info.Config.Tty) res.on('data', (b: Buffer) => process.stdout.write(b));
    else demux(res, (b) => process.stdout.write(b), (b) => process.stderr.write(b));
    res.on('end', resolve);
    res.on('close', resolve);
  });
  return 0;
};

const exec: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-d,--detach'), f('-i,--interactive'), f('-t,--tty'), f('-e,--env', 'list'), f('--env-file', 'list'), f('-w,--workdir', 'string'), f('-u,--user', 'string'), f('--privileged'), f('--detach-keys', 'string')], { interspersed: false });
  const [ref, ...cmd] = p.args;
  if (!ref || !cmd.length) throw new UsageError('"exec" requires at least 2 arguments.');
  const body = {
    Cmd: cmd, Env: [...p.flags['env-file'].flatMap(parseEnvFile), ...p.flags.env], WorkingDir: p.flags.workdir ?? '', User: p.flags.user ?? '',
    Tty: !!p.flags.tty, AttachStdin: !!p.flags.interactive && !p.flags.detach, AttachStdout: !p.flags.detach, AttachStderr: !p.flags.detach,
    Privileged: !!p.flags.privileged,
  };
  let execId: string;
  try {
    execId = (await cli.client.request('POST', `/containers/${encodeURIComponent(ref)}/exec`, body)).body.Id;
  } catch (e) {
    if (e instanceof ApiError) {
      cli.err(`Error response from daemon: ${e.message}\n`);
      return e.status === 404 ? 1 : 1;
    }
    throw e;
  }
  if (p.flags.detach) {
    await cli.client.request('POST', `/exec/${execId}/start`, { Detach: true, Tty: !!p.flags.tty });
    return 0;
  }
  const sock = await cli.client.hijack(`/exec/${execId}/start`, { Detach: false, Tty: !!p.flags.tty });
  await pumpStreams(sock, !!p.flags.tty, !!p.flags.interactive);
  const ins = (await cli.client.request('GET', `/exec/${execId}/json`)).body;
  return Number(ins.ExitCode ?? 0);
};

const inspect: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-f,--format', 'string'), f('--type', 'string'), f('-s,--size')], { interspersed: true });
  if (!p.args.length) throw new UsageError('"inspect" requires at least 1 argument.');
  const results: unknown[] = [];
  let failed = false;
  for (const ref of p.args) {
    const r = encodeURIComponent(ref);
    const kinds = p.flags.type ? [p.flags.type] : ['container', 'image', 'network'];
    let got: unknown;
    for (const k of kinds) {
      const path = k === 'container' ? `/containers/${r}/json` : k === 'image' ? `/images/${ref}/json` : k === 'network' ? `/networks/${r}` : '';
      if (!path) throw new UsageError(`"${k}" is not a valid value for --type`);
      try {
        got = (await cli.client.request('GET', path)).body;
        break;
      } catch (e) {
        if (!(e instanceof ApiError) || (e.status !== 404 && e.status !== 400)) throw e;
      }
    }
    if (got === undefined) {
      cli.err(`Error: No such object: ${ref}\n`);
      failed = true;
      continue;
    }
    results.push(got);
  }
  if (p.flags.format) {
    for (const r of results) cli.out(renderTemplate(p.flags.format, r) + '\n');
  } else {
    cli.out(JSON.stringify(results, null, 4) + '\n');
  }
  return failed ? 1 : 0;
};

const port: Command = async (cli, argv) => {
  const [ref, want] = argv;
  if (!ref) throw new UsageError('"port" requires at least 1 argument.');
  const info = (await cli.client.request('GET', `/containers/${encodeURIComponent(ref)}/json`)).body;
  const ports: Record<string, { HostIp: string; HostPort: string }[] | null> = info.NetworkSettings.Ports ?? {};
  const key = want ? (want.includes('/') ? want : `${want}/tcp`) : undefined;
  let any = false;
  for (const [k, v] of Object.entries(ports)) {
    if (!v || (key && k !== key)) continue;
    for (const b of v) {
      any = true;
      const host = b.HostIp.includes(':') ? `[${b.HostIp}]` : b.HostIp || '0.0.0.0';
      cli.out(key ? `${host}:${b.HostPort}\n` : `${k} -> ${host}:${b.HostPort}\n`);
    }
  }
  if (key && !any) {
    cli.err(`Error: No public port '${key}' published for ${ref}\n`);
    return 1;
  }
  return 0;
};

const rename: Command = async (cli, argv) => {
  if (argv.length !== 2) throw new UsageError('"rename" requires exactly 2 arguments.');
  await cli.client.request('POST', `/containers/${encodeURIComponent(argv[0]!)}/rename?name=${encodeURIComponent(argv[1]!)}`);
  return 0;
};

const update: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('--restart', 'string')], { interspersed: true });
  const body: any = {};
  if (p.flags.restart) {
    const [n, c] = String(p.flags.restart).split(':');
    body.RestartPolicy = { Name: n, MaximumRetryCount: c ? Number(c) : 0 };
  }
  return eachRef(cli, p.args, async (r) => {
    await cli.client.request('POST', `/containers/${encodeURIComponent(r)}/update`, body);
  });
};

export const containerCommands: Record<string, Command> = { run, create, start, stop, restart, kill, rm, ps, logs, exec, inspect, wait, pause, unpause, port, rename, update };
