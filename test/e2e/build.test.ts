// Builds with the classic builder end to end: bin/loom build and `DOCKER_BUILDKIT=0 docker build` against a
// loom daemon in a sandbox; RUN steps run in real containers (egress only to a server in the sandbox's
// outside-world namespace).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createSandbox, runCmd, LOOM, type Sandbox, mountsUnder } from '../helpers/sandbox.ts';
import { ok } from '../helpers/assert.ts';
import type { Result } from '../helpers/sandbox.ts';

/** A command that must fail: its result. */
async function failed(p: Promise<Result>): Promise<Result> {
  const r = await p;
  assert.notEqual(r.code, 0, `should have failed: ${r.stdout}`);
  return r;
}

let sb: Sandbox;
const skip = process.getuid?.() !== 0 ? 'needs root (network namespaces, runc)' : false;

function project(name: string, files: Record<string, string>): string {
  const dir = path.join(sb.dir, 'projects', name);
  for (const [p, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, p)), { recursive: true });
    fs.writeFileSync(path.join(dir, p), text);
  }
  return dir;
}

async function containerCount(): Promise<number> {
  return (await ok(sb.loom('ps', '-aq'))).split('\n').filter(Boolean).length;
}

before(async () => {
  if (skip) return;
  sb = await createSandbox();
  await sb.startDaemon();
  await sb.image('box');
}, { timeout: 120_000 });

after(async () => {
  if (sb) await sb.cleanup();
});

const APP = [
  'FROM box',
  'ARG VERSION=1',
  'ENV APP_HOME=/srv/app \\',
  '    GREETING="hello world"',
  'WORKDIR $APP_HOME',
  'COPY app.sh ./bin/',
  'COPY conf/ conf/',
  'RUN echo "version=$VERSION" > version.txt && echo built $VERSION',
  'LABEL org.example.version=$VERSION',
  'EXPOSE 8080/tcp',
  'USER nobody',
  'CMD ["sh", "bin/app.sh"]',
].join('\n');

test('bin/loom build: a multi-step Dockerfile, Docker\'s output, the image runs', { skip }, async () => {
  const dir = project('app', {
    Dockerfile: APP,
    'app.sh': 'echo "$GREETING from $(cat version.txt) as $(id -u)"; cat conf/a.conf\n',
    'conf/a.conf': 'a=1\n',
    'conf/secret.key': 'nope\n',
    'notes.log': 'ignored\n',
    '.dockerignore': '*.log\nconf/*.key\n',
  });
  const before = await containerCount();
  const out = await ok(sb.loom('build', '-t', 'app:1', '-t', 'app:latest', '--build-arg', 'VERSION=2', dir), 'build');
  assert.match(out, /^Step 1\/11 : FROM box\n ---> [0-9a-f]{12}\n/);
  assert.match(out, /Step 7\/11 : RUN echo "version=\$VERSION" > version.txt && echo built \$VERSION\n ---> Running in ([0-9a-f]{12})\nbuilt 2\nRemoving intermediate container \1\n ---> [0-9a-f]{12}\n/);
  assert.match(out, /Step 3\/11 : ENV APP_HOME=\/srv\/app     GREETING="hello world"\n ---> Running in ([0-9a-f]{12})\nRemoving intermediate container \1\n ---> [0-9a-f]{12}\n/);
  assert.match(out, /Successfully built ([0-9a-f]{12})\nSuccessfully tagged app:1\nSuccessfully tagged app:latest$/);
  assert.equal(await containerCount(), before, 'intermediate containers removed');
  assert.deepEqual(mountsUnder(path.join(sb.dir, 'data', 'tmp')), [], 'no image view left mounted');
  assert.deepEqual(fs.readdirSync(path.join(sb.dir, 'data', 'tmp')), [], 'no context left');
  const hist = await ok(sb.loom('history', '--no-trunc', '--format', '{{.CreatedBy}}', 'app:1'));
  assert.match(hist, /^\/bin\/sh -c #\(nop\)  CMD \["sh" "bin\/app.sh"\]\n/);
  assert.match(hist, /\|1 VERSION=2 \/bin\/sh -c echo "version=\$VERSION"/);
  const run = await ok(sb.loom('run', '--rm', 'app:1'));
  assert.equal(run, 'hello world from version=2 as 65534\na=1');
  const cfg = JSON.parse(await ok(sb.loom('image', 'inspect', 'app:1'))) as any[];
  assert.equal(cfg[0].Config.WorkingDir, '/srv/app');
  assert.equal(cfg[0].Config.User, 'nobody');
  assert.deepEqual(cfg[0].Config.Cmd, ['sh', 'bin/app.sh']);
  assert.deepEqual(cfg[0].Config.ExposedPorts, { '8080/tcp': {} });
  assert.equal(cfg[0].Config.Labels['org.example.version'], '2');
  assert.ok(cfg[0].Config.Env.includes('GREETING=hello world'));
  assert.ok(!cfg[0].Config.Env.some((e: string) => e.startsWith('VERSION=')), 'build args stay out of the image');
  // .dockerignore: neither the excluded files nor the ignore file itself (it excludes nothing of its own)
  const ls = await ok(sb.loom('run', '--rm', 'app:1', 'ls', '-A', 'conf', '.'));
  assert.doesNotMatch(ls, /secret\.key|notes\.log/);

  // the same again: every step from the cache, the same image
  const again = await ok(sb.loom('build', '-t', 'app:1', '--build-arg', 'VERSION=2', dir));
  assert.equal((again.match(/ ---> Using cache/g) ?? []).length, 10);
  assert.doesNotMatch(again, /Running in/);
  assert.equal(again.match(/Successfully built (\w+)/)![1], out.match(/Successfully built (\w+)/)![1]);
  // another build arg: the cache holds up to the first step it changes
  const v3 = await ok(sb.loom('build', '-t', 'app:3', '--build-arg', 'VERSION=3', dir));
  assert.match(v3, /Step 6\/11 : COPY conf\/ conf\/\n ---> Using cache/);
  assert.match(v3, /built 3\n/);
  // a changed file breaks the cache from its COPY on
  fs.writeFileSync(path.join(dir, 'conf/a.conf'), 'a=2\n');
  const changed = await ok(sb.loom('build', '-q', '--build-arg', 'VERSION=2', dir));
  assert.match(changed, /^sha256:[0-9a-f]{64}$/);
  assert.equal(await ok(sb.loom('run', '--rm', changed, 'cat', 'conf/a.conf')), 'a=2');
  // --no-cache runs everything
  const nc = await ok(sb.loom('build', '--no-cache', '--build-arg', 'VERSION=2', dir));
  assert.doesNotMatch(nc, /Using cache/);
});

test('a failing RUN: Docker\'s message and exit code, the step shown, nothing left behind', { skip }, async () => {
  const dir = project('fail', { Dockerfile: 'FROM box\nRUN echo before\nRUN echo oops >&2; exit 3\nRUN echo never\n' });
  const before = await containerCount();
  const r = await failed(sb.loom('build', '--force-rm', dir));
  assert.equal(r.code, 1);
  assert.match(r.stdout, /Step 3\/4 : RUN echo oops >&2; exit 3\n ---> Running in [0-9a-f]{12}\noops\n/);
  assert.doesNotMatch(r.stdout, /never/);
  assert.match(r.stderr, /The command '\/bin\/sh -c echo oops >&2; exit 3' returned a non-zero code: 3/);
  assert.equal(await containerCount(), before);
  assert.deepEqual(mountsUnder(path.join(sb.dir, 'data', 'containers')), []);
  // the default (--rm): nothing left either; --rm=false keeps the failed container (stopped, unmounted)
  await failed(sb.loom('build', dir));
  assert.equal(await containerCount(), before);
  await failed(sb.loom('build', '--rm=false', dir));
  assert.equal(await containerCount(), before + 1, 'the failed RUN\'s container (the first RUN is cached)');
  await ok(sb.loom('container', 'prune', '-f'));
  assert.deepEqual(mountsUnder(path.join(sb.dir, 'data', 'containers')), []);
});

test('bad input: unknown instruction, missing COPY source, source outside the context', { skip }, async () => {
  const r1 = await failed(sb.loom('build', project('bad1', { Dockerfile: 'FROM box\n\nFOO bar\n' })));
  assert.match(r1.stderr, /dockerfile parse error on line 3: unknown instruction: FOO/);
  const r2 = await failed(sb.loom('build', project('bad2', { Dockerfile: 'FROM box\nCOPY missing.txt /x\n' })));
  assert.match(r2.stderr, /COPY failed: file not found in build context or excluded by \.dockerignore: stat missing\.txt: file does not exist/);
  const r3 = await failed(sb.loom('build', project('bad3', { Dockerfile: 'FROM box\nCOPY ../x /x\n' })));
  assert.match(r3.stderr, /Forbidden path outside the build context: \.\.\/x/);
  const r4 = await failed(sb.loom('build', project('bad4', { Dockerfile: 'FROM nosuchimage\n' })));
  // not here: pulled from Docker Hub, which the sandbox cannot reach (dockerd's words for that)
  assert.match(r4.stderr, /nosuchimage|registry-1\.docker\.io/);
});

test('multi-stage: COPY --from a stage, --target, unneeded stages skipped', { skip }, async () => {
  const dir = project('multi', {
    Dockerfile: [
      'FROM box AS builder',
      'RUN mkdir -p /out && echo compiled > /out/app && ln -s app /out/link',
      'FROM box AS unused',
      'RUN echo should-not-run',
      'FROM box',
      'COPY --from=builder /out/ /opt/',
      'COPY --from=0 /out/app /opt/app2',
      'RUN rm /bin/vi && cat /opt/app /opt/link /opt/app2',
    ].join('\n'),
  });
  const out = await ok(sb.loom('build', '-t', 'multi:1', dir));
  assert.doesNotMatch(out, /should-not-run/);
  assert.match(out, /Step 6\/6 : RUN rm/);
  assert.match(out, /compiled\ncompiled\ncompiled\n/);
  assert.equal(await ok(sb.loom('run', '--rm', 'multi:1', 'readlink', '/opt/link')), 'app');
  // the RUN's deletion is a whiteout in its layer: the file is gone in the image
  const r = await sb.loom('run', '--rm', 'multi:1', 'ls', '/bin/vi');
  assert.notEqual(r.code, 0);
  const t = await ok(sb.loom('build', '--target', 'unused', dir));
  assert.match(t, /should-not-run/);
  assert.match(t, /Step 2\/2/);
});

test('ADD: a local tar is extracted, a URL is downloaded; RUN reaches the outside world', { skip }, async () => {
  const dir = project('add', { Dockerfile: '', 'data/x.txt': 'in tar\n' });
  await ok(runCmd(['tar', '-C', path.join(dir, 'data'), '-czf', path.join(dir, 'data.tgz'), 'x.txt']));
  fs.rmSync(path.join(dir, 'data'), { recursive: true });
  sb.spawnExt(['node', '-e', `require('http').createServer((q,s)=>{s.writeHead(200,{'Last-Modified':'Wed, 21 Oct 2015 07:28:00 GMT'});s.end(q.url==='/file.txt'?'downloaded\\n':'pong\\n')}).listen(8000,'198.51.100.2')`]);
  await new Promise((r) => setTimeout(r, 400));
  fs.writeFileSync(path.join(dir, 'Dockerfile'), [
    'FROM box',
    'ADD data.tgz /unpacked/',
    'ADD http://198.51.100.2:8000/file.txt /dl/',
    'RUN wget -qO- http://198.51.100.2:8000/ping',
    'RUN cat /unpacked/x.txt /dl/file.txt && stat -c %a /dl/file.txt',
  ].join('\n'));
  const out = await ok(sb.loom('build', '--no-cache', dir));
  assert.match(out, /pong\n/);
  assert.match(out, /in tar\ndownloaded\n600\n/);
  // --network none: no way out
  const r = await failed(sb.loom('build', '--no-cache', '--network', 'none', project('nonet', { Dockerfile: 'FROM box\nRUN wget -T 2 -qO- http://198.51.100.2:8000/ping\n' })));
  assert.match(r.stderr, /returned a non-zero code/);
});

test('the docker CLI (classic builder, DOCKER_BUILDKIT=0 and without it)', { skip }, async () => {
  const dir = project('docker', {
    Dockerfile: 'FROM box\nARG WHO=world\nENV WHO=$WHO\nRUN echo "hi $WHO" > /greeting\nCMD cat /greeting\n',
  });
  const r = await runCmd(['docker', 'build', '-t', 'dk:1', '--build-arg', 'WHO=docker', dir], { env: { ...sb.env, DOCKER_BUILDKIT: '0' } });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Step 1\/5 : FROM box/);
  assert.match(r.stdout, /Successfully tagged dk:1/);
  assert.equal(await ok(sb.docker('run', '--rm', 'dk:1')), 'hi docker');
  const q = await runCmd(['docker', 'build', '-q', dir], { env: { ...sb.env, DOCKER_BUILDKIT: '0' } });
  assert.equal(q.code, 0, q.stderr);
  assert.match(q.stdout.trim(), /^sha256:[0-9a-f]{64}$/);
  // without DOCKER_BUILDKIT and without buildx: the daemon says Builder-Version 1, the CLI uses the classic API
  const env = { ...sb.env };
  delete env.DOCKER_BUILDKIT;
  const plain = await runCmd(['docker', 'build', '-t', 'dk:2', dir], { env });
  assert.equal(plain.code, 0, plain.stderr);
  const bad = await runCmd(['docker', 'build', project('dkbad', { Dockerfile: 'FROM box\nRUN false\n' })], { env: { ...sb.env, DOCKER_BUILDKIT: '0' } });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /The command '\/bin\/sh -c false' returned a non-zero code: 1/);
});

test('the API: an unsupported parameter is refused naming it; stdin Dockerfile', { skip }, async () => {
  const r = await runCmd(['sh', '-c', `printf 'FROM box\\nRUN echo from-stdin\\n' | ${LOOM} build -`], { env: sb.env });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /from-stdin/);
  const res = await sb.api('POST', '/build?memory=1000000');
  assert.equal(res.status, 400);
  assert.match(res.body.message, /memory=1000000/);
  // a body that is no tar: a clear 400, nothing left behind
  const notTar = await sb.api('POST', '/build', 'this is not a tar archive, just some text long enough to be sniffed');
  assert.equal(notTar.status, 400);
  assert.match(notTar.body.message, /the build context is not a tar archive/);
  assert.deepEqual(fs.readdirSync(path.join(sb.dir, 'data', 'tmp')), []);
  // --add-host reaches the RUN's /etc/hosts
  const hosts = await ok(sb.loom('build', '--no-cache', '--add-host', 'myhost:192.0.2.7', project('hosts', { Dockerfile: 'FROM box\nRUN grep myhost /etc/hosts\n' })));
  assert.match(hosts, /192\.0\.2\.7\s+myhost/);
});

test('docker-py and docker-compose 1.29 build through the API', { skip }, async () => {
  const dir = project('py', {
    Dockerfile: 'FROM box\nARG N=0\nRUN echo "n=$N" > /n\nCMD ["cat", "/n"]\n',
    'docker-compose.yml': 'version: "2.4"\nservices:\n  app:\n    build:\n      context: .\n      args:\n        N: "7"\n    image: composed:1\n',
  });
  const script = [
    'import docker',
    `c = docker.DockerClient(base_url="unix://${sb.socket}", version="1.41")`,
    `img, logs = c.images.build(path="${dir}", tag="py:1", buildargs={"N": "5"}, rm=True)`,
    'print(img.tags, "".join(l.get("stream", "") for l in logs).count("Step "))',
    'print(c.containers.run("py:1", remove=True).decode().strip())',
  ].join('\n');
  const py = await runCmd(['python3', '-c', script], { env: sb.env });
  assert.equal(py.code, 0, py.stderr);
  assert.equal(py.stdout, "['py:1'] 4\nn=5\n");
  const compose = await runCmd(['docker-compose', '--project-directory', dir, '-f', path.join(dir, 'docker-compose.yml'), 'build'], { env: sb.env });
  assert.equal(compose.code, 0, compose.stderr + compose.stdout);
  assert.equal(await ok(sb.loom('run', '--rm', 'composed:1')), 'n=7');
});

test('FROM scratch: COPY --from an image, RUN in exec form, the image runs', { skip }, async () => {
  const dir = project('scratch', {
    Dockerfile: [
      'FROM scratch',
      'COPY --from=box /bin/busybox /bin/busybox',
      'ENV PATH=/bin',
      'RUN ["/bin/busybox", "sh", "-c", "/bin/busybox echo hi > /hi"]',
      'CMD ["/bin/busybox", "cat", "/hi"]',
    ].join('\n'),
  });
  await ok(sb.loom('build', '-t', 'tiny:1', dir));
  assert.equal(await ok(sb.loom('run', '--rm', 'tiny:1')), 'hi');
  const layers = JSON.parse(await ok(sb.loom('image', 'inspect', 'tiny:1')))[0].RootFS.Layers;
  assert.equal(layers.length, 2, 'the COPY and the RUN');
});
