// `loom build`: the docker CLI's classic build: the context directory (less what .dockerignore excludes,
// the Dockerfile and .dockerignore always sent) as a tar to POST /build, the daemon's JSON messages
// printed as they come.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import type { Command } from './main.ts';
import { ApiError } from './client.ts';
import { f, parseFlags, UsageError } from './flags.ts';
import { contextFiles, readDockerignore } from '../images/build/dockerignore.ts';

async function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
  return Buffer.concat(chunks);
}

function looksLikeArchive(b: Buffer): boolean {
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) return true;
  if (b.length >= 3 && b.subarray(0, 3).toString('latin1') === 'BZh') return true;
  if (b.length >= 6 && b[0] === 0xfd && b.subarray(1, 6).toString('latin1') === '7zXZ\0') return true;
  return b.length >= 262 && b.subarray(257, 262).toString('latin1') === 'ustar';
}

/** The context as a tar (owners 0:0, as the docker CLI sends it), plus extra in-memory files. */
function packContext(root: string, files: string[], extra: Record<string, Buffer>): Readable {
  const pack = tarStream.pack();
  (async () => {
    const add = (h: Partial<tarStream.Header> & { name: string }, body?: Buffer) => new Promise<void>((resolve, reject) => pack.entry(h, body ?? Buffer.alloc(0), (e) => (e ? reject(e) : resolve())));
    for (const rel of files) {
      const p = path.join(root, rel);
      const st = fs.lstatSync(p);
      const base = { name: rel, mode: st.mode & 0o7777, mtime: st.mtime, uid: 0, gid: 0 };
      if (st.isDirectory()) await add({ ...base, type: 'directory' });
      else if (st.isSymbolicLink()) await add({ ...base, type: 'symlink', linkname: fs.readlinkSync(p) });
      else if (st.isFile()) await add({ ...base, type: 'file', size: st.size }, fs.readFileSync(p));
    }
    for (const [name, body] of Object.entries(extra)) await add({ name, mode: 0o644, mtime: new Date(), uid: 0, gid: 0, type: 'file', size: body.length }, body);
    pack.finalize();
  })().catch((e: Error) => pack.destroy(e));
  return Readable.from(pack as unknown as AsyncIterable<Buffer>);
}

export const build: Command = async (cli, argv) => {
  const p = parseFlags(argv, [
    f('-t,--tag', 'list', 'tag'), f('-f,--file', 'string', 'file'), f('--build-arg', 'list', 'buildArg'), f('--no-cache', 'bool', 'noCache'),
    f('--target', 'string'), f('--label', 'list', 'label'), f('-q,--quiet', 'bool', 'quiet'), f('--network', 'string'),
    f('--add-host', 'list', 'addHost'), f('--pull'), f('--rm'), f('--force-rm', 'bool', 'forceRm'),
  ], { interspersed: true });
  if (p.args.length !== 1) throw new UsageError('"build" requires exactly 1 argument.');
  const ctx = p.args[0]!;
  const q = new URLSearchParams();
  for (const t of p.flags.tag as string[]) q.append('t', t);
  let body: Readable;
  let dockerfileName = 'Dockerfile';
  const fileFlag = p.flags.file as string | undefined;
  if (ctx === '-') {
    if (fileFlag === '-') throw new UsageError('invalid argument: can\'t use stdin for both build context and dockerfile');
    const input = await readAll(process.stdin);
    if (looksLikeArchive(input)) {
      body = Readable.from([input]);
      if (fileFlag) dockerfileName = fileFlag;
    } else {
      body = packContext('/', [], { Dockerfile: input });
    }
  } else {
    let st: fs.Stats;
    try {
      st = fs.statSync(ctx);
    } catch {
      throw new UsageError(`unable to prepare context: path "${ctx}" not found`);
    }
    if (!st.isDirectory()) throw new UsageError(`unable to prepare context: context must be a directory: ${path.resolve(ctx)}`);
    const root = path.resolve(ctx);
    const extra: Record<string, Buffer> = {};
    let ignore: string[] = [];
    try {
      ignore = readDockerignore(fs.readFileSync(path.join(root, '.dockerignore'), 'utf8'));
    } catch { /* none */ }
    if (fileFlag === '-') {
      dockerfileName = `.dockerfile.${randomBytes(10).toString('hex').slice(0, 20)}`;
      extra[dockerfileName] = await readAll(process.stdin);
    } else if (fileFlag) {
      const abs = path.resolve(fileFlag);
      const rel = path.relative(root, abs);
      if (!fs.existsSync(abs)) throw new UsageError(`unable to prepare context: the Dockerfile (${fileFlag}) cannot be empty`);
      if (rel.startsWith('..') || path.isAbsolute(rel)) {
        dockerfileName = `.dockerfile.${randomBytes(10).toString('hex').slice(0, 20)}`;
        extra[dockerfileName] = fs.readFileSync(abs);
      } else dockerfileName = rel.split(path.sep).join('/');
    } else if (!fs.existsSync(path.join(root, 'Dockerfile'))) {
      throw new UsageError(`unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat ${path.join(root, 'Dockerfile')}: no such file or directory`);
    }
    body = packContext(root, contextFiles(root, ignore, dockerfileName), extra);
  }
  q.set('dockerfile', dockerfileName);
  const args: Record<string, string | null> = {};
  for (const a of p.flags.buildArg as string[]) {
    const i = a.indexOf('=');
    // `--build-arg NAME` takes the value from the environment, or stays unset (as the docker CLI)
    if (i < 0) args[a] = process.env[a] ?? null;
    else args[a.slice(0, i)] = a.slice(i + 1);
  }
  if (Object.keys(args).length) q.set('buildargs', JSON.stringify(args));
  const labels: Record<string, string> = {};
  for (const l of p.flags.label as string[]) {
    const i = l.indexOf('=');
    labels[i < 0 ? l : l.slice(0, i)] = i < 0 ? '' : l.slice(i + 1);
  }
  if (Object.keys(labels).length) q.set('labels', JSON.stringify(labels));
  if (p.flags.noCache) q.set('nocache', '1');
  if (p.flags.pull) q.set('pull', '1');
  if (p.flags.rm === false) q.set('rm', '0');
  if (p.flags.forceRm) q.set('forcerm', '1');
  if (p.flags.quiet) q.set('q', '1');
  if (p.flags.target) q.set('target', p.flags.target);
  if (p.flags.network) q.set('networkmode', p.flags.network);
  for (const h of p.flags.addHost as string[]) q.append('extrahosts', h);

  return new Promise<number>((resolve, reject) => {
    const req = http.request({ ...cli.client.at(), method: 'POST', path: `/v1.50/build?${q}`, headers: { 'Content-Type': 'application/x-tar', 'Transfer-Encoding': 'chunked' } }, (res) => {
      let buf = '';
      let failed = false;
      if ((res.statusCode ?? 0) >= 400) {
        res.on('data', (c: Buffer) => (buf += c.toString()));
        res.on('end', () => {
          let msg = buf;
          try { msg = (JSON.parse(buf) as { message: string }).message; } catch { /* text */ }
          reject(new ApiError(res.statusCode ?? 500, msg));
        });
        return;
      }
      const handle = (line: string) => {
        if (!line.trim()) return;
        let m: { stream?: string; error?: string; errorDetail?: { message: string }; status?: string };
        try {
          m = JSON.parse(line);
        } catch {
          return;
        }
        if (m.stream) cli.out(m.stream);
        if (m.status) cli.out(`${m.status}\n`);
        if (m.error) {
          failed = true;
          cli.err(`${m.errorDetail?.message ?? m.error}\n`);
        }
      };
      res.on('data', (c: Buffer) => {
        buf += c.toString('utf8');
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          handle(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      });
      res.on('end', () => {
        handle(buf);
        resolve(failed ? 1 : 0);
      });
    });
    req.on('error', reject);
    body.on('error', (e) => req.destroy(e));
    body.pipe(req);
  });
};
