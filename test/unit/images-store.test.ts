// The image store on the filesystem (no namespaces): blobs verified while streaming, layers unpacked once
// with overlayfs whiteouts, the uncompressed tar reproduced from a gzip blob, push blobs made and
// remembered, images put atomically and their layers collected when the last image goes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import zlib from 'node:zlib';
import { Store } from '../../src/store/sqlite.ts';
import { ImageStore } from '../../src/images/store.ts';

const skip = process.getuid?.() !== 0 ? 'needs root (whiteouts are 0:0 devices, opaque dirs trusted.* xattrs)' : false;
const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

let tmp = '';
let db: Store;
let store: ImageStore;
let plain: Buffer; // a layer tar with a whiteout and an opaque dir
let gz: Buffer;

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'loom-imgstore-'));
  db = new Store(path.join(tmp, 'data'));
  store = new ImageStore(db, path.join(tmp, 'data/images'));
  const src = path.join(tmp, 'src');
  fs.mkdirSync(path.join(src, 'etc/opq'), { recursive: true });
  fs.writeFileSync(path.join(src, 'etc/hello'), 'hi\n');
  fs.writeFileSync(path.join(src, 'etc/.wh.gone'), '');
  fs.writeFileSync(path.join(src, 'etc/opq/.wh..wh..opq'), '');
  fs.writeFileSync(path.join(src, 'etc/opq/new'), 'n\n');
  plain = execFileSync('tar', ['-C', src, '--numeric-owner', '-cf', '-', '.']);
  gz = zlib.gzipSync(plain);
});

after(() => {
  db?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('ingestBlob: a digest mismatch stores nothing; a match is stored under its digest', { skip }, async () => {
  await assert.rejects(store.ingestBlob(Readable.from([Buffer.from('abc')]), sha('abd')), /digest mismatch/);
  assert.equal(store.hasBlob(sha('abc')), false);
  assert.deepEqual(fs.readdirSync(path.join(store.root, 'tmp')), []);
  const r = await store.ingestBlob(Readable.from([Buffer.from('abc')]), sha('abc'));
  assert.deepEqual(r, { digest: sha('abc'), size: 3 });
  assert.equal((await buffer(store.openBlob(sha('abc')))).toString(), 'abc');
});

test('ingestLayer: a gzip blob kept and unpacked once, whiteouts converted, both digests checked', { skip }, async () => {
  await assert.rejects(store.ingestLayer(Readable.from([gz]), { digest: sha('other') }), /digest mismatch/);
  await assert.rejects(store.ingestLayer(Readable.from([gz]), { diffId: sha('other') }), /diff ID mismatch/);
  assert.equal(store.hasLayer(sha(plain)), false);
  assert.equal(store.hasBlob(sha(gz)), false);
  assert.deepEqual(fs.readdirSync(path.join(store.root, 'tmp')), []);
  const l = await store.ingestLayer(Readable.from([gz]), { digest: sha(gz), diffId: sha(plain) });
  assert.equal(l.diffId, sha(plain));
  assert.deepEqual(l.blobs.map((b) => [b.digest, b.mediaType]), [[sha(gz), 'application/vnd.docker.image.rootfs.diff.tar.gzip']]);
  const dir = store.layerDir(l.diffId);
  assert.equal(fs.readFileSync(path.join(dir, 'etc/hello'), 'utf8'), 'hi\n');
  const wh = fs.lstatSync(path.join(dir, 'etc/gone'));
  assert.ok(wh.isCharacterDevice() && wh.rdev === 0);
  assert.ok(!fs.existsSync(path.join(dir, 'etc/.wh.gone')));
  assert.ok(!fs.existsSync(path.join(dir, 'etc/opq/.wh..wh..opq')));
  // a second copy of the same layer (plain this time) adds its blob, not a second tree
  const again = await store.ingestLayer(Readable.from([plain]));
  assert.equal(again.link, l.link);
  store.unpin([l.diffId]); // each ingest holds the layer until putImage or unpin
  assert.deepEqual(store.layer(l.diffId)!.blobs.map((b) => b.digest).sort(), [sha(gz), sha(plain)].sort());
  // the short link resolves to the tree
  assert.equal(fs.realpathSync(store.lowerDirsOfLayers([l.diffId])[0]!), fs.realpathSync(dir));
});

test('layerTar gives the diff ID\'s bytes back; pushBlob reuses a gzip blob or makes one and remembers it', { skip }, async () => {
  const diffId = sha(plain);
  assert.equal(sha(await buffer(store.layerTar(diffId))), diffId);
  assert.equal((await store.pushBlob(diffId)).digest, sha(gz));
  // a layer that came plain only: a gzip blob is made once
  const src = path.join(tmp, 'src2');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'f'), 'f\n');
  const t2 = execFileSync('tar', ['-C', src, '-cf', '-', '.']);
  await store.ingestLayer(Readable.from([t2]));
  const b = await store.pushBlob(sha(t2));
  assert.equal(b.mediaType, 'application/vnd.docker.image.rootfs.diff.tar.gzip');
  assert.equal(sha(zlib.gunzipSync(await buffer(store.openBlob(b.digest)))), sha(t2));
  assert.deepEqual(await store.pushBlob(sha(t2)), b);
});

test('putImage: config and layers checked, stored in one go; the last image takes its layers along', { skip }, async () => {
  const diffId = sha(plain);
  const cfg = JSON.stringify({ architecture: 'amd64', os: 'linux', created: '2026-01-01T00:00:00Z', config: { Env: ['A=1'] }, rootfs: { type: 'layers', diff_ids: [diffId] } });
  assert.throws(() => store.putImage(cfg, [{ diffId: sha('x') }], ['t:1']), /do not match/);
  const missing = JSON.stringify({ rootfs: { type: 'layers', diff_ids: [sha('nope')] } });
  assert.throws(() => store.putImage(missing, [{ diffId: sha('nope') }]), /not in the store/);
  const img = store.putImage(cfg, [{ diffId }], ['t:1', 'localhost:5000/t:2']);
  store.unpin([diffId]);
  assert.ok(store.hasLayer(diffId), 'an image lists it');
  assert.equal(img.id, sha(cfg));
  assert.deepEqual(store.refsOf(img.id).sort(), ['docker.io/library/t:1', 'localhost:5000/t:2']);
  assert.deepEqual(img.config.Env, ['A=1']);
  assert.deepEqual(store.layersForPush(img.id), [{ diffId, size: store.layer(diffId)!.size }]);
  assert.equal(store.configBytes(img.id).toString(), cfg);
  const link = store.layer(diffId)!.link;
  store.deleteImage(img.id);
  assert.equal(store.hasLayer(diffId), false);
  assert.ok(!fs.existsSync(path.join(store.root, 'l', link)));
  assert.equal(store.hasBlob(sha(gz)), false);
});

/** A tar made by Python's tarfile, which writes the hostile member names GNU tar would not. */
function pyTar(script: string): Buffer {
  return execFileSync('python3', ['-c', `import io,sys,tarfile
b=io.BytesIO(); t=tarfile.open(fileobj=b, mode='w', format=tarfile.PAX_FORMAT)
def f(name, data=b'x', **kw):
    i=tarfile.TarInfo(name); i.size=len(data); [setattr(i,k,v) for k,v in kw.items()]; t.addfile(i, io.BytesIO(data))
def l(name, target):
    i=tarfile.TarInfo(name); i.type=tarfile.SYMTYPE; i.linkname=target; t.addfile(i)
${script}
t.close(); sys.stdout.buffer.write(b.getvalue())`]);
}

test('hostile layers: `..` refused, absolute names made relative, nothing written through a symlink that points out', { skip }, async () => {
  const outside = path.join(tmp, 'outside');
  fs.mkdirSync(outside);
  const layers = () => fs.readdirSync(path.join(store.root, 'layers')).length;
  const n = layers();
  await assert.rejects(store.ingestLayer(Readable.from([pyTar("f('a/../../../escape')")])), /\.\./);
  await assert.rejects(store.ingestLayer(Readable.from([pyTar(`l('evil', ${JSON.stringify(outside)})\nf('evil/pwn')`)])));
  assert.deepEqual(fs.readdirSync(outside), []);
  assert.equal(layers(), n);
  assert.deepEqual(fs.readdirSync(path.join(store.root, 'tmp')), []);
  const abs = await store.ingestLayer(Readable.from([pyTar("f('/abs/file', b'in')")]));
  assert.equal(fs.readFileSync(path.join(store.layerDir(abs.diffId), 'abs/file'), 'utf8'), 'in');
  store.unpin([abs.diffId]); // no image lists it: it goes
  assert.equal(store.hasLayer(abs.diffId), false);
});
