// The CLI's lazy command table (src/cli/commands.ts) names every command its modules define, and loads
// the right one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { commands, imageSubcommands, CONTAINER, SYSTEM, IMAGE, IMAGE_SUB, REGISTRY, CP } from '../../src/cli/commands.ts';
import { containerCommands } from '../../src/cli/container.ts';
import { systemCommands } from '../../src/cli/system.ts';
import { imageCommands, imageSubcommands as imageSubs } from '../../src/cli/image.ts';
import { registryCommands } from '../../src/cli/registry.ts';
import * as cp from '../../src/cli/cp.ts';

const sorted = (xs: readonly string[]) => [...xs].sort();

test('the lazy table lists exactly the commands each module defines', () => {
  assert.deepEqual(sorted(CONTAINER), sorted(Object.keys(containerCommands)));
  assert.deepEqual(sorted(SYSTEM), sorted(Object.keys(systemCommands)));
  assert.deepEqual(sorted(IMAGE), sorted(Object.keys(imageCommands)));
  assert.deepEqual(sorted(IMAGE_SUB), sorted(Object.keys(imageSubs)));
  assert.deepEqual(sorted(REGISTRY), sorted(Object.keys(registryCommands)));
  for (const e of Object.values(CP)) assert.equal(typeof (cp as Record<string, unknown>)[e], 'function', e);
});

test('each loader resolves to the module\'s own command', async () => {
  assert.equal(await commands.ps!(), containerCommands.ps);
  assert.equal(await commands.version!(), systemCommands.version);
  assert.equal(await commands.rmi!(), imageCommands.rmi);
  assert.equal(await commands.export!(), cp.exportCmd);
  assert.equal(await imageSubcommands.ls!(), imageSubs.ls);
  for (const [n, load] of Object.entries(commands)) assert.equal(typeof (await load()), 'function', n);
});
