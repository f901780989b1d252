// Paths resolved inside a root (moby's FollowSymlinkInScope), layer tars packed and applied (whiteouts,
// no writes through links), COPY's Go globs — on directories in a temporary directory.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import { resolveInScope, insideRoot } from '../../src/images/archive/scope.ts';
import { applyLayer, packTree, cleanMemberName } from '../../src/images/archive/layer.ts';
import { globRegex, stageCopy, treeChecksum } from '../../src/images/build/copy.ts';
import { resolvePath, statPath, goFileMode } from '../../src/images/archive/container-fs.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'loom-arch-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function tree(name: string, files: Record<string, string | { link: string } | null>): string {
  const root = path.join(tmp, name);
  fs.mkdirSync(root, { recursive: true });
  for (const [p, v] of Object.entries(files)) {
    const abs = path.join(root, p);
    fs.mkdirSync(path.dirname(abs), { recursive: true });
    if (v === null) fs.mkdirSync(abs, { recursive: true });
    else if (typeof v === 'string') fs.writeFileSync(abs, v);
    else fs.symlinkSync(v.link, abs);
  }
  return root;
}

async function tarOf(entries: { name: string; type?: 'file' | 'symlink' | 'link' | 'directory'; linkname?: string; body?: string }[]): Promise<Readable> {
  const pack = tarStream.pack();
  for (const e of entries) pack.entry({ name: e.name, type: e.type ?? 'file', linkname: e.linkname, mode: e.type === 'directory' ? 0o755 : 0o644 }, e.body ?? '');
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack as unknown as AsyncIterable<Buffer>) chunks.push(c);
  return Readable.from([Buffer.concat(chunks)]);
}

async function names(r: Readable): Promise<string[]> {
  const ex = tarStream.extract();
  const out: string[] = [];
  r.pipe(ex as unknown as NodeJS.WritableStream);
  for await (const e of ex) {
    out.push(e.header.type === 'symlink' ? `${e.header.name} -> ${e.header.linkname}` : e.header.name);
    e.resume();
  }
  return out;
}

test('symlinks resolve inside the root: absolute targets, .. stops at the root, loops end', () => {
  const root = tree('scope', { 'etc/passwd': 'x', 'a/abs': { link: '/etc' }, 'a/rel': { link: '../../../../etc' }, 'loop1': { link: 'loop2' }, 'loop2': { link: 'loop1' }, 'a/file': { link: 'passwd-missing' } });
  assert.equal(resolveInScope(root, '/a/abs/passwd'), path.join(root, 'etc/passwd'));
  assert.equal(resolveInScope(root, 'a/rel/passwd'), path.join(root, 'etc/passwd'));
  assert.equal(resolveInScope(root, '/../../..'), root);
  assert.equal(resolveInScope(root, '/a/abs', false), path.join(root, 'a/abs'));
  assert.equal(resolveInScope(root, '/new/dir/x'), path.join(root, 'new/dir/x'));
  assert.throws(() => resolveInScope(root, '/loop1/x'), /too many links/);
  assert.equal(insideRoot(root, path.join(root, 'etc')), '/etc');
  assert.throws(() => insideRoot(root, '/etc'), /outside/);
});

test('moby ResolvePath/StatPath: a trailing / follows the last link; Go file modes', () => {
  const root = tree('stat', { 'etc/passwd': 'x', 'l': { link: '/etc' } });
  const a = resolvePath(root, '/l');
  assert.equal(a.resolved, path.join(root, 'l'));
  const st = statPath(root, a.resolved, a.abs);
  assert.deepEqual([st.name, st.linkTarget, st.mode >>> 0], ['l', '/etc', (2 ** 27 + 0o777) >>> 0]);
  assert.equal(resolvePath(root, '/l/').resolved, path.join(root, 'etc'));
  assert.equal(resolvePath(root, 'l/.').abs, '/l/.');
  assert.equal(goFileMode(fs.lstatSync(path.join(root, 'etc'))), 2 ** 31 + (fs.lstatSync(path.join(root, 'etc')).mode & 0o777));
});

test('member names: no absolute paths, no way out', () => {
  assert.equal(cleanMemberName('./a/b/'), 'a/b');
  assert.equal(cleanMemberName('/etc/passwd'), 'etc/passwd');
  assert.equal(cleanMemberName('a/../../x'), null);
  assert.equal(cleanMemberName('.'), null);
});

test('a layer: whiteouts delete, opaque directories empty, files replace (shared inodes untouched)', async () => {
  const root = tree('apply', { 'keep': 'k', 'gone': 'g', 'dir/a': 'a', 'dir/b': 'b', 'opq/old': 'o' });
  const shared = path.join(tmp, 'shared-keep');
  fs.linkSync(path.join(root, 'keep'), shared);
  await applyLayer(await tarOf([
    { name: '.wh.gone' }, { name: 'dir/.wh.a' }, { name: 'opq/', type: 'directory' }, { name: 'opq/.wh..wh..opq' }, { name: 'opq/new', body: 'n' },
    { name: 'keep', body: 'changed' }, { name: 'sub/deep/f', body: 'f' },
  ]), root);
  assert.deepEqual(fs.readdirSync(root).sort(), ['dir', 'keep', 'opq', 'sub']);
  assert.deepEqual(fs.readdirSync(path.join(root, 'dir')), ['b']);
  assert.deepEqual(fs.readdirSync(path.join(root, 'opq')), ['new']);
  assert.equal(fs.readFileSync(path.join(root, 'keep'), 'utf8'), 'changed');
  assert.equal(fs.readFileSync(shared, 'utf8'), 'k', 'the other link of the replaced file keeps its content');
});

test('applying never writes through a link, and a hard link cannot reach outside', async () => {
  const outside = tree('outside', { 'secret': 's' });
  const root = tree('victim', { 'l': { link: outside } });
  await assert.rejects(applyLayer(await tarOf([{ name: 'l/pwned', body: 'x' }]), root), /is a symlink/);
  assert.equal(fs.existsSync(path.join(outside, 'pwned')), false);
  await assert.rejects(applyLayer(await tarOf([{ name: 'h', type: 'link', linkname: 'l/secret' }]), root));
  assert.equal(fs.statSync(path.join(outside, 'secret')).nlink, 1);
  await assert.rejects(applyLayer(await tarOf([{ name: '../escaped', body: 'x' }]), root), /outside of the destination/);
  assert.equal(fs.existsSync(path.join(tmp, 'escaped')), false);
  // as a plain archive (cp): `.wh.` names are files like any other
  await applyLayer(await tarOf([{ name: '.wh.x', body: '' }]), root, { whiteouts: false });
  assert.ok(fs.existsSync(path.join(root, '.wh.x')));
});

test('packing an overlay upper dir: opaque xattr and whiteout devices; packing a subtree under a name', async () => {
  const root = tree('pack', { 'a/b': 'b', 'c': { link: 'a/b' } });
  assert.deepEqual(await names(packTree(root)), ['a/', 'a/b', 'c -> a/b']);
  assert.deepEqual(await names(packTree(root, { prefix: 'x/', rootEntry: 'x' })), ['x/', 'x/a/', 'x/a/b', 'x/c -> a/b']);
  assert.deepEqual(await names(packTree(root, { only: 'a', rename: 'renamed' })), ['renamed/', 'renamed/b']);
  assert.deepEqual(await names(packTree(root, { skipDirHeader: (r) => r === 'a', exclude: (r) => r === 'c' })), ['a/b']);
  if (process.getuid?.() === 0) {
    // the kernel's whiteout: a 0:0 character device
    const { execFileSync } = await import('node:child_process');
    execFileSync('mknod', [path.join(root, 'gone'), 'c', '0', '0']);
    assert.deepEqual(await names(packTree(root, { overlay: true })), ['a/', 'a/b', 'c -> a/b', '.wh.gone']);
  }
});

test('COPY globs are Go filepath.Match patterns', () => {
  assert.ok(globRegex('*.txt').test('a.txt'));
  assert.ok(!globRegex('*.txt').test('d/a.txt'));
  assert.ok(globRegex('file?.[ch]').test('file1.c'));
  assert.ok(!globRegex('file?.[ch]').test('file12.c'));
  assert.ok(globRegex('[^a]x').test('bx'));
  assert.ok(globRegex('a\\*').test('a*'));
});

test('COPY staging: files into directories, a directory\'s contents, globs, --chmod, checksums follow content', async () => {
  const ctx = tree('ctx', { 'a.txt': 'a', 'b.txt': 'b', 'dir/x': 'x', 'dir/sub/y': 'y' });
  const stage = async (sources: string[], dest: string, extra: { chmod?: string } = {}) => {
    const staging = fs.mkdtempSync(path.join(tmp, 'st-'));
    const r = await stageCopy({ cmd: 'COPY', srcRoot: ctx, fromContext: true, sources, dest, imageRoot: null, staging, ...extra });
    const files: string[] = [];
    const walk = (d: string) => {
      for (const n of fs.readdirSync(path.join(staging, d)).sort()) {
        const rel = d ? `${d}/${n}` : n;
        if (fs.statSync(path.join(staging, rel)).isDirectory()) walk(rel);
        else files.push(rel);
      }
    };
    walk('');
    return { ...r, files, staging };
  };
  assert.deepEqual((await stage(['*.txt'], '/app/')).files, ['app/a.txt', 'app/b.txt']);
  assert.deepEqual((await stage(['a.txt'], '/app/renamed')).files, ['app/renamed']);
  assert.deepEqual((await stage(['dir'], '/d')).files, ['d/sub/y', 'd/x']);
  const m = await stage(['a.txt'], '/m', { chmod: '0751' });
  assert.equal(fs.statSync(path.join(m.staging, 'm')).mode & 0o777, 0o751);
  const before = (await stage(['dir'], '/d')).checksum;
  fs.writeFileSync(path.join(ctx, 'dir/x'), 'changed');
  assert.notEqual((await stage(['dir'], '/d')).checksum, before);
  await assert.rejects(stage(['nomatch*'], '/x'), /no source files were specified/);
  await assert.rejects(stage(['a.txt', 'b.txt'], '/x'), /must be a directory and end with a \//);
  await assert.rejects(stage(['../etc'], '/x'), /Forbidden path outside the build context/);
  assert.equal(typeof treeChecksum(ctx), 'string');
});
