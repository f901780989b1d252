// loom's command line: Docker's syntax, a client of the daemon's Engine API (plus `loom daemon`).
import { Client, ApiError } from './client.ts';
import { UsageError } from './flags.ts';
// Each command's module is loaded when that command runs (commands.ts): a CLI call's start-up is mostly
// module loading, so `ps` loads the container commands and nothing of images, build or cp.
import { commands, imageSubcommands, containerPrune, imagePrune, systemPrune, systemDf, systemReconcile, imagePull, imagePush } from './commands.ts';

// as bin/loom's --stack-trace-limit=30 for the sources (the bundle runs without V8 flags: see bin/loom)
Error.stackTraceLimit = Math.max(Error.stackTraceLimit, 30);

/** Set to true by scripts/build-cli in the bundle (.cache/cli/loom.cjs), which does not hold the daemon. */
declare const LOOM_BUNDLE: boolean | undefined;

export interface Cli {
  client: Client;
  out: (s: string) => void;
  err: (s: string) => void;
}

export type Command = (cli: Cli, argv: string[]) => Promise<number>;

const USAGE = `Usage:  loom [OPTIONS] COMMAND

Container networking for Linux, with Docker's commands.

Options:
  -H, --host string   Daemon socket to connect to (default unix:///run/loom/loom.sock; env LOOM_HOST)

Commands:
  daemon      Run the loom daemon
  run         Create and run a new container from an image
  create      Create a new container
  start       Start one or more stopped containers
  attach      Attach local standard input, output, and error streams to a running container
  stop        Stop one or more running containers
  restart     Restart one or more containers
  kill        Kill one or more running containers
  rm          Remove one or more containers
  ps          List containers
  logs        Fetch the logs of a container
  exec        Execute a command in a running container
  inspect     Return low-level information on loom objects
  wait        Block until one or more containers stop, then print their exit codes
  pause       Pause all processes within one or more containers
  unpause     Unpause all processes within one or more containers
  rename      Rename a container
  update      Update configuration of one or more containers
  port        List port mappings or a specific mapping for the container
  top         Display the running processes of a container
  build       Build an image from a Dockerfile (the classic builder)
  cp          Copy files/folders between a container and the local filesystem
  export      Export a container's filesystem as a tar archive
  diff        Inspect changes to files or directories on a container's filesystem
  commit      Create a new image from a container's changes
  import      Import the contents from a tarball to create a filesystem image
  images      List images
  rmi         Remove one or more images
  tag         Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
  history     Show the history of an image
  save        Save one or more images to a tar archive (streamed to STDOUT by default)
  load        Load an image from a tar archive or STDIN
  pull        Download an image from a registry
  push        Upload an image to a registry
  login       Log in to a registry
  logout      Log out from a registry
  container   Manage containers (ls, rm, prune, ...)
  image       Manage images (ls, inspect, history, tag, rm, prune, save, load, import)
  network     Manage networks
  explain     Show the ip/nft/sysctl commands an operation amounts to (run, create, connect, network create)
  volume      Manage volumes
  node        List the cluster's hosts (with --cluster-store)
  system      Manage loom (df, prune, reconcile)
  events      Get real time events from the server
  version     Show the loom version information
  info        Display system-wide information
`;

function socketFrom(h: string): string {
  if (h.startsWith('unix://')) return h.slice('unix://'.length);
  if (h.startsWith('/')) return h;
  throw new UsageError(`unsupported host ${h}: loom listens on a unix socket (unix:///path)`);
}

async function main(argv: string[]): Promise<number> {
  let host = process.env.LOOM_HOST || 'unix:///run/loom/loom.sock';
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-H' || a === '--host') host = argv[++i] ?? '';
    else if (a.startsWith('--host=')) host = a.slice(7);
    else if (a === '-D' || a === '--debug') continue;
    else if (a === '--log-level') i++;
    else if (a === '-v' || a === '--version') {
      process.stdout.write('loom version 0.1.0\n');
      return 0;
    } else break;
  }
  const cmd = argv[i];
  const rest = argv.slice(i + 1);
  if (!cmd || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    process.stdout.write(USAGE);
    return cmd ? 0 : 0;
  }
  if (cmd === 'daemon') {
    // the bundle leaves the daemon out: it runs from the sources (bin/loom starts it so anyway)
    const entry = typeof LOOM_BUNDLE !== 'undefined' && LOOM_BUNDLE ? (await import('node:url')).pathToFileURL(`${__dirname}/../../src/cli/daemon-cmd.ts`).href : './daemon-cmd.ts';
    const { daemonCommand } = (await import(entry)) as typeof import('./daemon-cmd.ts');
    return daemonCommand(rest, host);
  }
  const cli: Cli = {
    client: new Client(socketFrom(host)),
    out: (s) => process.stdout.write(s),
    err: (s) => process.stderr.write(s),
  };
  const table = commands;
  // `loom container ls`, `loom image ls` and friends, as docker has them
  if (cmd === 'system' && rest[0] === 'prune') return (await systemPrune())(cli, rest.slice(1));
  if (cmd === 'system' && rest[0] === 'reconcile') return (await systemReconcile())(cli, rest.slice(1));
  if (cmd === 'system' && rest[0] === 'df') return (await systemDf())(cli, rest.slice(1));
  if ((cmd === 'container' || cmd === 'image') && rest[0] === 'prune') return (await (cmd === 'container' ? containerPrune : imagePrune)())(cli, rest.slice(1));
  if (cmd === 'image' && rest[0] && Object.hasOwn(imageSubcommands, rest[0])) return (await imageSubcommands[rest[0]]!())(cli, rest.slice(1));
  if (cmd === 'image' && (rest[0] === 'pull' || rest[0] === 'push')) return (await (rest[0] === 'pull' ? imagePull : imagePush)())(cli, rest.slice(1));
  if (cmd === 'container' || cmd === 'image') {
    const sub = rest[0];
    const alias: Record<string, string> = { ls: cmd === 'container' ? 'ps' : 'images', list: cmd === 'container' ? 'ps' : 'images', rm: cmd === 'container' ? 'rm' : 'rmi', remove: cmd === 'container' ? 'rm' : 'rmi' };
    const target = sub ? (Object.hasOwn(alias, sub) ? alias[sub]! : sub) : undefined;
    if (!target || !Object.hasOwn(table, target)) {
      process.stderr.write(`loom: '${cmd} ${sub ?? ''}' is not a loom command.\n`);
      return 1;
    }
    return (await table[target]!())(cli, rest.slice(1));
  }
  if (!Object.hasOwn(table, cmd)) {
    process.stderr.write(`loom: unknown command: loom ${cmd}\n\nRun 'loom --help' for more information\n`);
    return 1;
  }
  return (await table[cmd]!())(cli, rest);
}

// `loom ps | head`: a reader that goes away ends the command quietly, as a Go program's SIGPIPE does
for (const out of [process.stdout, process.stderr]) {
  out.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    exitWhenFlushed();
  },
  (e) => {
    if (e instanceof UsageError) {
      process.stderr.write(`loom: ${e.message}\n\nRun 'loom --help' for more information\n`);
      process.exitCode = 125;
    } else if (e instanceof ApiError) {
      process.stderr.write(e.status === 0 ? `${e.message}\n` : `Error response from daemon: ${e.message}\n`);
      process.exitCode = 1;
    } else {
      process.stderr.write(`loom: ${(e as Error)?.stack ?? e}\n`);
      process.exitCode = 1;
    }
    exitWhenFlushed();
  },
);

/**
 * The command is over: the process ends once what it wrote has gone out, as a Go CLI ends when its main
 * returns, whatever handles are still open (a hijacked socket or stdin after an error, a wait request).
 */
function exitWhenFlushed(): void {
  process.stdout.write('', () => process.stderr.write('', () => process.exit()));
}
