// Container verbs: run, create, start, stop, restart, kill, rm, ps, logs, exec, inspect, wait, pause, unpause,
// port, rename, update. Output, messages and exit codes are the docker CLI's (with "loom" for "docker"):
// daemon errors of run/create exit 125 (126/127 when the command cannot be run or is not found), per-container
// verbs print "Error response from daemon: ..." and exit 1, a container's own exit code passes through.
import fs from 'node:fs';
import type http from 'node:http';
import type { Cli, Command } from './main.ts';
import { parseFlags, f, UsageError, type Parsed } from './flags.ts';
import { mountFlags } from './mountflags.ts';
import { ApiError, demux } from './client.ts';
import { EscapeWatcher, parseDetachKeys } from './detachkeys.ts';
import { renderTemplate, GO_MARSHAL } from './gotemplate.ts';
import { addExposed, joinHostPort, naturalCompare, parsePublish, PortSpecError } from './portspec.ts';
import { printTable, formatRows, validateFormat, timeAgo, displayablePorts, goQuote, ellipsis, goTimeString, humanSize, tabwrite } from './output.ts';

const runSpecs = [
  f('-d,--detach'), f('--rm'), f('--name', 'string'), f('-e,--env', 'list'), f('--env-file', 'list'), f('-h,--hostname', 'string'),
  f('--domainname', 'string'), f('--network,--net', 'string', 'network'), f('-i,--interactive'), f('-t,--tty'), f('-p,--publish', 'list'),
  f('-P,--publish-all'), f('--expose', 'list'), f('--link', 'list'), f('--ip', 'string'), f('--ip6', 'string'),
  f('--network-alias,--net-alias', 'list', 'network-alias'), f('--mac-address', 'string'), f('--dns', 'list'),
  f('--dns-search', 'list'), f('--dns-option,--dns-opt', 'list', 'dns-option'), f('--add-host', 'list'), f('-l,--label', 'list'),
  f('--label-file', 'list'), f('-w,--workdir', 'string'), f('-u,--user', 'string'), f('--entrypoint', 'string'), f('--restart', 'string'),
  f('--init'), f('--privileged'), f('--stop-signal', 'string'), f('--stop-timeout', 'string'), f('-a,--attach', 'list'),
  f('--cidfile', 'string'), f('--pull', 'string'), f('--platform', 'string'), f('-q,--quiet'), f('--sig-proxy', 'bool'),
  f('--detach-keys', 'string'), f('-v,--volume', 'list'), f('--mount', 'list'), f('--tmpfs', 'list'), f('--volumes-from', 'list'),
  f('--log-driver', 'string'), f('--log-opt', 'list'),
];

const USAGE: Record<string, string> = {
  run: '[OPTIONS] IMAGE [COMMAND] [ARG...]', create: '[OPTIONS] IMAGE [COMMAND] [ARG...]', start: '[OPTIONS] CONTAINER [CONTAINER...]',
  stop: '[OPTIONS] CONTAINER [CONTAINER...]', restart: '[OPTIONS] CONTAINER [CONTAINER...]', kill: '[OPTIONS] CONTAINER [CONTAINER...]',
  rm: '[OPTIONS] CONTAINER [CONTAINER...]', ps: '[OPTIONS]', logs: '[OPTIONS] CONTAINER', exec: '[OPTIONS] CONTAINER COMMAND [ARG...]',
  wait: 'CONTAINER [CONTAINER...]', pause: 'CONTAINER [CONTAINER...]', unpause: 'CONTAINER [CONTAINER...]', rename: 'CONTAINER NEW_NAME',
  update: '[OPTIONS] CONTAINER [CONTAINER...]', attach: '[OPTIONS] CONTAINER', inspect: '[OPTIONS] NAME|ID [NAME|ID...]', port: 'CONTAINER [PRIVATE_PORT[/PROTO]]',
  top: 'CONTAINER [ps OPTIONS]',
};

/** Wrong number of arguments: docker prints usage and exits 1. */
class ArgError extends Error {}
/** A mistake docker reports as the bare message with exit status 1 ("you cannot start and attach ..."). */
class PlainError extends Error {}
/** run/create options that do not go together: "docker: MSG\n\nRun 'docker run --help' ...", exit 125. */
class RunOptionError extends Error {}

/** A flag's value refused while parsing: docker's `invalid argument "V" for "-x, --xx" flag: MSG`. */
const badFlag = (flag: string, value: string, msg: string) => new UsageError(`invalid argument "${value}" for "${flag}" flag: ${msg}`);

function usageText(cmd: string, hint: 'See' | 'Run'): string {
  return `\n\nUsage:  loom ${cmd} ${USAGE[cmd] ?? ''}\n\n${hint} 'loom ${cmd} --help' for more information`;
}

function requireArgs(cmd: string, args: string[], min: number, max = Infinity): void {
  if (args.length >= min && args.length <= max) return;
  const n = (k: number) => `${k} argument${k === 1 ? '' : 's'}`;
  if (max === 0) throw new ArgError(`loom: 'loom ${cmd}' accepts no arguments${usageText(cmd, 'Run')}`);
  if (min === max) throw new ArgError(`loom: 'loom ${cmd}' requires ${n(min)}${usageText(cmd, 'Run')}`);
  throw new ArgError(`loom: 'loom ${cmd}' requires at least ${n(min)}${usageText(cmd, 'See')}`);
}

/** Reports a command-line mistake as docker does; returns its exit status, or undefined for other errors. */
function cliMistake(cli: Cli, name: string, e: unknown): number | undefined {
  if (e instanceof ArgError || e instanceof PlainError) {
    cli.err(`${e.message}\n`);
    return 1;
  }
  if (e instanceof RunOptionError) {
    cli.err(`loom: ${e.message}\n\nRun 'loom ${name} --help' for more information\n`);
    return 125;
  }
  if (e instanceof UsageError) {
    cli.err(`${e.message}${usageText(name, 'Run')}\n`);
    return 125;
  }
  return undefined;
}

/** Runs a verb, turning argument and flag mistakes into docker's messages and exit codes. */
function verb(name: string, fn: Command): Command {
  return async (cli, argv) => {
    // (exec's own command may take --help: there only what parses as loom's flags would count)
    const dashdash = argv.indexOf('--');
    if (name !== 'exec' && argv.slice(0, dashdash < 0 ? undefined : dashdash).includes('--help')) {
      cli.out(`\nUsage:  loom ${name} ${USAGE[name] ?? ''}\n`);
      return 0;
    }
    try {
      return await fn(cli, argv);
    } catch (e) {
      const code = cliMistake(cli, name, e);
      if (code !== undefined) return code;
      throw e;
    }
  };
}

/** docker's kvfile.Parse: leading blanks dropped, `#` comments, `KEY` alone takes the caller's value (or is left out). */
export function parseEnvFile(p: string, lookup: (k: string) => string | undefined = (k) => process.env[k]): string[] {
  let text: string;
  try {
    text = fs.readFileSync(p, 'utf8');
  } catch (e) {
    throw new RunOptionError(`open ${p}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (e as Error).message}`);
  }
  const out: string[] = [];
  for (const raw of text.replace(/^\uFEFF/, '').split(/\r?\n/)) {
    const line = raw.replace(/^\s+/, '');
    if (!line || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    const key = eq < 0 ? line : line.slice(0, eq);
    if (!key) throw new RunOptionError(`invalid env file (${p}): no variable name on line '${line}'`);
    if (/[ \t]/.test(key)) throw new RunOptionError(`invalid env file (${p}): variable '${key}' contains whitespaces`);
    if (eq >= 0) out.push(line);
    else {
      const v = lookup(key);
      if (v !== undefined) out.push(`${key}=${v}`);
    }
  }
  return out;
}

/** -e KEY takes the value from the caller's environment, as docker's ValidateEnv does (else it is left out). */
function envArgs(list: string[]): string[] {
  return list.flatMap((e) => (e.includes('=') ? [e] : process.env[e] !== undefined ? [`${e}=${process.env[e]}`] : []));
}

/** docker's opts.ParseRestartPolicy (the daemon validates the name and count). */
export function parseRestartPolicy(s: string): { Name: string; MaximumRetryCount: number } {
  if (!s) return { Name: 'no', MaximumRetryCount: 0 };
  const i = s.indexOf(':');
  const name = i < 0 ? s : s.slice(0, i);
  const count = i < 0 ? '' : s.slice(i + 1);
  if (i >= 0 && !name) throw new RunOptionError('invalid restart policy format: no policy provided before colon');
  let n = 0;
  if (count) {
    if (!/^[+-]?\d+$/.test(count)) throw new RunOptionError('invalid restart policy format: maximum retry count must be an integer');
    n = Number(count);
  }
  return { Name: name, MaximumRetryCount: n };
}

/** docker's ValidateExtraHost: name:ip or name=ip, brackets allowed around the address, "host-gateway". */
export function validateExtraHost(v: string): string {
  let i = v.indexOf('=');
  if (i < 0) i = v.indexOf(':');
  const k = i < 0 ? '' : v.slice(0, i);
  let ip = i < 0 ? '' : v.slice(i + 1);
  if (i < 0 || !k || k.includes(':')) throw badFlag('--add-host', v, `bad format for add-host: "${v}"`);
  if (ip !== 'host-gateway') {
    if (ip.length > 2 && ip.startsWith('[') && ip.endsWith(']')) ip = ip.slice(1, -1);
    if (!isIP(ip)) throw badFlag('--add-host', v, `invalid IP address in add-host: "${ip}"`);
  }
  return `${k}:${ip}`;
}

function isIP(s: string): boolean {
  if (/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.test(s)) return s.split('.').every((x) => Number(x) <= 255 && (x === '0' || !x.startsWith('0')));
  return s.includes(':') && /^[0-9a-fA-F:.]+$/.test(s) && (s.match(/::/g) ?? []).length <= 1;
}

/** docker's ValidateLabel plus the KEY=VALUE split (a label without "=" has an empty value). */
function parseLabels(files: string[], list: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  const all = [...files.flatMap((p) => parseEnvFile(p, () => undefined).concat(readBareKeys(p))), ...list];
  for (const l of all) {
    const i = l.indexOf('=');
    const key = (i < 0 ? l : l.slice(0, i)).replace(/^[ \t]+/, '');
    if (!key) throw badFlag('-l, --label', l, `invalid label '${l}': empty name`);
    if (/[ \t]/.test(key)) throw badFlag('-l, --label', l, `label '${key}' contains whitespaces`);
    labels[key] = i < 0 ? '' : l.slice(i + 1);
  }
  return labels;
}

/** Lines of a label file that are a bare key (docker keeps them, with an empty value). */
function readBareKeys(p: string): string[] {
  return fs.readFileSync(p, 'utf8').split(/\r?\n/).map((l) => l.replace(/^\s+/, '')).filter((l) => l && !l.startsWith('#') && !l.includes('='));
}

export { parsePublish };

function buildCreate(p: Parsed, cmdName: 'run' | 'create' = 'run'): { body: any; name?: string } {
  const fl = p.flags;
  const [image, ...cmd] = p.args;
  if (!image) requireArgs(cmdName, p.args, 1);
  const env = [...fl['env-file'].flatMap((x: string) => parseEnvFile(x)), ...envArgs(fl.env)];
  let pub: ReturnType<typeof parsePublish>;
  try {
    pub = parsePublish(fl.publish);
    addExposed(pub.exposed, fl.expose);
  } catch (e) {
    throw e instanceof PortSpecError ? new RunOptionError(e.message) : e;
  }
  const restart = parseRestartPolicy(fl.restart ?? '');
  if (fl.rm && restart.Name !== 'no' && restart.Name !== '') throw new RunOptionError('conflicting options: cannot specify both --restart and --rm');
  if (fl.detach && fl.attach.length) throw new PlainError('conflicting options: cannot specify both --attach and --detach');
  const labels = parseLabels(fl['label-file'], fl.label);
  const extraHosts = fl['add-host'].map(validateExtraHost);
  const network = fl.network || 'default';
  const epConfig: any = {};
  if (fl.ip || fl.ip6 || fl['network-alias'].length || fl['mac-address']) {
    epConfig.IPAMConfig = { ...(fl.ip ? { IPv4Address: fl.ip } : {}), ...(fl.ip6 ? { IPv6Address: fl.ip6 } : {}) };
    epConfig.Aliases = fl['network-alias'];
    if (fl['mac-address']) epConfig.MacAddress = fl['mac-address'];
  }
  const mf = mountFlags(fl as never);
  const attach = !fl.detach;
  const streams = fl.attach.map((s: string) => s.toLowerCase());
  for (const s of streams) if (!['stdin', 'stdout', 'stderr'].includes(s)) throw badFlag('-a, --attach', s, 'valid streams are STDIN, STDOUT and STDERR');
  const body = {
    Hostname: fl.hostname ?? '',
    Domainname: fl.domainname ?? '',
    User: fl.user ?? '',
    AttachStdin: attach && (streams.length ? streams.includes('stdin') : !!fl.interactive),
    AttachStdout: attach && (streams.length ? streams.includes('stdout') : true),
    AttachStderr: attach && (streams.length ? streams.includes('stderr') : true),
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
    ...(Object.keys(mf.Volumes).length ? { Volumes: mf.Volumes } : {}),
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
      ExtraHosts: extraHosts.length ? extraHosts : null,
      Init: fl.init !== undefined ? !!fl.init : null,
      Privileged: !!fl.privileged,
      ...(mf.Binds.length ? { Binds: mf.Binds } : {}),
      ...(mf.Mounts.length ? { Mounts: mf.Mounts } : {}),
      ...(Object.keys(mf.Tmpfs).length ? { Tmpfs: mf.Tmpfs } : {}),
      ...(mf.VolumesFrom.length ? { VolumesFrom: mf.VolumesFrom } : {}),
      // docker's parseLoggingOpts: key=value pairs, checked by the daemon
      LogConfig: { Type: fl['log-driver'] ?? '', Config: Object.fromEntries((fl['log-opt'] as string[]).map((o) => (o.includes('=') ? [o.slice(0, o.indexOf('=')), o.slice(o.indexOf('=') + 1)] : [o, '']))) },
    },
    NetworkingConfig: { EndpointsConfig: Object.keys(epConfig).length ? { [network === 'default' ? 'bridge' : network]: epConfig } : {} },
  };
  return { body, name: fl.name };
}

async function createContainer(cli: Cli, body: any, name?: string): Promise<string> {
  const q = name ? `?name=${encodeURIComponent(name)}` : '';
  const r = await cli.client.request('POST', `/containers/create${q}`, body);
  for (const w of r.body.Warnings ?? []) cli.err(`WARNING: ${w}\n`); // as the docker CLI prints them
  return r.body.Id as string;
}

/** docker's toStatusError for run/create: 127 for a command not found, 126 when it cannot be run, else 125. */
export function runExitCode(message: string): number {
  if (/executable file not found|no such file or directory|system cannot find the file specified/.test(message)) return 127;
  if (/permission denied|is a directory/.test(message)) return 126;
  return 125;
}

function runError(cli: Cli, cmd: 'run' | 'create', e: unknown): number {
  if (e instanceof ApiError) {
    if (e.status === 0) {
      cli.err(`${e.message}\n`);
      return 125;
    }
    const msg = `Error response from daemon: ${e.message}`;
    cli.err(`loom: ${msg}\n\nRun 'loom ${cmd} --help' for more information\n`);
    return runExitCode(msg);
  }
  throw e;
}

function parseRun(cli: Cli, cmd: 'run' | 'create', argv: string[]): { p: Parsed; created: { body: any; name?: string } } | number {
  try {
    const p = parseFlags(argv, runSpecs, { interspersed: false });
    return { p, created: buildCreate(p, cmd) };
  } catch (e) {
    const code = cliMistake(cli, cmd, e);
    if (code === undefined) throw e;
    return code;
  }
}

async function createOrExplain(cli: Cli, cmd: 'run' | 'create', created: { body: any; name?: string }): Promise<string | number> {
  try {
    return await createContainer(cli, created.body, created.name);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404 && /No such image/.test(e.message)) {
      const ref = created.body.Image.includes(':') ? created.body.Image : `${created.body.Image}:latest`;
      cli.err(`Unable to find image '${ref}' locally\nloom: Error response from daemon: ${e.message}.\n\nRun 'loom ${cmd} --help' for more information\n`);
      return 125;
    }
    return runError(cli, cmd, e);
  }
}

const run: Command = async (cli, argv) => {
  const parsed = parseRun(cli, 'run', argv);
  if (typeof parsed === 'number') return parsed;
  const { p, created } = parsed;
  // the docker CLI's CheckTty, before anything is created
  if (created.body.Tty && created.body.AttachStdin && !process.stdin.isTTY) {
    cli.err('the input device is not a TTY\n');
    return 1;
  }
  let keys: number[];
  try {
    keys = detachKeysOf(p);
  } catch (e) {
    cli.err(`loom: ${(e as Error).message}\n`);
    return 125;
  }
  const id = await createOrExplain(cli, 'run', created);
  if (typeof id === 'number') return id;
  if (p.flags.cidfile) fs.writeFileSync(p.flags.cidfile, id);
  const b = created.body;
  if (!b.AttachStdin && !b.AttachStdout && !b.AttachStderr) {
    try {
      await cli.client.request('POST', `/containers/${id}/start`);
    } catch (e) {
      return runError(cli, 'run', e);
    }
    cli.out(`${id}\n`);
    return 0;
  }
  const tty = !!p.flags.tty;
  const stdin = !!b.AttachStdin;
  let sock;
  try {
    const q = new URLSearchParams({ stream: '1' });
    if (b.AttachStdout) q.set('stdout', '1');
    if (b.AttachStderr) q.set('stderr', '1');
    if (stdin) q.set('stdin', '1');
    sock = await cli.client.hijack(`/containers/${id}/attach?${q}`);
  } catch (e) {
    return runError(cli, 'run', e);
  }
  const waiting = waitFor(cli, id, p.flags.rm ? 'removed' : 'next-exit');
  const streamDone = pumpStreams(sock, tty, stdin, keys);
  await waiting.registered;
  try {
    await cli.client.request('POST', `/containers/${id}/start`);
  } catch (e) {
    sock.destroy();
    // the daemon removes an --rm container that failed to start; docker waits for that
    if (p.flags.rm) await waiting.result.catch(() => {});
    else waiting.cancel();
    return runError(cli, 'run', e);
  }
  return untilExitOrDetach(cli, id, tty, streamDone, waiting);
};

/**
 * The attached part of run/start -a/attach: keeps the container's terminal at our size, then gives the
 * container's exit code, or 0 when the user typed the detach keys (the container goes on, as with docker).
 */
async function untilExitOrDetach(cli: Cli, id: string, tty: boolean, streams: Promise<boolean>, waiting: { result: Promise<number>; cancel: () => void }): Promise<number> {
  const unfollow = tty ? followTerminalSize(cli, `/containers/${id}/resize`) : () => {};
  try {
    if (await streams) {
      waiting.cancel();
      return 0;
    }
    return await waiting.result;
  } finally {
    unfollow();
  }
}

/**
 * POST /containers/{id}/wait that can be given up (a pending request would keep the CLI alive). `registered`
 * settles when the daemon has taken the wait (it sends the headers then), so a start after it cannot
 * slip an exit past a `next-exit` wait.
 */
function waitFor(cli: Cli, id: string, condition: string): { result: Promise<number>; registered: Promise<void>; cancel: () => void } {
  let req: http.ClientRequest | undefined;
  let onHeaders: () => void = () => {};
  const registered = new Promise<void>((r) => (onHeaders = r));
  const result = new Promise<number>((resolve, reject) => {
    req = process.getBuiltinModule('node:http').request({ ...cli.client.at(), method: 'POST', path: `/v1.50/containers/${encodeURIComponent(id)}/wait?condition=${condition}` }, (res) => {
      onHeaders();
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => {
        try {
          const j = JSON.parse(body);
          if ((res.statusCode ?? 500) >= 400) reject(new ApiError(res.statusCode ?? 500, j.message ?? body));
          else resolve(Number(j.StatusCode ?? 0));
        } catch {
          reject(new ApiError(res.statusCode ?? 500, body));
        }
      });
    });
    req.on('error', (e) => {
      onHeaders();
      reject(e);
    });
    req.end();
  });
  result.catch(() => {});
  return { result, registered, cancel: () => req?.destroy() };
}

/**
 * Keeps the container's (or exec's) terminal at the size of ours, as the docker CLI does: once now, and
 * again on every SIGWINCH. Returns the function that stops following.
 */
function followTerminalSize(cli: Cli, resizePath: string): () => void {
  if (!process.stdout.isTTY) return () => {};
  const send = () => {
    cli.client.request('POST', `${resizePath}?h=${process.stdout.rows}&w=${process.stdout.columns}`).catch(() => {});
  };
  send();
  process.stdout.on('resize', send);
  return () => process.stdout.off('resize', send);
}

/**
 * Copies the attached streams until the daemon ends them; resolves true when the user typed the detach
 * keys instead (a terminal and stdin attached; the container goes on running), false otherwise.
 */
function pumpStreams(sock: import('node:net').Socket, tty: boolean, stdin: boolean, detachKeys?: number[]): Promise<boolean> {
  // With -t the container's terminal does the echoing, line editing and ^C; the local one must pass every
  // key through untouched and not translate the output again (\n to \r\n), as the docker CLI does.
  const raw = tty && stdin && process.stdin.isTTY;
  if (raw) process.stdin.setRawMode(true);
  const watcher = tty && stdin && detachKeys?.length ? new EscapeWatcher(detachKeys) : undefined;
  const done = new Promise<boolean>((resolve) => {
    if (tty) sock.on('data', (b: Buffer) => process.stdout.write(b));
    else demux(sock, (b) => process.stdout.write(b), (b) => process.stderr.write(b));
    if (stdin) {
      process.stdin.on('data', (b: Buffer) => {
        if (!watcher) return void sock.write(b);
        const { pass, detach } = watcher.feed(b);
        if (pass.length) sock.write(pass);
        if (!detach) return;
        process.stderr.write('read escape sequence\n');
        process.stdin.destroy();
        sock.destroy();
        resolve(true);
      });
      process.stdin.on('end', () => sock.end());
    }
    sock.on('end', () => {
      if (stdin) process.stdin.destroy();
      resolve(false);
    });
    sock.on('close', () => resolve(false));
    sock.on('error', () => resolve(false));
  });
  return raw ? done.finally(() => process.stdin.isTTY && process.stdin.setRawMode(false)) : done;
}

/** --detach-keys, or Docker's default ctrl-p,ctrl-q. */
function detachKeysOf(p: Parsed): number[] {
  try {
    return parseDetachKeys((p.flags['detach-keys'] as string | undefined) || 'ctrl-p,ctrl-q');
  } catch (e) {
    throw new PlainError((e as Error).message);
  }
}

const create: Command = async (cli, argv) => {
  const parsed = parseRun(cli, 'create', argv);
  if (typeof parsed === 'number') return parsed;
  const { p, created } = parsed;
  created.body.AttachStdout = false;
  created.body.AttachStderr = false;
  created.body.AttachStdin = false;
  created.body.StdinOnce = false;
  const id = await createOrExplain(cli, 'create', created);
  if (typeof id === 'number') return id;
  if (p.flags.cidfile) fs.writeFileSync(p.flags.cidfile, id);
  cli.out(`${id}\n`);
  return 0;
};

/** Applies `fn` to each argument, printing each success (its name) and each failure as docker does. */
async function eachRef(cli: Cli, refs: string[], fn: (r: string) => Promise<void | string>): Promise<{ code: number; failed: string[] }> {
  const failed: string[] = [];
  for (const r of refs) {
    try {
      const out = await fn(r);
      cli.out(`${out ?? r}\n`);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      cli.err(e.status === 0 ? `${e.message}\n` : `Error response from daemon: ${e.message}\n`);
      failed.push(r);
    }
  }
  return { code: failed.length ? 1 : 0, failed };
}

const ref = (r: string) => encodeURIComponent(r);

const start: Command = verb('start', async (cli, argv) => {
  const p = parseFlags(argv, [f('-a,--attach'), f('-i,--interactive'), f('--detach-keys', 'string'), f('--checkpoint', 'string'), f('--checkpoint-dir', 'string')], { interspersed: true });
  requireArgs('start', p.args, 1, Infinity);
  if (p.flags.attach || p.flags.interactive) {
    if (p.args.length > 1) throw new PlainError('you cannot start and attach multiple containers at once');
    const id = p.args[0]!;
    const info = (await cli.client.request('GET', `/containers/${ref(id)}/json`)).body;
    const stdin = !!p.flags.interactive && info.Config.OpenStdin;
    if (stdin && info.Config.Tty && !process.stdin.isTTY) throw new PlainError('the input device is not a TTY');
    const keys = detachKeysOf(p);
    const sock = await cli.client.hijack(`/containers/${ref(id)}/attach?stream=1&stdout=1&stderr=1${stdin ? '&stdin=1' : ''}`);
    const waiting = waitFor(cli, info.Id, 'next-exit');
    const done = pumpStreams(sock, info.Config.Tty, stdin, keys);
    await waiting.registered;
    try {
      await cli.client.request('POST', `/containers/${ref(id)}/start`);
    } catch (e) {
      sock.destroy();
      waiting.cancel();
      throw e;
    }
    return untilExitOrDetach(cli, info.Id, info.Config.Tty, done, waiting);
  }
  const r = await eachRef(cli, p.args, async (x) => {
    await cli.client.request('POST', `/containers/${ref(x)}/start`);
  });
  if (r.failed.length) cli.err(`Error: failed to start containers: ${r.failed.join(', ')}\n`);
  return r.code;
});

/** docker attach: the running container's streams (and stdin, if it keeps one open) until it exits. */
const attach: Command = verb('attach', async (cli, argv) => {
  const p = parseFlags(argv, [f('--no-stdin'), f('--sig-proxy', 'bool'), f('--detach-keys', 'string')], { interspersed: true });
  requireArgs('attach', p.args, 1, 1);
  const info = (await cli.client.request('GET', `/containers/${ref(p.args[0]!)}/json`)).body;
  if (!info.State.Running) throw new PlainError('You cannot attach to a stopped container, start it first');
  if (info.State.Paused) throw new PlainError('You cannot attach to a paused container, unpause it first');
  const stdin = !p.flags['no-stdin'] && info.Config.OpenStdin;
  if (stdin && info.Config.Tty && !process.stdin.isTTY) throw new PlainError('the input device is not a TTY');
  const keys = detachKeysOf(p);
  const sock = await cli.client.hijack(`/containers/${info.Id}/attach?stream=1&stdout=1&stderr=1${stdin ? '&stdin=1' : ''}`);
  const waiting = waitFor(cli, info.Id, 'next-exit');
  const streams = pumpStreams(sock, info.Config.Tty, stdin, keys);
  await waiting.registered;
  return untilExitOrDetach(cli, info.Id, info.Config.Tty, streams, waiting);
});

function timeFlag(p: Parsed): string | undefined {
  const t = p.flags.time ?? p.flags.timeout;
  if (p.flags.time !== undefined && p.flags.timeout !== undefined) throw new PlainError('conflicting options: cannot specify both --timeout and --time');
  if (t === undefined) return undefined;
  if (!/^-?\d+$/.test(t)) throw badFlag('-t, --timeout', t, `strconv.ParseInt: parsing "${t}": invalid syntax`);
  return t;
}

const stopSpecs = [f('-t,--timeout', 'string', 'timeout'), f('--time', 'string', 'time'), f('-s,--signal', 'string')];

const stop: Command = verb('stop', async (cli, argv) => {
  const p = parseFlags(argv, stopSpecs, { interspersed: true });
  requireArgs('stop', p.args, 1, Infinity);
  const q = new URLSearchParams();
  const t = timeFlag(p);
  if (t !== undefined) q.set('t', t);
  if (p.flags.signal) q.set('signal', p.flags.signal);
  return (await eachRef(cli, p.args, async (r) => {
    await cli.client.request('POST', `/containers/${ref(r)}/stop?${q}`);
  })).code;
});

const restart: Command = verb('restart', async (cli, argv) => {
  const p = parseFlags(argv, stopSpecs, { interspersed: true });
  requireArgs('restart', p.args, 1, Infinity);
  const q = new URLSearchParams();
  const t = timeFlag(p);
  if (t !== undefined) q.set('t', t);
  if (p.flags.signal) q.set('signal', p.flags.signal);
  return (await eachRef(cli, p.args, async (r) => {
    await cli.client.request('POST', `/containers/${ref(r)}/restart?${q}`);
  })).code;
});

const kill: Command = verb('kill', async (cli, argv) => {
  const p = parseFlags(argv, [f('-s,--signal', 'string')], { interspersed: true });
  requireArgs('kill', p.args, 1, Infinity);
  const q = p.flags.signal ? `?signal=${encodeURIComponent(p.flags.signal)}` : '';
  return (await eachRef(cli, p.args, async (r) => {
    await cli.client.request('POST', `/containers/${ref(r)}/kill${q}`);
  })).code;
});

const rm: Command = verb('rm', async (cli, argv) => {
  const p = parseFlags(argv, [f('-f,--force'), f('-v,--volumes'), f('-l,--link')], { interspersed: true });
  requireArgs('rm', p.args, 1, Infinity);
  const q = new URLSearchParams();
  if (p.flags.force) q.set('force', '1');
  if (p.flags.volumes) q.set('v', '1');
  if (p.flags.link) q.set('link', '1');
  let failed = false;
  for (const name of p.args) {
    const r = name.replace(/^\/+|\/+$/g, '');
    try {
      if (!r) throw new ApiError(-1, 'container name cannot be empty');
      await cli.client.request('DELETE', `/containers/${ref(r)}?${q}`);
      cli.out(`${name}\n`);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      cli.err(e.status <= 0 ? `${e.message}\n` : `Error response from daemon: ${e.message}\n`);
      // as docker: with --force a container that is not there is reported but is no failure
      if (!(p.flags.force && e.status === 404)) failed = true;
    }
  }
  return failed ? 1 : 0;
});

const pause: Command = verb('pause', async (cli, argvIn) => {
  const argv = parseFlags(argvIn, [], { interspersed: true }).args;
  requireArgs('pause', argv, 1, Infinity);
  return (await eachRef(cli, argv, async (r) => {
    await cli.client.request('POST', `/containers/${ref(r)}/pause`);
  })).code;
});

const unpause: Command = verb('unpause', async (cli, argvIn) => {
  const argv = parseFlags(argvIn, [], { interspersed: true }).args;
  requireArgs('unpause', argv, 1, Infinity);
  return (await eachRef(cli, argv, async (r) => {
    await cli.client.request('POST', `/containers/${ref(r)}/unpause`);
  })).code;
});

const wait: Command = verb('wait', async (cli, argvIn) => {
  const argv = parseFlags(argvIn, [], { interspersed: true }).args;
  requireArgs('wait', argv, 1, Infinity);
  return (await eachRef(cli, argv, async (r) => {
    const w = await cli.client.request('POST', `/containers/${ref(r)}/wait`);
    return String(w.body.StatusCode);
  })).code;
});

// ---------------------------------------------------------------------------- ps

const PS_DEFAULT = 'table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}';
const PS_HEADERS = {
  ID: 'CONTAINER ID', Names: 'NAMES', Image: 'IMAGE', Command: 'COMMAND', CreatedAt: 'CREATED AT', RunningFor: 'CREATED',
  Ports: 'PORTS', State: 'STATE', Status: 'STATUS', Size: 'SIZE', Labels: 'LABELS', Mounts: 'MOUNTS', LocalVolumes: 'LOCAL VOLUMES',
  Networks: 'NETWORKS', Platform: 'PLATFORM',
};

// docker's SubHeaderContext.Label: the header of `{{.Label "com.example.some-key"}}` is "some key"
Object.defineProperty(PS_HEADERS, 'Label', { value: (name: string) => name.split('.').pop()!.replace(/[-_]/g, ' '), enumerable: false });

const truncateId = (id: string) => id.replace(/^sha256:/, '').slice(0, 12);

/** docker's ContainerContext for one list entry: the fields (and the Label method) a --format template sees. */
export function psRow(c: any, trunc: boolean): Record<string, unknown> {
  const names: string[] = (c.Names ?? []).map((n: string) => n.replace(/^\//, ''));
  // truncated: the container's own name only, not the legacy link names ("/parent/alias")
  const own = names.find((n) => !n.includes('/'));
  const shown = trunc && own !== undefined ? [own] : names;
  const labels: Record<string, string> = c.Labels ?? {};
  let image: string = c.Image || '<no image>';
  if (trunc && c.Image && truncateId(c.ImageID ?? '') === truncateId(c.Image)) image = truncateId(c.Image);
  const size = (c.SizeRootFs ?? 0) > 0 ? `${humanSize(c.SizeRw ?? 0)} (virtual ${humanSize(c.SizeRootFs)})` : humanSize(c.SizeRw ?? 0);
  // keys in docker's JSON order (json.Marshal of a map: sorted)
  const row: Record<string, unknown> = {
    Command: goQuote(trunc ? ellipsis(c.Command ?? '', 20) : c.Command ?? ''),
    CreatedAt: goTimeString(new Date(c.Created * 1000)),
    ID: trunc ? truncateId(c.Id) : c.Id,
    Image: image,
    Labels: Object.entries(labels).map(([k, v]) => `${k}=${v}`).sort().join(','),
    LocalVolumes: String((c.Mounts ?? []).filter((m: any) => m.Driver === 'local').length),
    Mounts: (c.Mounts ?? []).map((m: any) => (trunc ? ellipsis(m.Name || m.Source, 15) : m.Name || m.Source)).join(','),
    Names: shown.join(','),
    Networks: Object.keys(c.NetworkSettings?.Networks ?? {}).join(','),
    Platform: null,
    Ports: displayablePorts(c.Ports ?? []),
    RunningFor: timeAgo(c.Created * 1000),
    Size: size,
    State: c.State,
    Status: c.Status,
  };
  Object.defineProperty(row, 'Label', { value: (name: string) => labels[name] ?? '', enumerable: false });
  Object.defineProperty(row, GO_MARSHAL, { value: () => goMarshal(row), enumerable: false });
  return row;
}

/** Go's json.Marshal: HTML-sensitive characters escaped, as docker's ContainerContext.MarshalJSON does. */
function goMarshal(v: unknown): string {
  return JSON.stringify(v).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

const ps: Command = verb('ps', async (cli, argv) => {
  const p = parseFlags(argv, [f('-a,--all'), f('-q,--quiet'), f('-n,--last', 'string', 'last'), f('-l,--latest'), f('--no-trunc'), f('-f,--filter', 'list', 'filter'), f('--format', 'string'), f('-s,--size', 'bool')], { interspersed: true });
  requireArgs('ps', p.args, 0, 0);
  const filters: Record<string, Record<string, boolean>> = {};
  for (const x of p.flags.filter) {
    const i = x.indexOf('=');
    if (i < 0) throw badFlag('-f, --filter', x, 'bad format of filter (expected name=value)');
    (filters[x.slice(0, i).trim().toLowerCase()] ??= {})[x.slice(i + 1)] = true;
  }
  let last = -1;
  if (p.flags.last !== undefined) {
    if (!/^-?\d+$/.test(p.flags.last)) throw badFlag('-n, --last', p.flags.last, `strconv.ParseInt: parsing "${p.flags.last}": invalid syntax`);
    last = Number(p.flags.last);
  }
  if (p.flags.latest && last === -1) last = 1;
  let format: string = p.flags.format ?? '';
  if (format) {
    try {
      validateFormat(format);
    } catch (e) {
      throw new PlainError(`failed to parse template: ${(e as Error).message.replace(/^template parsing error: /, '')}`);
    }
  }
  const q = new URLSearchParams();
  if (p.flags.all) q.set('all', '1');
  if (last !== -1) q.set('limit', String(last));
  const wantSize = p.flags.size === true || (p.flags.size === undefined && !p.flags.quiet && /\.Size\b/.test(format));
  if (wantSize) q.set('size', '1');
  if (Object.keys(filters).length) q.set('filters', JSON.stringify(filters));
  const list = (await cli.client.request('GET', `/containers/json?${q}`)).body as any[];
  const trunc = !p.flags['no-trunc'];
  if (p.flags.quiet) format = '{{.ID}}';
  else if (!format || format === 'table') format = PS_DEFAULT + (p.flags.size ? '\t{{.Size}}' : '');
  cli.out(formatRows(format, list.map((c) => psRow(c, trunc)), PS_HEADERS));
  return 0;
});

// ---------------------------------------------------------------------------- logs

/** docker's GetTimestamp (api/types/time): a duration ago, an RFC 3339 date/time, or a unix timestamp. */
export function toTimestamp(value: string, now = Date.now()): string {
  const dur = parseGoDuration(value);
  if (value !== '0' && dur !== null) return String(Math.floor((now - dur) / 1000));
  if (/^\d+(\.\d+)?$/.test(value)) return value;
  const local = !/[zZ+]/.test(value) && (value.match(/-/g) ?? []).length !== 3;
  let iso = value;
  if (!value.includes('T') && /^\d{4}-\d\d-\d\d/.test(value)) iso = value.replace(/^(\d{4}-\d\d-\d\d)/, '$1T00:00:00');
  else if (/T\d\d$/.test(value.replace(/(Z|[+-]\d\d:\d\d)$/, ''))) iso = value.replace(/(T\d\d)/, '$1:00:00');
  else if (/T\d\d:\d\d$/.test(value.replace(/(Z|[+-]\d\d:\d\d)$/, ''))) iso = value.replace(/(T\d\d:\d\d)/, '$1:00');
  const ms = Date.parse(local ? iso.replace(/(Z|[+-]\d\d:\d\d)?$/, '') : iso);
  if (Number.isNaN(ms)) {
    if (value.includes('-')) throw new PlainError(`parsing time "${value}" as "2006-01-02T15:04:05Z07:00": cannot parse "${value}" as "2006"`);
    throw new PlainError(`failed to parse value as time or duration: "${value}"`);
  }
  const frac = /\.(\d+)/.exec(value)?.[1] ?? '';
  const nanos = (frac + '000000000').slice(0, 9);
  return `${Math.floor(ms / 1000)}.${nanos}`;
}

/** Go's time.ParseDuration in milliseconds, or null. */
function parseGoDuration(s: string): number | null {
  const m = /^([+-])?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$/.exec(s);
  if (!m && s !== '0') return null;
  if (s === '0') return 0;
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  for (const part of s.replace(/^[+-]/, '').matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/g)) total += Number(part[1]) * unit[part[2]!]!;
  return s.startsWith('-') ? -total : total;
}

const logs: Command = verb('logs', async (cli, argv) => {
  const p = parseFlags(argv, [f('-f,--follow'), f('-n,--tail', 'string', 'tail'), f('-t,--timestamps'), f('--since', 'string'), f('--until', 'string'), f('--details')], { interspersed: true });
  requireArgs('logs', p.args, 1, 1);
  const id = ref(p.args[0]!);
  const info = (await cli.client.request('GET', `/containers/${id}/json`)).body;
  const q = new URLSearchParams({ stdout: '1', stderr: '1' });
  if (p.flags.follow) q.set('follow', '1');
  q.set('tail', p.flags.tail ?? 'all');
  if (p.flags.timestamps) q.set('timestamps', '1');
  if (p.flags.details) q.set('details', '1');
  if (p.flags.since) q.set('since', toTimestamp(p.flags.since));
  if (p.flags.until) q.set('until', toTimestamp(p.flags.until));
  const res = await cli.client.stream('GET', `/containers/${id}/logs?${q}`);
  await new Promise<void>((resolve) => {
    if (info.Config.Tty) res.on('data', (b: Buffer) => process.stdout.write(b));
    else demux(res, (b) => process.stdout.write(b), (b) => process.stderr.write(b));
    res.on('end', resolve);
    res.on('close', resolve);
  });
  return 0;
});

// ---------------------------------------------------------------------------- exec

const exec: Command = verb('exec', async (cli, argv) => {
  const p = parseFlags(argv, [f('-d,--detach'), f('-i,--interactive'), f('-t,--tty'), f('-e,--env', 'list'), f('--env-file', 'list'), f('-w,--workdir', 'string'), f('-u,--user', 'string'), f('--privileged'), f('--detach-keys', 'string')], { interspersed: false });
  const [target, ...cmd] = p.args;
  requireArgs('exec', p.args, 2, Infinity);
  const keys = detachKeysOf(p);
  const body = {
    Cmd: cmd, Env: [...p.flags['env-file'].flatMap((x: string) => parseEnvFile(x)), ...envArgs(p.flags.env)], WorkingDir: p.flags.workdir ?? '', User: p.flags.user ?? '',
    Tty: !!p.flags.tty, AttachStdin: !!p.flags.interactive && !p.flags.detach, AttachStdout: !p.flags.detach, AttachStderr: !p.flags.detach,
    Privileged: !!p.flags.privileged, Detach: !!p.flags.detach,
  };
  let execId: string;
  try {
    // as docker: an inspect first, so that "No such container" wins over everything else
    await cli.client.request('GET', `/containers/${ref(target!)}/json`);
    if (body.Tty && body.AttachStdin && !process.stdin.isTTY) {
      cli.err('the input device is not a TTY\n');
      return 1;
    }
    execId = (await cli.client.request('POST', `/containers/${ref(target!)}/exec`, body)).body.Id;
    if (p.flags.detach) {
      await cli.client.request('POST', `/exec/${execId}/start`, { Detach: true, Tty: !!p.flags.tty });
      return 0;
    }
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
    cli.err(e.status === 0 ? `${e.message}\n` : `Error response from daemon: ${e.message}\n`);
    return 1;
  }
  const sock = await cli.client.hijack(`/exec/${execId}/start`, { Detach: false, Tty: !!p.flags.tty });
  const unfollow = p.flags.tty ? followTerminalSize(cli, `/exec/${execId}/resize`) : () => {};
  const detached = await pumpStreams(sock, !!p.flags.tty, !!p.flags.interactive, keys);
  unfollow();
  if (detached) return 0;
  const ins = (await cli.client.request('GET', `/exec/${execId}/json`)).body;
  return Number(ins.ExitCode ?? 0);
});

const inspect: Command = verb('inspect', async (cli, argv) => {
  const p = parseFlags(argv, [f('-f,--format', 'string'), f('--type', 'string'), f('-s,--size')], { interspersed: true });
  requireArgs('inspect', p.args, 1);
  const results: unknown[] = [];
  let failed = false;
  for (const ref of p.args) {
    const r = encodeURIComponent(ref);
    const kinds = p.flags.type ? [p.flags.type] : ['container', 'image', 'network', 'volume'];
    let got: unknown;
    for (const k of kinds) {
      const path = k === 'container' ? `/containers/${r}/json` : k === 'image' ? `/images/${ref}/json` : k === 'network' ? `/networks/${r}` : k === 'volume' ? `/volumes/${r}` : '';
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
});

const port: Command = verb('port', async (cli, argv) => {
  requireArgs('port', argv, 1, 2);
  const [ref, want] = argv;
  const info = (await cli.client.request('GET', `/containers/${encodeURIComponent(ref!)}/json`)).body;
  const ports: Record<string, { HostIp: string; HostPort: string }[] | null> = info.NetworkSettings.Ports ?? {};
  // docker's runPort: one mapping or all of them, natural-sorted
  const out: string[] = [];
  if (want) {
    const [num, proto = 'tcp'] = want.split('/', 2) as [string, string?];
    if (!/^\d+$/.test(num) || Number(num) > 65535) throw new PlainError(`Error: invalid port (${num}): strconv.ParseUint: parsing ${JSON.stringify(num)}: ${/^\d+$/.test(num) ? 'value out of range' : 'invalid syntax'}`);
    const frontends = ports[`${num}/${proto || 'tcp'}`];
    if (!frontends?.length) throw new PlainError(`Error: No public port '${want}' published for ${ref}`);
    for (const b of frontends) out.push(joinHostPort(b.HostIp, b.HostPort));
  } else {
    for (const [k, v] of Object.entries(ports)) for (const b of v ?? []) out.push(`${k} -> ${joinHostPort(b.HostIp, b.HostPort)}`);
  }
  if (out.length) cli.out(`${out.sort(naturalCompare).join('\n')}\n`);
  return 0;
});

const rename: Command = verb('rename', async (cli, argvIn) => {
  const argv = parseFlags(argvIn, [], { interspersed: true }).args;
  requireArgs('rename', argv, 2, 2);
  const [oldName, newName] = [argv[0]!.trim(), argv[1]!.trim()];
  if (!oldName || !newName) throw new PlainError('Error: Neither old nor new names may be empty');
  try {
    await cli.client.request('POST', `/containers/${ref(oldName)}/rename?name=${encodeURIComponent(newName)}`);
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
    cli.err(`${e.status === 0 ? '' : 'Error response from daemon: '}${e.message}\nError: failed to rename container named ${oldName}\n`);
    return 1;
  }
  return 0;
});

const update: Command = verb('update', async (cli, argv) => {
  const p = parseFlags(argv, [f('--restart', 'string')], { interspersed: true });
  requireArgs('update', p.args, 1, Infinity);
  if (p.flags.restart === undefined) throw new PlainError('you must provide one or more flags when using this command');
  let body: any;
  try {
    body = { RestartPolicy: parseRestartPolicy(p.flags.restart) };
  } catch (e) {
    throw new PlainError((e as Error).message);
  }
  const errs: string[] = [];
  const warns: string[] = [];
  for (const r of p.args) {
    try {
      const res = await cli.client.request('POST', `/containers/${ref(r)}/update`, body);
      warns.push(...(res.body?.Warnings ?? []));
      cli.out(`${r}\n`);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      errs.push(e.status === 0 ? e.message : `Error response from daemon: ${e.message}`);
    }
  }
  if (warns.length) cli.out(`${warns.join('\n')}\n`);
  if (errs.length) {
    cli.err(`${errs.join('\n')}\n`);
    return 1;
  }
  return 0;
});

/** `docker top CONTAINER [ps OPTIONS]`: the daemon runs ps; columns as the docker CLI prints them. */
const top: Command = verb('top', async (cli, argv) => {
  const [id, ...psArgs] = argv;
  requireArgs('top', argv, 1, Infinity);
  const q = psArgs.length ? `?ps_args=${encodeURIComponent(psArgs.join(' '))}` : '';
  const r = (await cli.client.request('GET', `/containers/${ref(id!)}/top${q}`)).body;
  cli.out(tabwrite([r.Titles, ...r.Processes].map((row: string[]) => row.join('\t') + '\n').join(''), 20, 3));
  return 0;
});

export const containerCommands: Record<string, Command> = { run, create, start, attach, stop, restart, kill, rm, ps, logs, exec, inspect, wait, pause, unpause, port, rename, update, top };
void renderTemplate;
void printTable;
