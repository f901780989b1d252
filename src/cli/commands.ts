// Where each command lives, so that a `bin/loom` call loads only the module of the command it runs (and
// what that module imports): `ps` or `version` does not pay for the image, build and cp code, nor for
// koffi's native module that cp's layer code loads. test/unit/cli-commands.test.ts checks this table
// against the modules' own command tables.
import type { Command } from './main.ts';

export type Loader = () => Promise<Command>;

const from = <M>(load: () => Promise<M>, pick: (m: M) => Command | undefined, what: string): Loader => async () => {
  const c = pick(await load());
  if (!c) throw new Error(`loom: internal error: no command ${what}`);
  return c;
};

export const CONTAINER = ['run', 'create', 'start', 'attach', 'stop', 'restart', 'kill', 'rm', 'ps', 'logs', 'exec', 'inspect', 'wait', 'pause', 'unpause', 'port', 'rename', 'update', 'top'] as const;
export const SYSTEM = ['version', 'info', 'events'] as const;
export const IMAGE = ['import', 'images', 'rmi', 'tag', 'history', 'save', 'load'] as const;
export const IMAGE_SUB = ['ls', 'list', 'rm', 'remove', 'inspect', 'import', 'history', 'tag', 'save', 'load'] as const;
export const REGISTRY = ['login', 'logout', 'pull', 'push'] as const;
export const CP = { cp: 'cp', export: 'exportCmd', diff: 'diff', commit: 'commit' } as const;

const container = (n: string) => from(() => import('./container.ts'), (m) => m.containerCommands[n], n);
const registry = (n: string) => from(() => import('./registry.ts'), (m) => m.registryCommands[n], n);

/** The top-level commands (`loom NAME ...`). */
export const commands: Record<string, Loader> = {
  ...Object.fromEntries(CONTAINER.map((n) => [n, container(n)])),
  ...Object.fromEntries(SYSTEM.map((n) => [n, from(() => import('./system.ts'), (m) => m.systemCommands[n], n)])),
  ...Object.fromEntries(IMAGE.map((n) => [n, from(() => import('./image.ts'), (m) => m.imageCommands[n], n)])),
  ...Object.fromEntries(REGISTRY.map((n) => [n, registry(n)])),
  ...Object.fromEntries(Object.entries(CP).map(([n, e]) => [n, from(() => import('./cp.ts'), (m) => m[e], n)])),
  network: from(() => import('./network.ts'), (m) => m.networkCommand, 'network'),
  volume: from(() => import('./volume.ts'), (m) => m.volumeCommand, 'volume'),
  build: from(() => import('./build.ts'), (m) => m.build, 'build'),
  node: from(() => import('./node.ts'), (m) => m.nodeCommand, 'node'),
  explain: from(() => import('./explain.ts'), (m) => m.explainCommand, 'explain'),
};

/** `loom image SUB ...` beyond the aliases of top-level commands. */
export const imageSubcommands: Record<string, Loader> = Object.fromEntries(IMAGE_SUB.map((n) => [n, from(() => import('./image.ts'), (m) => m.imageSubcommands[n], `image ${n}`)]));

export const systemPrune = from(() => import('./prune.ts'), (m) => m.systemPrune, 'system prune');
export const containerPrune = from(() => import('./prune.ts'), (m) => m.containerPrune, 'container prune');
export const imagePrune = from(() => import('./prune.ts'), (m) => m.imagePrune, 'image prune');
export const systemReconcile = from(() => import('./reconcile.ts'), (m) => m.systemReconcile, 'system reconcile');
export const systemDf = from(() => import('./volume.ts'), (m) => m.systemDf, 'system df');
export const imagePull = registry('pull');
export const imagePush = registry('push');
