// `loom cp`, `export`, `diff`, `commit`: a container's files through the archive API, with the docker CLI's
// rules for where a copy lands (into an existing directory under its own name, `src/.` for a directory's
// contents, a new name when the destination does not exist) and its messages.
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import tarStream from 'tar-stream';
import type { Command, Cli } from './main.ts';
import { ApiError } from './client.ts';
import { f, parseFlags, UsageError } from './flags.ts';
import { applyLayer, packTree } from '../images/archive/layer.ts';

interface PathStat { name: string; size: number; mode: number; mtime: string; linkTarget: string }

const GO_DIR = 2 ** 31;

function splitCpArg(a: string): { container?: string; path: string } {
  if (a === '-') return { path: a };
  // a local path with a colon needs ./ (as with docker): an absolute or ./ path is always local
  if (a.startsWith('/') || a.startsWith('.')) return { path: a };
  const i = a.indexOf(':');
  if (i <= 0) return { path: a };
  return { container: a.slice(0, i), path: a.slice(i + 1) };
}

async function statIn(cli: Cli, ctr: string, p: string): Promise<PathStat | null> {
  try {
    const r = await cli.client.request('HEAD', `/containers/${encodeURIComponent(ctr)}/archive?path=${encodeURIComponent(p)}`);
    const h = r.res.headers['x-docker-container-path-stat'];
    return h ? JSON.parse(Buffer.from(String(h), 'base64').toString('utf8')) as PathStat : null;
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      // a missing container is an error; a missing path is "does not exist"
      await cli.client.request('GET', `/containers/${encodeURIComponent(ctr)}/json`);
      return null;
    }
    throw e;
  }
}

/** Renames the archive's entries: `from` (and what is under it) becomes `to` ('' drops the prefix). */
function rebase(input: NodeJS.ReadableStream, from: string, to: string): Readable {
  const ex = tarStream.extract();
  const pack = tarStream.pack();
  (async () => {
    for await (const entry of ex) {
      const h = { ...entry.header };
      const name = h.name.replace(/\/$/, '');
      let rel: string | null = null;
      if (from === '.' ) rel = name === '.' ? '' : name.replace(/^\.\//, '');
      else if (name === from) rel = '';
      else if (name.startsWith(`${from}/`)) rel = name.slice(from.length + 1);
      if (rel === null) {
        entry.resume();
        continue;
      }
      const renamed = [to, rel].filter(Boolean).join('/');
      if (!renamed) {
        entry.resume();
        continue;
      }
      h.name = renamed + (h.type === 'directory' ? '/' : '');
      if (h.type === 'link' && h.linkname) {
        const ln = h.linkname.replace(/^\.\//, '');
        h.linkname = from === '.' ? [to, ln].filter(Boolean).join('/') : ln === from || ln.startsWith(`${from}/`) ? [to, ln.slice(from.length + 1)].filter(Boolean).join('/') : ln;
      }
      await new Promise<void>((resolve, reject) => {
        const sink = pack.entry(h, (e) => (e ? reject(e) : resolve()));
        entry.on('data', (c) => sink.write(c as Buffer));
        entry.on('end', () => sink.end(null as unknown as Buffer));
        entry.on('error', reject);
      });
    }
    pack.finalize();
  })().catch((e: Error) => pack.destroy(e));
  (input as Readable).pipe(ex as unknown as NodeJS.WritableStream);
  return Readable.from(pack as unknown as AsyncIterable<Buffer>);
}

async function copyFromContainer(cli: Cli, ctr: string, src: string, dst: string, follow: boolean, archive: boolean): Promise<number> {
  let srcPath = src;
  if (follow) {
    const st = await statIn(cli, ctr, src);
    if (st?.linkTarget) srcPath = st.linkTarget;
  }
  const res = await cli.client.stream('GET', `/containers/${encodeURIComponent(ctr)}/archive?path=${encodeURIComponent(srcPath)}`).catch((e: unknown) => {
    if (e instanceof ApiError && e.status === 404 && !/No such container/.test(e.message)) throw new ApiError(404, `Could not find the file ${src} in container ${ctr}`);
    throw e;
  });
  const stat = JSON.parse(Buffer.from(String(res.headers['x-docker-container-path-stat'] ?? 'e30='), 'base64').toString('utf8')) as PathStat;
  if (dst === '-') {
    await new Promise<void>((resolve, reject) => {
      res.pipe(process.stdout);
      res.on('end', resolve);
      res.on('error', reject);
    });
    return 0;
  }
  const srcIsDir = (stat.mode & GO_DIR) !== 0;
  const name = src.endsWith('/.') ? '.' : stat.name;
  let dstStat: fs.Stats | undefined;
  try { dstStat = fs.statSync(dst); } catch { dstStat = undefined; }
  let root: string;
  let to: string;
  if (dstStat?.isDirectory()) {
    if (name === '.') { root = dst; to = ''; } else { root = dst; to = name; }
  } else if (dstStat) {
    if (srcIsDir) throw new UsageError(`cannot copy directory to a file: ${dst}`);
    root = path.dirname(path.resolve(dst));
    to = path.basename(dst);
  } else {
    if (dst.endsWith('/') || dst.endsWith('/.')) {
      if (!srcIsDir) throw new ApiError(0, `destination directory ${dst} must exist if it ends with a / and the source is a file`);
    }
    const parent = path.dirname(path.resolve(dst));
    if (!fs.existsSync(parent)) throw new ApiError(0, `no such directory: ${parent}`);
    root = parent;
    to = path.basename(path.resolve(dst));
    if (name === '.') fs.mkdirSync(path.resolve(dst));
    if (name === '.') { root = path.resolve(dst); to = ''; }
  }
  const owner = archive ? undefined : { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  await applyLayer(rebase(res, name, to), root, { whiteouts: false, owner });
  return 0;
}

async function copyToContainer(cli: Cli, ctr: string, src: string, dst: string, follow: boolean, archive: boolean): Promise<number> {
  const q = (p: string) => `/containers/${encodeURIComponent(ctr)}/archive?path=${encodeURIComponent(p)}&noOverwriteDirNonDir=true${archive ? '&copyUIDGID=true' : ''}`;
  if (src === '-') {
    const body = new PassThrough();
    process.stdin.pipe(body);
    await cli.client.request('PUT', q(dst), undefined, { raw: body, headers: { 'Content-Type': 'application/x-tar' } });
    return 0;
  }
  let local = src;
  let lst: fs.Stats;
  try {
    lst = fs.lstatSync(local);
  } catch {
    throw new ApiError(0, `lstat ${path.resolve(src)}: no such file or directory`);
  }
  if (follow && lst.isSymbolicLink()) {
    local = fs.realpathSync(local);
    lst = fs.lstatSync(local);
  }
  let dstPath = dst;
  let dstStat = await statIn(cli, ctr, dstPath);
  if (dstStat?.linkTarget && (dstStat.mode & 2 ** 27)) {
    // a link in the container: the copy goes where it leads
    dstPath = dstStat.linkTarget;
    dstStat = await statIn(cli, ctr, dstPath);
  }
  const contents = src.endsWith('/.');
  const srcName = path.basename(path.resolve(local));
  let putDir: string;
  let name: string;
  if (dstStat && (dstStat.mode & GO_DIR)) {
    putDir = dstPath;
    name = srcName;
  } else if (dstStat) {
    if (lst.isDirectory()) throw new ApiError(0, `cannot copy directory to a file: ${dst}`);
    putDir = path.posix.dirname(dstPath);
    name = path.posix.basename(dstPath);
  } else {
    if (dst.endsWith('/') && !lst.isDirectory()) throw new ApiError(0, `Could not find the file ${dst} in container ${ctr}`);
    putDir = path.posix.dirname(dstPath.replace(/\/+$/, '') || '/');
    name = path.posix.basename(dstPath.replace(/\/+$/, ''));
  }
  let tar: Readable;
  if (lst.isDirectory()) {
    tar = contents && dstStat ? packTree(local) : packTree(local, { prefix: `${name}/`, rootEntry: name });
  } else {
    tar = packTree(path.dirname(path.resolve(local)), { only: path.basename(local), rename: name });
  }
  await cli.client.request('PUT', q(putDir), undefined, { raw: tar, headers: { 'Content-Type': 'application/x-tar' } });
  return 0;
}

export const cp: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-a,--archive', 'bool', 'archive'), f('-L,--follow-link', 'bool', 'follow'), f('-q,--quiet', 'bool', 'quiet')], { interspersed: true });
  if (p.args.length !== 2) throw new UsageError('"cp" requires exactly 2 arguments.');
  const s = splitCpArg(p.args[0]!);
  const d = splitCpArg(p.args[1]!);
  if (s.container && d.container) throw new UsageError('copying between containers is not supported');
  if (!s.container && !d.container) throw new UsageError('must specify at least one container source');
  if (s.container) return copyFromContainer(cli, s.container, s.path || '/', d.path, !!p.flags.follow, !!p.flags.archive);
  return copyToContainer(cli, d.container!, s.path, d.path || '/', !!p.flags.follow, !!p.flags.archive);
};

export const exportCmd: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-o,--output', 'string', 'output')], { interspersed: true });
  if (p.args.length !== 1) throw new UsageError('"export" requires exactly 1 argument.');
  if (!p.flags.output && process.stdout.isTTY) throw new UsageError('cowardly refusing to save to a terminal. Use the -o flag or redirect');
  const res = await cli.client.stream('GET', `/containers/${encodeURIComponent(p.args[0]!)}/export`);
  const out = p.flags.output ? fs.createWriteStream(p.flags.output) : process.stdout;
  await new Promise<void>((resolve, reject) => {
    res.pipe(out as NodeJS.WritableStream, { end: !!p.flags.output });
    res.on('error', reject);
    if (p.flags.output) (out as fs.WriteStream).on('finish', resolve);
    else res.on('end', resolve);
  });
  return 0;
};

export const diff: Command = async (cli, argv) => {
  const p = parseFlags(argv, [], { interspersed: true });
  if (p.args.length !== 1) throw new UsageError('"diff" requires exactly 1 argument.');
  const r = await cli.client.request('GET', `/containers/${encodeURIComponent(p.args[0]!)}/changes`);
  for (const c of (r.body ?? []) as { Path: string; Kind: number }[]) cli.out(`${['C', 'A', 'D'][c.Kind]} ${c.Path}\n`);
  return 0;
};

export const commit: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('-a,--author', 'string', 'author'), f('-c,--change', 'list', 'change'), f('-m,--message', 'string', 'message'), f('-p,--pause', 'bool', 'pause')], { interspersed: true });
  if (p.args.length < 1 || p.args.length > 2) throw new UsageError('"commit" requires at least 1 and at most 2 arguments.');
  const q = new URLSearchParams({ container: p.args[0]! });
  const ref = p.args[1];
  if (ref) {
    const slash = ref.lastIndexOf('/');
    const colon = ref.lastIndexOf(':');
    if (colon > slash) {
      q.set('repo', ref.slice(0, colon));
      q.set('tag', ref.slice(colon + 1));
    } else q.set('repo', ref);
  }
  if (p.flags.author) q.set('author', p.flags.author);
  if (p.flags.message) q.set('comment', p.flags.message);
  for (const c of p.flags.change as string[]) q.append('changes', c);
  q.set('pause', p.flags.pause === false ? '0' : '1');
  const r = await cli.client.request('POST', `/commit?${q}`, {});
  cli.out(`${r.body.Id}\n`);
  return 0;
};
