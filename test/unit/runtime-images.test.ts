// Image import on the filesystem only (no namespaces, no root needed): every compression recognised by
// its magic bytes, the digest being the uncompressed tar's sha256, the unpacked size, and failures that
// leave nothing behind.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { sniffCompression, treeSize, unpackImage } from '../../src/runtime/images.ts';

const has = (tool: string) => spawnSync(tool, ['--version'], { stdio: 'ignore' }).status === 0;

describe('unpackImage', () => {
  let tmp = '';
  let tarPath = '';
  let want = '';

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'loomt-img-'));
    const src = path.join(tmp, 'src');
    fs.mkdirSync(path.join(src, 'etc/deep/er'), { recursive: true });
    fs.mkdirSync(path.join(src, 'bin'));
    fs.writeFileSync(path.join(src, 'etc/hostname'), 'image\n');
    fs.writeFileSync(path.join(src, 'etc/deep/er/big'), Buffer.alloc(300_000, 7));
    fs.writeFileSync(path.join(src, 'bin/tool'), '#!/bin/sh\necho tool\n', { mode: 0o755 });
    fs.linkSync(path.join(src, 'bin/tool'), path.join(src, 'bin/tool-hardlink'));
    fs.symlinkSync('tool', path.join(src, 'bin/alias'));
    fs.symlinkSync('/etc/hostname', path.join(src, 'abs-link'));
    fs.writeFileSync(path.join(src, 'empty'), '');
    tarPath = path.join(tmp, 'img.tar');
    execFileSync('tar', ['-C', src, '-cf', tarPath, '.']);
    want = createHash('sha256').update(fs.readFileSync(tarPath)).digest('hex');
    for (const [tool, ext] of [['gzip', 'gz'], ['bzip2', 'bz2'], ['xz', 'xz'], ['zstd', 'zst']] as const) {
      if (has(tool)) fs.writeFileSync(`${tarPath}.${ext}`, execFileSync(tool, ['-c', tarPath], { maxBuffer: 64 << 20 }));
    }
  });

  after(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('sniffCompression', () => {
    assert.equal(sniffCompression(Buffer.from([0x1f, 0x8b, 8, 0])), 'gzip');
    assert.equal(sniffCompression(Buffer.from('BZh91AY')), 'bzip2');
    assert.equal(sniffCompression(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])), 'xz');
    assert.equal(sniffCompression(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])), 'zstd');
    assert.equal(sniffCompression(Buffer.from('./etc/\0\0\0')), 'none');
    assert.equal(sniffCompression(Buffer.from([0x1f])), 'none');
  });

  for (const ext of ['', '.gz', '.bz2', '.xz', '.zst']) {
    test(`unpacks ${ext || 'a plain tar'}: digest of the uncompressed tar, size, content`, async (t) => {
      const file = tarPath + ext;
      if (!fs.existsSync(file)) return t.skip('compressor not installed');
      const dest = path.join(tmp, `out${ext || '.tar'}`, 'rootfs');
      // In small chunks, as from a network socket: the magic bytes may straddle chunks.
      const data = fs.readFileSync(file);
      const chunks: Buffer[] = [];
      for (let i = 0, n = 1; i < data.length; i += n, n = ((n * 7 + 3) % 5000) + 1) chunks.push(data.subarray(i, i + n));
      assert.equal(Buffer.concat(chunks).compare(data), 0);
      const r = await unpackImage(Readable.from(chunks), dest);
      assert.equal(r.digest, want);
      // hard link counted once, symlinks by their target's length, directories not at all
      assert.equal(r.size, 6 + 300_000 + 20 + 4 + 13);
      assert.equal(r.size, await treeSize(dest));
      assert.equal(fs.readFileSync(path.join(dest, 'etc/hostname'), 'utf8'), 'image\n');
      assert.equal(fs.statSync(path.join(dest, 'bin/tool')).mode & 0o777, 0o755);
      assert.equal(fs.statSync(path.join(dest, 'bin/tool')).ino, fs.statSync(path.join(dest, 'bin/tool-hardlink')).ino);
      assert.equal(fs.readlinkSync(path.join(dest, 'bin/alias')), 'tool');
      assert.equal(fs.readlinkSync(path.join(dest, 'abs-link')), '/etc/hostname');
    });
  }

  test('a stream that is not a tar, a truncated one, an empty one, a failing one: rejected, nothing left', async () => {
    const cases: [string, () => NodeJS.ReadableStream, RegExp][] = [
      ['garbage', () => Readable.from([Buffer.from('this is not an archive at all, just some text that goes on '.repeat(40))]), /tar/i],
      ['truncated gzip', () => Readable.from([fs.readFileSync(`${tarPath}.gz`).subarray(0, fs.statSync(`${tarPath}.gz`).size >> 1)]), /gzip|unexpected end/i],
      ['empty', () => Readable.from([]), /empty input/],
      ['input error', () => {
        const p = new PassThrough();
        p.write(fs.readFileSync(tarPath).subarray(0, 10240));
        setTimeout(() => p.destroy(new Error('connection reset')), 20);
        return p;
      }, /connection reset/],
    ];
    for (const [name, input, re] of cases) {
      if (name === 'truncated gzip' && !fs.existsSync(`${tarPath}.gz`)) continue;
      const dest = path.join(tmp, `bad-${name.replace(/ /g, '-')}`, 'rootfs');
      await assert.rejects(unpackImage(input(), dest), re, name);
      assert.equal(fs.existsSync(dest), false, `${name}: nothing left at ${dest}`);
    }
  });

  test('refuses a destination that already has content, and leaves it alone', async () => {
    const dest = path.join(tmp, 'occupied');
    fs.mkdirSync(dest);
    fs.writeFileSync(path.join(dest, 'keep'), 'x');
    await assert.rejects(unpackImage(fs.createReadStream(tarPath), dest), /not empty/);
    assert.equal(fs.readFileSync(path.join(dest, 'keep'), 'utf8'), 'x');
    // An existing empty directory is fine.
    const empty = path.join(tmp, 'empty-dest');
    fs.mkdirSync(empty);
    assert.equal((await unpackImage(fs.createReadStream(tarPath), empty)).digest, want);
  });
});
