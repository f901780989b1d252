// Size limits of container logs (runtime/logtrim.ts): the head of a log file is freed by punching a hole,
// offsets stay valid, the kept part starts at a line, and the time index follows. Real files in a temp dir.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { liveStart, parseLogPolicy, readLogPolicy, trimLog, writeLogPolicy } from '../../src/runtime/logtrim.ts';
import { LogClock, readIndex, stampedLines } from '../../src/runtime/logclock.ts';

test('max-size and max-file as json-file reads them', () => {
  assert.deepEqual(parseLogPolicy({ 'max-size': '10k', 'max-file': '3' }), { maxSize: 10_000, maxFile: 3 });
  assert.deepEqual(parseLogPolicy({ 'max-size': '1m' }), { maxSize: 1_000_000, maxFile: 1 });
  assert.equal(parseLogPolicy({}), null);
  assert.throws(() => parseLogPolicy({ 'max-size': '-1' }), /invalid size/);
  assert.throws(() => parseLogPolicy({ 'max-file': 'x' }), /strconv.Atoi: parsing "x": invalid syntax/);
});

test('a log over max-size × max-file keeps the last (max-file − 1) × max-size bytes from a line start', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loomt-logtrim-'));
  try {
    const file = path.join(dir, 'stdout.log');
    const lines = Array.from({ length: 2000 }, (_, i) => `line ${String(i).padStart(5, '0')} ${'x'.repeat(40)}\n`);
    fs.writeFileSync(file, lines.join(''));
    const size = fs.statSync(file).size;
    assert.equal(trimLog(file, size, { maxSize: 10_000, maxFile: 11 }), null); // under the limit
    const start = trimLog(file, size, { maxSize: 10_000, maxFile: 3 })!;
    assert.ok(start >= size - 20_000 && start < size - 20_000 + 60, `start ${start}`);
    assert.equal(liveStart(file), start);
    assert.equal(fs.statSync(file).size, size); // offsets stay valid
    assert.ok(fs.statSync(file).blocks * 512 < 40_000, `blocks ${fs.statSync(file).blocks}`);
    const kept = stampedLines(file, 'stdout', 0).lines.map((l) => l.data.toString());
    assert.equal(kept.at(-1), lines.at(-1));
    assert.equal(kept.join(''), lines.join('').slice(start));
    assert.match(kept[0]!, /^line \d{5} x+\n$/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the clock trims as output grows and drops index records of freed output', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loomt-logtrim-'));
  const clock = new LogClock();
  try {
    writeLogPolicy(dir, { maxSize: 1000, maxFile: 2 });
    assert.deepEqual(readLogPolicy(dir), { maxSize: 1000, maxFile: 2 });
    const file = path.join(dir, 'stdout.log');
    fs.writeFileSync(file, '');
    clock.track(dir);
    let all = '';
    for (let i = 0; i < 200; i++) {
      const l = `${String(i).padStart(4, '0')} ${'y'.repeat(20)}\n`;
      all += l;
      fs.appendFileSync(file, l);
      clock.sampleNow(dir);
      assert.ok(fs.statSync(file).size - liveStart(file) <= 2000 + l.length);
    }
    const start = liveStart(file);
    assert.ok(start > 0);
    assert.ok(readIndex(file).every((r) => r.size > start));
    assert.equal(stampedLines(file, 'stdout', 0).lines.map((l) => l.data.toString()).join(''), all.slice(start));
  } finally {
    clock.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
