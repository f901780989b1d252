// The executor's logic against a backend that records what it is asked (no containers, no store): which
// values instructions see (ARG, ENV, meta args, build args, proxy args), the configs committed, the cache,
// Docker's output lines and messages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { Builder, type BuildOptions } from '../../src/images/build/executor.ts';
import { emptyConfig, type BuildBackend, type BuildImage, type CommitRequest, type RunSpec } from '../../src/images/build/types.ts';

class FakeBackend implements BuildBackend {
  images = new Map<string, BuildImage>();
  runs: RunSpec[] = [];
  commits: CommitRequest[] = [];
  cache = new Map<string, string>();
  tags: [string, string][] = [];
  exitCodes: Record<string, number> = {};
  private n = 0;
  constructor(rootfs: string) {
    this.images.set('base', { id: `sha256:${'b'.repeat(64)}`, config: { ...emptyConfig(), Env: ['PATH=/bin'], Cmd: ['sh'], OnBuild: null }, rootfs });
  }
  findImage(ref: string) {
    return this.images.get(ref) ?? [...this.images.values()].find((i) => i.id === ref);
  }
  async run(_image: BuildImage, spec: RunSpec, out: (b: Buffer) => void, created?: (id: string) => void) {
    this.runs.push(spec);
    created?.('c'.repeat(64));
    out(Buffer.from(`ran ${spec.cmd.at(-1)}\n`));
    return { containerId: 'c'.repeat(64), exitCode: this.exitCodes[spec.cmd.at(-1)!] ?? 0, diff: () => Readable.from([]), remove: async () => {} };
  }
  async commit(req: CommitRequest) {
    this.commits.push(req);
    const id = `sha256:${(++this.n).toString(16).padStart(64, '0')}`;
    const img = { id, config: req.config, rootfs: req.parent?.rootfs ?? null };
    this.images.set(id, img);
    return img;
  }
  tag(id: string, ref: string) {
    this.tags.push([id, ref]);
  }
  probes = 0;
  async probe() {
    this.probes++;
    return { containerId: 'd'.repeat(64), remove: async () => { this.probes--; } };
  }
  checkTag(ref: string) {
    return ref.includes(':') ? ref : `${ref}:latest`;
  }
  cacheGet(key: string) {
    const id = this.cache.get(key);
    return id ? this.images.get(id) : undefined;
  }
  cacheSet(key: string, id: string) {
    this.cache.set(key, id);
  }
}

const ctxDir = fs.mkdtempSync(path.join(os.tmpdir(), 'loom-exec-'));
fs.mkdirSync(path.join(ctxDir, 'root/etc'), { recursive: true });
fs.writeFileSync(path.join(ctxDir, 'root/etc/passwd'), 'root:x:0:0::/:/bin/sh\n');

async function build(dockerfile: string, opts: Partial<BuildOptions> = {}, backend = new FakeBackend(path.join(ctxDir, 'root'))) {
  let out = '';
  const aux: unknown[] = [];
  const b = new Builder({
    contextDir: ctxDir, dockerfile, dockerfileName: 'Dockerfile', tags: [], buildArgs: {}, noCache: false, rm: true, forceRm: false,
    labels: {}, networkMode: 'default', extraHosts: [], quiet: false, ...opts,
  }, backend, { stream: (s) => (out += s), aux: (a) => aux.push(a) });
  let error: Error | undefined;
  let id: string | undefined;
  try {
    id = await b.build();
  } catch (e) {
    error = e as Error;
  }
  return { out, aux, backend, error, id, builder: b };
}

test('ARG and ENV: defaults, build args, ENV wins over ARG, meta args need redeclaring', async () => {
  const { backend, error, out } = await build([
    'ARG BASE=base', 'ARG META=m1', 'FROM $BASE',
    'ARG A=adef', 'ARG B', 'ENV E=e1 A2=$A', 'ARG E=fromarg', 'ARG META',
    'RUN echo x',
    'ENV X="${A}-${B:-nob}-${E}-${META}"',
  ].join('\n'), { buildArgs: { B: 'given', UNUSED: 'u', HTTP_PROXY: 'http://p:3128' } });
  assert.equal(error, undefined);
  const run = backend.runs[0]!;
  assert.deepEqual(run.cmd, ['/bin/sh', '-c', 'echo x']);
  assert.ok(run.env.includes('A=adef'));
  assert.ok(run.env.includes('B=given'));
  assert.ok(run.env.includes('META=m1'));
  assert.ok(run.env.includes('HTTP_PROXY=http://p:3128'), 'proxy args reach RUN without an ARG');
  assert.ok(!run.env.includes('E=fromarg'), 'ENV hides the ARG of the same name');
  const last = backend.commits.at(-1)!;
  assert.ok(last.config.Env.includes('X=adef-given-e1-m1'));
  assert.ok(last.config.Env.includes('A2=adef'));
  assert.ok(!last.config.Env.some((e) => e.startsWith('A=')));
  assert.match(out, /\[Warning\] One or more build-args \[UNUSED\] were not consumed\n/);
  // the history names the args the RUN saw (ENV-hidden and proxy args left out)
  assert.equal(backend.commits.find((c) => c.createdBy.includes('echo x'))!.createdBy, '|3 A=adef B=given META=m1 /bin/sh -c echo x');
});

test('output lines, aux ID, tags, cache hits and --no-cache', async () => {
  const df = 'FROM base\nENV A=1\nRUN echo hi\nCMD ["x"]';
  const first = await build(df, { tags: ['app:1', 'app'] });
  const id = first.id!;
  assert.match(first.out, /^Step 1\/4 : FROM base\n ---> bbbbbbbbbbbb\nStep 2\/4 : ENV A=1\n ---> Running in dddddddddddd\nRemoving intermediate container dddddddddddd\n ---> [0-9a-f]{12}\nStep 3\/4 : RUN echo hi\n ---> Running in cccccccccccc\nran echo hi\nRemoving intermediate container cccccccccccc\n ---> [0-9a-f]{12}\nStep 4\/4 : CMD \["x"\]\n ---> Running in dddddddddddd\nRemoving intermediate container dddddddddddd\n ---> [0-9a-f]{12}\nSuccessfully built [0-9a-f]{12}\nSuccessfully tagged app:1\nSuccessfully tagged app:latest\n$/);
  assert.deepEqual(first.aux, [{ ID: id }]);
  assert.equal(first.backend.probes, 0, 'every probe container removed');
  const second = await build(df, {}, first.backend);
  assert.equal(second.id, id);
  assert.equal(second.out.match(/Using cache/g)!.length, 3);
  assert.equal(first.backend.runs.length, 1);
  const third = await build(df, { noCache: true }, first.backend);
  assert.notEqual(third.id, id);
  assert.equal(first.backend.runs.length, 2);
  const quiet = await build(df, { quiet: true, noCache: true });
  assert.equal(quiet.out, '');
});

test('a failing RUN: Docker\'s message; the container goes unless rm=false without forcerm', async () => {
  const b = new FakeBackend(path.join(ctxDir, 'root'));
  b.exitCodes.false = 1;
  const r = await build('FROM base\nRUN ["sh", "-c", "false"]', { rm: false }, b);
  assert.equal(r.error?.message, "The command 'sh -c false' returned a non-zero code: 1");
  assert.equal(r.builder.keptContainers.length, 1);
  assert.equal((await build('FROM base\nRUN false', {}, b)).builder.keptContainers.length, 0);
  const f = await build('FROM base\nRUN false', { forceRm: true, rm: false }, b);
  assert.equal(f.error?.message, "The command '/bin/sh -c false' returned a non-zero code: 1");
  assert.equal(f.builder.keptContainers.length, 0);
});

test('metadata instructions: config as Docker writes it', async () => {
  const { backend, error } = await build([
    'FROM base', 'SHELL ["/bin/bash", "-c"]', 'CMD echo hi', 'ENTRYPOINT ["/e"]', 'EXPOSE 80 53/udp 8000-8001',
    'VOLUME /data ["/logs"]', 'VOLUME ["/a", "/b"]', 'USER 1000:1000', 'WORKDIR /app', 'WORKDIR sub', 'STOPSIGNAL SIGQUIT',
    'HEALTHCHECK --interval=5s --retries=2 CMD wget -q localhost', 'ONBUILD RUN echo trig', 'LABEL a=1 "b c"="d e"', 'MAINTAINER me',
  ].join('\n'));
  assert.equal(error, undefined);
  const c = backend.commits.at(-1)!.config;
  assert.deepEqual(c.Cmd, ['/bin/bash', '-c', 'echo hi'], 'a CMD of this stage survives a later ENTRYPOINT (an inherited one does not)');
  assert.deepEqual(c.Entrypoint, ['/e']);
  assert.deepEqual(Object.keys(c.ExposedPorts!), ['80/tcp', '53/udp', '8000/tcp', '8001/tcp']);
  assert.deepEqual(Object.keys(c.Volumes!), ['/data', '[/logs]', '/a', '/b']);
  assert.equal(c.User, '1000:1000');
  assert.equal(c.WorkingDir, '/app/sub');
  assert.equal(c.StopSignal, 'SIGQUIT');
  assert.deepEqual(c.Healthcheck, { Test: ['CMD-SHELL', 'wget -q localhost'], Interval: 5e9, Retries: 2 });
  assert.deepEqual(c.OnBuild, ['RUN echo trig']);
  assert.deepEqual(c.Labels, { a: '1', 'b c': 'd e' });
  assert.deepEqual(c.Shell, ['/bin/bash', '-c']);
  assert.equal(backend.commits.at(-1)!.author, 'me');
});

test('bad values: Docker\'s messages', async () => {
  assert.equal((await build('FROM base\nSTOPSIGNAL SIGFOO')).error?.message, 'Invalid signal: SIGFOO');
  assert.equal((await build('FROM base\nEXPOSE 80/xyz')).error?.message, 'invalid proto: xyz');
  assert.equal((await build('FROM base\nHEALTHCHECK --interval=1us CMD x')).error?.message, 'Interval "1us" cannot be less than 1ms');
  assert.equal((await build('FROM base\nENV A="${B:?B is required}"')).error?.message, 'B: B is required');
  assert.equal((await build('FROM base', { target: 'x' })).error?.message, 'failed to reach build target x in Dockerfile');
  assert.match((await build('FROM nosuch')).error!.message, /pull access denied for nosuch/);
  assert.equal((await build('FROM scratch')).error?.message, 'No image was generated. Is your Dockerfile empty?');
  assert.match((await build('FROM base\nCOPY a b c')).error!.message, /When using COPY with more than one source file, the destination must be a directory and end with a \//);
});

test('an inherited CMD goes with a new ENTRYPOINT', async () => {
  const { backend } = await build('FROM base\nENTRYPOINT ["/e"]');
  assert.equal(backend.commits.at(-1)!.config.Cmd, null);
});

test('ONBUILD triggers run in the child build', async () => {
  const b = new FakeBackend(path.join(ctxDir, 'root'));
  const parent = await build('FROM base\nONBUILD RUN echo trig', { tags: ['p'] }, b);
  b.images.set('p', b.images.get(parent.id!)!);
  const child = await build('FROM p\nRUN echo child', {}, b);
  assert.match(child.out, /Step 1\/2 : FROM p\n ---> [0-9a-f]{12}\n# Executing 1 build trigger\n ---> Running in cccccccccccc\nran echo trig\n/);
  assert.equal(b.commits.at(-1)!.config.OnBuild, null, 'triggers are not inherited further');
});

test('cleanup', () => {
  fs.rmSync(ctxDir, { recursive: true, force: true });
});
