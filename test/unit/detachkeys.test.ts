import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EscapeWatcher, parseDetachKeys } from '../../src/cli/detachkeys.ts';

test('detach keys: Docker\'s syntax, and its message for bad keys', () => {
  assert.deepEqual(parseDetachKeys('ctrl-p,ctrl-q'), [16, 17]);
  assert.deepEqual(parseDetachKeys('ctrl-@,ctrl-[,ctrl-_'), [0, 27, 31]);
  assert.deepEqual(parseDetachKeys('a,ctrl-z'), [97, 26]);
  assert.throws(() => parseDetachKeys('ctrl-1'), /Invalid detach keys \(ctrl-1\) provided/);
  assert.throws(() => parseDetachKeys('alt-x'), /Invalid detach keys \(alt-x\) provided/);
});

test('escape watcher: passes input on, holds a partial sequence, detaches on the whole one (across chunks)', () => {
  const w = new EscapeWatcher([16, 17]);
  assert.deepEqual(w.feed(Buffer.from('ls\r')), { pass: Buffer.from('ls\r'), detach: false });
  assert.deepEqual(w.feed(Buffer.from([0x61, 16])), { pass: Buffer.from([0x61]), detach: false });
  assert.deepEqual(w.feed(Buffer.from([0x62])), { pass: Buffer.from([16, 0x62]), detach: false }, 'a broken sequence is passed on');
  assert.deepEqual(w.feed(Buffer.from([16, 16])), { pass: Buffer.from([16]), detach: false }, 'a repeated first key restarts the match');
  assert.deepEqual(w.feed(Buffer.from([17, 0x63])), { pass: Buffer.from([]), detach: true });
});
