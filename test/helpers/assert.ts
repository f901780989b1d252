// Assertions on commands run by the end-to-end tests (bin/loom, the docker CLI, commands in a sandbox).
import assert from 'node:assert/strict';
import type { Result } from './sandbox.ts';

/** A command that must succeed: its trimmed stdout; on failure the message carries its output. */
export async function ok(p: Promise<Result>, what = 'command'): Promise<string> {
  const r = await p;
  assert.equal(r.code, 0, `${what} failed (${r.code}): ${r.stderr}${r.stdout}`);
  return r.stdout.trim();
}

/** A command that must fail with a message matching `re` (in stderr or stdout). */
export async function fails(p: Promise<Result>, re: RegExp, what = 'command'): Promise<Result> {
  const r = await p;
  assert.notEqual(r.code, 0, `${what} should have failed: ${r.stdout}`);
  assert.match(r.stderr + r.stdout, re, `${what}: unexpected error`);
  return r;
}
