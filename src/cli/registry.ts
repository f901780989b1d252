// login / logout: the daemon checks the credentials with the registry (POST /auth); the CLI keeps them in
// the docker CLI's config.json, so `docker` and `loom` share a login.
import type { Command } from './main.ts';
import { parseFlags, f, UsageError } from './flags.ts';
import { HUB_SERVER, eraseAuth, getAuth, hostnameOf, registryAuthHeader, serverKey, storeAuth } from './dockerconfig.ts';
import { ApiError } from './client.ts';
import { MessageRenderer, StreamError, renderStream } from './jsonmessage.ts';
import { familiarName, fullName, parseRepoRef } from '../images/registry/refname.ts';

/** Reads a line from the terminal; `hidden` turns echo off (a password). */
function prompt(question: string, hidden: boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(question);
    let line = '';
    const wasRaw = stdin.isRaw;
    if (hidden) stdin.setRawMode(true);
    stdin.resume();
    const done = (v: string | Error) => {
      stdin.off('data', onData);
      if (hidden) { stdin.setRawMode(wasRaw); process.stderr.write('\n'); }
      stdin.pause();
      if (v instanceof Error) reject(v); else resolve(v);
    };
    const onData = (b: Buffer) => {
      for (const ch of b.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done(line);
        if (ch === '\u0003' || ch === '\u0004') return done(new Error('interrupted'));
        if (ch === '\u007f' || ch === '\b') line = line.slice(0, -1);
        else line += ch;
      }
    };
    stdin.on('data', onData);
  });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

const login: Command = async (cli, argv) => {
  const { flags, args } = parseFlags(argv, [f('-u,--username', 'string'), f('-p,--password', 'string'), f('--password-stdin')], { interspersed: true });
  if (args.length > 1) throw new UsageError('"login" requires at most 1 argument.');
  const server = args[0] && hostnameOf(args[0]) !== 'docker.io' ? args[0] : HUB_SERVER;
  let username: string | undefined = flags.username?.trim();
  let password: string | undefined = flags.password;
  if (flags['password-stdin']) {
    if (password !== undefined) throw new UsageError('--password and --password-stdin are mutually exclusive');
    if (!username) throw new UsageError('the --password-stdin option requires --username to be set');
    password = await readStdin();
  } else if (password !== undefined) {
    cli.err('WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n');
  }
  // no credentials given: the stored ones, when there are any, as the docker CLI tries first
  if (username === undefined && password === undefined) {
    const stored = getAuth(server);
    if (stored) {
      cli.out('Authenticating with existing credentials...\n');
      try {
        await authenticate(cli, server, stored.username, stored.password, stored.identitytoken);
        return 0;
      } catch (e) {
        if (!(e instanceof ApiError) || !process.stdin.isTTY) throw e;
        cli.err(`Login did not succeed, error: ${e.message}\n`);
      }
    }
  }
  if (username === undefined || password === undefined) {
    if (!process.stdin.isTTY) {
      cli.err('Error: Cannot perform an interactive login from a non TTY device\n');
      return 1;
    }
    if (username === undefined) username = (await prompt('Username: ', false)).trim();
    if (!username) {
      cli.err('Error: Non-null Username Required\n');
      return 1;
    }
    if (password === undefined) password = await prompt('Password: ', true);
    if (!password) {
      cli.err('Error: Password Required\n');
      return 1;
    }
  }
  await authenticate(cli, server, username, password);
  return 0;
};

async function authenticate(cli: Parameters<Command>[0], server: string, username: string, password: string, identitytoken?: string): Promise<void> {
  const body = { username, password, serveraddress: serverKey(server), ...(identitytoken ? { identitytoken } : {}) };
  const r = await cli.client.request('POST', '/auth', body);
  const token: string = r.body?.IdentityToken ?? '';
  storeAuth(server, { username, password, identitytoken: token || undefined });
  cli.out(`${r.body?.Status ?? 'Login Succeeded'}\n`);
}

const logout: Command = async (cli, argv) => {
  const { args } = parseFlags(argv, [], { interspersed: true });
  if (args.length > 1) throw new UsageError('"logout" requires at most 1 argument.');
  const server = args[0] && hostnameOf(args[0]) !== 'docker.io' ? args[0] : HUB_SERVER;
  // the docker CLI says this whether or not there was a login to remove
  cli.out(`Removing login credentials for ${serverKey(server) === HUB_SERVER ? HUB_SERVER : hostnameOf(server)}\n`);
  eraseAuth(server);
  return 0;
};

/** --platform: only this machine's (loom runs linux/amd64 images); anything else is refused by name. */
function checkPlatform(p: string | undefined): void {
  if (p && p !== 'linux/amd64' && p !== 'linux/x86_64') throw new UsageError(`--platform ${p} is not supported: loom pulls and pushes linux/amd64 images only`);
}

async function streamed(cli: Parameters<Command>[0], method: string, apiPath: string, domain: string, quiet: boolean, onAux?: (a: unknown) => void): Promise<number> {
  const auth = registryAuthHeader(domain);
  const res = await cli.client.stream(method, apiPath, auth ? { 'X-Registry-Auth': auth } : {});
  const tty = !quiet && !!process.stdout.isTTY;
  const r = new MessageRenderer(quiet ? () => {} : cli.out, tty, process.stdout.columns ?? 80);
  r.onAux = onAux;
  try {
    await renderStream(res, r);
  } catch (e) {
    if (!(e instanceof StreamError)) throw e;
    cli.err(`${e.message}\n`);
    return 1;
  }
  return 0;
}

const pull: Command = async (cli, argv) => {
  const { flags, args } = parseFlags(argv, [f('-a,--all-tags'), f('-q,--quiet'), f('--platform', 'string'), f('--disable-content-trust')], { interspersed: true });
  if (args.length !== 1) throw new UsageError('"pull" requires exactly 1 argument.');
  checkPlatform(flags.platform);
  const ref = parseRepoRef(args[0]!);
  if (flags['all-tags'] && (ref.tag || ref.digest)) throw new UsageError('tag can\'t be used with --all-tags/-a');
  if (!flags['all-tags'] && !ref.tag && !ref.digest) {
    ref.tag = 'latest';
    if (!flags.quiet) cli.out('Using default tag: latest\n');
  }
  const q = new URLSearchParams({ fromImage: familiarName(ref), tag: ref.digest ?? ref.tag ?? '' });
  const code = await streamed(cli, 'POST', `/images/create?${q}`, ref.domain, !!flags.quiet);
  // as the docker CLI, the reference pulled in full (also with -q, where it is the only output)
  if (code === 0) cli.out(`${fullName(ref)}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}\n`);
  return code;
};

const push: Command = async (cli, argv) => {
  const { flags, args } = parseFlags(argv, [f('-a,--all-tags'), f('-q,--quiet'), f('--platform', 'string'), f('--disable-content-trust')], { interspersed: true });
  if (args.length !== 1) throw new UsageError('"push" requires exactly 1 argument.');
  checkPlatform(flags.platform);
  const ref = parseRepoRef(args[0]!);
  if (ref.digest) throw new UsageError('cannot push a digest reference');
  if (flags['all-tags'] && ref.tag) throw new UsageError('tag can\'t be used with --all-tags/-a');
  if (!flags['all-tags'] && !ref.tag) {
    ref.tag = 'latest';
    if (!flags.quiet) cli.out('Using default tag: latest\n');
  }
  const q = new URLSearchParams({ tag: ref.tag ?? '' });
  const code = await streamed(cli, 'POST', `/images/${familiarName(ref)}/push?${q}`, ref.domain, !!flags.quiet);
  if (code === 0 && flags.quiet) cli.out(`${fullName(ref)}${ref.tag ? `:${ref.tag}` : ''}\n`);
  return code;
};

export const registryCommands: Record<string, Command> = { login, logout, pull, push };
