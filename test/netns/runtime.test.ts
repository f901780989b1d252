// The container runtime on the real kernel with runc: a busybox image built here and imported through
// unpackImage (plain tar and gzip), containers started in a network namespace this test made (the same
// code path as any other namespace path), their output, exit codes, exec, stop with a pid 1 that ignores
// SIGTERM, adoption after a daemon restart (a new Runc instance, and a real "daemon" process that is
// SIGKILLed while its container runs on), a start that fails, and the overlay keeping the image intact.
// Everything (namespace, mounts, runc state, cgroups, temp dirs, processes) goes in after(), also when a
// test failed; `ip netns list` and /proc/mounts are left as they were. No network traffic at all.
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { unpackImage } from '../../src/runtime/images.ts';
import { Runc, type ContainerSpec } from '../../src/runtime/runc.ts';
import { busyboxTar } from '../helpers/sandbox.ts';

const isRoot = process.getuid?.() === 0;
const haveRunc = spawnSync('runc', ['--version']).status === 0;
const haveBusybox = fs.existsSync('/bin/busybox');
const skip = !isRoot ? 'needs root: mounts overlays, creates namespaces, runs runc'
  : !haveRunc ? 'runc is not installed'
  : !haveBusybox ? 'busybox-static (/bin/busybox) is not installed' : false;

const pid = process.pid;
const NS = `loomt-rt-${pid}`;
const NS_PATH = `/run/netns/${NS}`;
const CGROUP_PARENT = `/loomt-rt-${pid}`;
const silent = { debug() {}, info() {}, warn() {}, error() {} };

// only this test's namespaces: other test files run concurrently and make their own
const netnsList = () => spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').map((l) => l.split(' ')[0]).filter((n) => n?.startsWith('loomt-rt-')).sort();
const mountLines = (needle: string) => (needle ? fs.readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.includes(needle)) : []);
const alive = (p: number) => {
  try {
    process.kill(p, 0);
    return !/\) Z /.test(fs.readFileSync(`/proc/${p}/stat`, 'utf8'));
  } catch {
    return false;
  }
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const newId = () => randomBytes(32).toString('hex');

/** Runs an exec to its end: output and exit code. */
function run(child: ChildProcess): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    let out = '', err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms).unref())]);
}

describe('runtime: images and runc containers', { skip }, () => {
  let tmp = '';
  let image = '';
  let runcRoot = '';
  let runc: Runc;
  let netnsBefore: string[] = [];
  let mountsBefore: string[] = [];
  const started = new Map<string, string>(); // id → stateDir
  const children: ChildProcess[] = [];
  let etc: ContainerSpec['etcFiles'];

  const spec = (id: string, args: string[], extra: Partial<ContainerSpec> = {}): ContainerSpec => {
    const stateDir = path.join(tmp, 'data', 'containers', id);
    started.set(id, stateDir);
    fs.mkdirSync(stateDir, { recursive: true });
    return {
      id, rootfsLower: image, stateDir, args, env: ['PATH=/bin', 'HOME=/'], cwd: '/', hostname: `h${id.slice(0, 11)}`,
      tty: false, openStdin: false, netns: NS_PATH, etcFiles: etc, ...extra,
    };
  };

  before(async () => {
    netnsBefore = netnsList();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), `loomt-rt-${pid}-`));
    mountsBefore = mountLines(tmp);
    spawnSync('ip', ['netns', 'del', NS], { stdio: 'ignore' }); // leftover of a crashed run with a recycled pid
    execFileSync('ip', ['netns', 'add', NS]);

    // A busybox root filesystem: the binary, its applets as symlinks, two users and a group.
    busyboxTar(tmp, {
      'etc/passwd': 'root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1000:web:/:/bin/sh\n',
      'etc/group': 'root:x:0:\nweb:x:1000:\nwheel:x:10:web\n',
      'etc/motd': 'from the image\n',
    }, 'img.tar');
    execFileSync('gzip', ['-k', path.join(tmp, 'img.tar')]);

    etc = { hosts: path.join(tmp, 'hosts'), resolvConf: path.join(tmp, 'resolv.conf'), hostname: path.join(tmp, 'hostname') };
    fs.writeFileSync(etc.hosts, '127.0.0.1\tlocalhost\n172.17.0.2\tloomtest\n');
    fs.writeFileSync(etc.resolvConf, 'nameserver 127.0.0.11\n');
    fs.writeFileSync(etc.hostname, 'loomtest\n');
    runcRoot = path.join(tmp, 'exec', 'runc');
    runc = new Runc({ root: runcRoot, log: silent, cgroupParent: CGROUP_PARENT });
  });

  after(async () => {
    for (const c of children) if (c.exitCode === null && c.pid) try { process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ }
    // Every container: killed through runc, its shim waited for (it writes the exit status last), then
    // the runtime's own cleanup (runc state, overlay mount).
    for (const [id, dir] of started) {
      spawnSync('runc', ['--root', runcRoot, 'delete', '-f', id], { stdio: 'ignore' });
      const shimPid = Number(fs.existsSync(path.join(dir, 'shim.pid')) ? fs.readFileSync(path.join(dir, 'shim.pid'), 'utf8') : 0);
      for (let i = 0; i < 50 && shimPid > 0 && alive(shimPid); i++) await sleep(100);
      if (shimPid > 0 && alive(shimPid)) try { process.kill(shimPid, 'SIGKILL'); } catch { /* gone */ }
      await runc?.cleanup(id, dir).catch(() => {});
    }
    // Anything still mounted below the temp dir (a test that failed half-way), deepest first.
    for (const l of mountLines(tmp).reverse()) spawnSync('umount', ['-l', l.split(' ')[1]!.replace(/\\040/g, ' ')], { stdio: 'ignore' });
    spawnSync('ip', ['netns', 'del', NS], { stdio: 'ignore' });
    for (const ctl of fs.existsSync('/sys/fs/cgroup') ? fs.readdirSync('/sys/fs/cgroup') : []) {
      for (const d of [path.join('/sys/fs/cgroup', ctl, CGROUP_PARENT), path.join('/sys/fs/cgroup', CGROUP_PARENT)]) {
        try { fs.rmdirSync(d); } catch { /* absent or not ours */ }
      }
    }
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    assert.deepEqual(netnsList(), netnsBefore, 'ip netns list as before');
    assert.deepEqual(mountLines(tmp), mountsBefore, '/proc/mounts as before');
  });

  test('unpackImage: plain and gzip tarballs give the same digest, the tar\'s sha256', async () => {
    const want = createHash('sha256').update(fs.readFileSync(path.join(tmp, 'img.tar'))).digest('hex');
    const plain = await unpackImage(fs.createReadStream(path.join(tmp, 'img.tar')), path.join(tmp, 'images', 'plain', 'rootfs'));
    const gz = await unpackImage(fs.createReadStream(path.join(tmp, 'img.tar.gz')), path.join(tmp, 'images', 'gz', 'rootfs'));
    assert.equal(plain.digest, want);
    assert.equal(gz.digest, want);
    assert.equal(plain.size, gz.size);
    assert.ok(plain.size >= fs.statSync('/bin/busybox').size, `size ${plain.size}`);
    image = path.join(tmp, 'images', 'gz', 'rootfs');
    const bb = fs.statSync(path.join(image, 'bin/busybox'));
    assert.equal(bb.mode & 0o777, 0o755);
    assert.equal(bb.uid, 0);
    assert.equal(fs.readlinkSync(path.join(image, 'bin/sh')), 'busybox');

    // A broken stream leaves nothing behind.
    const bad = path.join(tmp, 'images', 'bad', 'rootfs');
    const corrupt = fs.readFileSync(path.join(tmp, 'img.tar.gz')).subarray(0, 5000);
    const { Readable } = await import('node:stream');
    await assert.rejects(unpackImage(Readable.from([corrupt]), bad), /gzip|unexpected end|tar/i);
    assert.equal(fs.existsSync(bad), false);
  });

  test('a container that prints and exits: both streams in their log files, exit code 3', async () => {
    const s = spec(newId(), ['sh', '-c', 'echo hello; echo err >&2; exit 3']);
    const { pid: initPid, startedAt } = await runc.start(s);
    assert.ok(initPid > 0);
    assert.match(startedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
    const st = await withTimeout(runc.waitExit(s.id, s.stateDir), 20_000, 'exit');
    assert.equal(st.exitCode, 3);
    assert.equal(st.oomKilled, false);
    assert.match(st.finishedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$/);
    const logs = runc.logPaths(s.stateDir);
    assert.equal(fs.readFileSync(logs.stdout, 'utf8'), 'hello\n');
    assert.equal(fs.readFileSync(logs.stderr, 'utf8'), 'err\n');
    // waitExit after the fact, as after a daemon restart: immediate, same status.
    assert.deepEqual(await runc.waitExit(s.id, s.stateDir), st);
    assert.deepEqual(await new Runc({ root: runcRoot, log: silent, cgroupParent: CGROUP_PARENT }).adopt(s.id, s.stateDir), { running: false, status: st });
    await runc.cleanup(s.id, s.stateDir);
    await runc.cleanup(s.id, s.stateDir); // idempotent
    assert.deepEqual(mountLines(s.stateDir), []);
  });

  test('a long-running container: namespaces, etc files, exec, adoption, stop escalating to SIGKILL', async () => {
    const s = spec(newId(), ['sleep', '600']);
    const { pid: initPid } = await runc.start(s);
    assert.ok(alive(initPid), 'init pid alive');
    assert.equal(fs.readlinkSync(`/proc/${initPid}/ns/net`), `net:[${fs.statSync(NS_PATH).ino}]`, 'in the given network namespace');
    for (const ns of ['pid', 'mnt', 'uts', 'ipc']) {
      assert.notEqual(fs.readlinkSync(`/proc/${initPid}/ns/${ns}`), fs.readlinkSync(`/proc/self/ns/${ns}`), `${ns} namespace of its own`);
    }
    const sh = (cmd: string, extra: Parameters<Runc['exec']>[1] = { args: [] }) => run(runc.exec(s.id, { ...extra, args: ['sh', '-c', cmd] }));

    assert.deepEqual(await sh('hostname'), { code: 0, out: `${s.hostname}\n`, err: '' });
    assert.equal((await sh('cat /etc/hosts')).out, fs.readFileSync(etc.hosts, 'utf8'));
    assert.equal((await sh('cat /etc/resolv.conf')).out, fs.readFileSync(etc.resolvConf, 'utf8'));
    assert.deepEqual(await sh('cat /etc/hostname'), { code: 0, out: 'loomtest\n', err: '' });
    assert.equal((await sh('exit 4')).code, 4);
    const ps = await sh('ps -o pid,args');
    assert.match(ps.out, /^\s*1\s+sleep 600\s*$/m, ps.out);
    // Bind mounts are live and writable, like Docker's.
    await sh('echo "10.0.0.9 added" >> /etc/hosts');
    assert.match(fs.readFileSync(etc.hosts, 'utf8'), /10\.0\.0\.9 added/);
    // Users: by name (supplementary groups from /etc/group), numeric, and an unknown one.
    assert.match((await sh('id', { args: [], user: 'web' })).out, /^uid=1000\(web\) gid=1000\(web\) groups=10\(wheel\)$/m);
    assert.equal((await sh('id -u', { args: [], user: '1234:5' })).out.trim(), '1234');
    assert.throws(() => runc.exec(s.id, { args: ['id'], user: 'nobody' }), /unable to find user nobody/);
    // stdin and env.
    const cat = runc.exec(s.id, { args: ['sh', '-c', 'cat; echo "$FOO"'], env: ['FOO=bar'], stdin: true });
    cat.stdin!.end('piped\n');
    assert.deepEqual(await run(cat), { code: 0, out: 'piped\nbar\n', err: '' });
    // A terminal.
    const t = await run(runc.exec(s.id, { args: ['sh', '-c', 'tty; echo $TERM'], tty: true }));
    assert.equal(t.code, 0);
    assert.match(t.out, /^\/dev\/pts\/\d+\r\nxterm\r\n$/);

    // A restarted daemon (a new Runc instance) finds it running.
    const again = new Runc({ root: runcRoot, log: silent, cgroupParent: CGROUP_PARENT });
    assert.deepEqual(await again.adopt(s.id, s.stateDir), { running: true, pid: initPid });

    // pause / resume.
    await runc.pause(s.id);
    assert.equal((await runc.state(s.id))?.status, 'paused');
    await runc.resume(s.id);
    assert.equal((await runc.state(s.id))?.status, 'running');

    // pid 1 ignores SIGTERM (no handler): after the timeout, SIGKILL.
    const t0 = Date.now();
    const st = await withTimeout(again.stop(s.id, s.stateDir, 1), 20_000, 'stop');
    assert.equal(st.exitCode, 137);
    assert.ok(Date.now() - t0 >= 900, 'waited for the timeout before SIGKILL');
    assert.equal(alive(initPid), false);
    await assert.rejects(runc.kill(s.id, 'SIGTERM'), /does not exist|not running/);
    await runc.remove(s.id, s.stateDir);
    assert.equal(fs.existsSync(s.stateDir), false);
    assert.deepEqual(mountLines(s.stateDir), []);
  });

  test('the container outlives a daemon killed with SIGKILL; the next one adopts it and gets its exit', async () => {
    const s = spec(newId(), ['sh', '-c', 'trap "echo got TERM; exit 42" TERM; while :; do sleep 0.1; done']);
    // A throwaway "daemon": starts the container, reports, and is killed while it runs.
    const code = `
      import { Runc } from ${JSON.stringify(fileURLToPath(new URL('../../src/runtime/runc.ts', import.meta.url)))};
      const s = JSON.parse(process.argv[1]);
      const r = new Runc({ root: ${JSON.stringify(runcRoot)}, log: { debug() {}, info() {}, warn() {}, error() {} }, cgroupParent: ${JSON.stringify(CGROUP_PARENT)} });
      const { pid } = await r.start(s);
      r.waitExit(s.id, s.stateDir).then(() => {});
      process.stdout.write(JSON.stringify({ pid }) + '\\n');
      setInterval(() => {}, 1000);
    `;
    const daemon = spawn(process.execPath, ['--input-type=module', '-e', code, JSON.stringify(s)], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(daemon);
    const line = await withTimeout(new Promise<string>((resolve, reject) => {
      let buf = '';
      daemon.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        if (buf.includes('\n')) resolve(buf.split('\n')[0]!);
      });
      daemon.on('exit', (c) => reject(new Error(`daemon exited ${c}`)));
    }), 30_000, 'daemon start');
    const { pid: initPid } = JSON.parse(line) as { pid: number };
    daemon.kill('SIGKILL');
    await new Promise((r) => daemon.once('exit', r));
    await sleep(200);
    assert.ok(alive(initPid), 'container still running after the daemon died');
    const shimPid = Number(fs.readFileSync(path.join(s.stateDir, 'shim.pid'), 'utf8'));
    assert.ok(alive(shimPid), 'shim still running');
    assert.notEqual(Number(fs.readFileSync(`/proc/${shimPid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]), process.pid, 'the shim is not our child');

    const next = new Runc({ root: runcRoot, log: silent, cgroupParent: CGROUP_PARENT });
    assert.deepEqual(await next.adopt(s.id, s.stateDir), { running: true, pid: initPid });
    const exited = next.waitExit(s.id, s.stateDir);
    await next.kill(s.id, 'TERM');
    const st = await withTimeout(exited, 20_000, 'exit of the adopted container');
    assert.equal(st.exitCode, 42);
    assert.equal(fs.readFileSync(next.logPaths(s.stateDir).stdout, 'utf8'), 'got TERM\n');
    await next.remove(s.id, s.stateDir);
    assert.deepEqual(mountLines(s.stateDir), []);
  });

  test('a command that does not exist: start rejects with runc\'s error, nothing left running or mounted', async () => {
    const s = spec(newId(), ['/nonexistent']);
    await assert.rejects(runc.start(s), (e: Error) => {
      assert.match(e.message, /\/nonexistent/);
      assert.match(e.message, /no such file or directory/);
      return true;
    });
    assert.deepEqual(mountLines(s.stateDir), []);
    assert.equal(await runc.state(s.id), null);
    const shimPid = Number(fs.readFileSync(path.join(s.stateDir, 'shim.pid'), 'utf8'));
    for (let i = 0; i < 50 && alive(shimPid); i++) await sleep(50);
    assert.equal(alive(shimPid), false, 'shim gone');
    const logs = runc.logPaths(s.stateDir);
    for (const f of [logs.stdout, logs.stderr]) assert.equal(fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '', '', 'runc\'s error is not container output');
    assert.equal(fs.existsSync(path.join(s.stateDir, 'exit.json')), false);
    // An unknown user fails before runc, the same way.
    await assert.rejects(runc.start(spec(newId(), ['id'], { user: 'nobody' })), /unable to find user nobody/);
    await runc.remove(s.id, s.stateDir);
  });

  test('overlay: writes land in the container\'s upper layer, never in the image', async () => {
    const s = spec(newId(), ['sh', '-c', 'echo new > /written; echo changed > /etc/motd; rm /bin/vi; cat /etc/motd']);
    await runc.start(s);
    const st = await withTimeout(runc.waitExit(s.id, s.stateDir), 20_000, 'exit');
    assert.equal(st.exitCode, 0);
    assert.equal(fs.readFileSync(runc.logPaths(s.stateDir).stdout, 'utf8'), 'changed\n');
    assert.equal(fs.existsSync(path.join(image, 'written')), false);
    assert.equal(fs.readFileSync(path.join(image, 'etc/motd'), 'utf8'), 'from the image\n');
    assert.equal(fs.readlinkSync(path.join(image, 'bin/vi')), 'busybox');
    assert.equal(fs.readFileSync(path.join(s.stateDir, 'upper', 'written'), 'utf8'), 'new\n');
    // A second start of the same container sees its own earlier writes; logs accumulate.
    await runc.cleanup(s.id, s.stateDir);
    await runc.start({ ...s, args: ['cat', '/written'] });
    assert.equal((await withTimeout(runc.waitExit(s.id, s.stateDir), 20_000, 'exit')).exitCode, 0);
    assert.equal(fs.readFileSync(runc.logPaths(s.stateDir).stdout, 'utf8'), 'changed\nnew\n');
    await runc.remove(s.id, s.stateDir);
  });

  test('terminal and stdin: tty output, stdin that ends with the attacher (StdinOnce), stdin kept open', async () => {
    const t = spec(newId(), ['sh', '-c', 'tty; echo to-stderr >&2; exit 2'], { tty: true });
    await runc.start(t);
    assert.equal((await withTimeout(runc.waitExit(t.id, t.stateDir), 20_000, 'exit')).exitCode, 2);
    assert.match(fs.readFileSync(runc.logPaths(t.stateDir).stdout, 'utf8'), /^\/dev\/pts\/\d+\r\nto-stderr\r\n$/);
    await runc.remove(t.id, t.stateDir);

    // `echo hi | docker run -i`: the attacher writes and closes before the container even starts.
    const o = spec(newId(), ['sh', '-c', 'cat; echo eof'], { openStdin: true, stdinOnce: true });
    runc.openStdin(o.stateDir).end('one\ntwo\n');
    await runc.start(o);
    assert.equal((await withTimeout(runc.waitExit(o.id, o.stateDir), 20_000, 'exit')).exitCode, 0);
    assert.equal(fs.readFileSync(runc.logPaths(o.stateDir).stdout, 'utf8'), 'one\ntwo\neof\n');
    await runc.remove(o.id, o.stateDir);

    // `docker run -d -i`: attachers come and go, stdin stays open.
    const k = spec(newId(), ['sh', '-c', 'while read l; do echo "got $l"; done; echo eof'], { openStdin: true });
    await runc.start(k);
    runc.openStdin(k.stateDir).end('a\n');
    await sleep(200);
    runc.openStdin(k.stateDir).end('b\n');
    const out = runc.logPaths(k.stateDir).stdout;
    for (let i = 0; i < 50 && fs.readFileSync(out, 'utf8') !== 'got a\ngot b\n'; i++) await sleep(50);
    assert.equal(fs.readFileSync(out, 'utf8'), 'got a\ngot b\n');
    assert.equal(fs.existsSync(path.join(k.stateDir, 'exit.json')), false, 'still running');
    assert.equal((await withTimeout(runc.stop(k.id, k.stateDir, 0), 20_000, 'stop')).exitCode, 137);
    await runc.remove(k.id, k.stateDir);
  });
});
