// Issue 6 end to end: restart policies, rename, ps (filters, formats, Docker's columns), logs (-f, --tail,
// -t, --since), wait/kill/stop/restart/pause, exec options, run options, and Docker's messages and exit
// codes — through bin/loom and through the unmodified docker CLI, against one loom daemon in a sandbox.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { createSandbox, LOOM, type Result, type Sandbox } from '../helpers/sandbox.ts';
import { ok } from '../helpers/assert.ts';

let sb: Sandbox;
const skip = process.getuid?.() !== 0 ? 'needs root (network namespaces, runc)' : false;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value (a deadline only so that a broken daemon cannot hang the run). */
async function until<T>(fn: () => Promise<T | undefined | false>, what: string, deadlineMs = 20_000): Promise<T> {
  const end = Date.now() + deadlineMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`gave up waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await sleep(100);
  }
}

/** A tiny HTTP client for the outside world's namespace (prints the body, fails on errors). */
const HTTP_GET = `require('http').get(process.argv[1], { timeout: 2000 }, (r) => r.pipe(process.stdout)).on('error', () => process.exit(1)).on('timeout', () => process.exit(1))`;

const inspect = (ref: string, fmt: string) => ok(sb.loom('inspect', '-f', fmt, ref), `inspect ${ref}`);

async function netnsNames(): Promise<string[]> {
  const r = await sb.hostExec(['ip', 'netns', 'list']);
  return r.stdout.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(sb.netnsPrefix));
}

before(async () => {
  if (skip) return;
  sb = await createSandbox({ tag: 'l6' });
  await sb.startDaemon();
  await sb.image('box');
}, { timeout: 120_000 });

after(async () => {
  if (sb) await sb.cleanup();
});

// ---------------------------------------------------------------------------------------------- restart

test('restart policy: killed from the host, the container comes back on its network, reachable by name', { skip }, async () => {
  await ok(sb.docker('network', 'create', 'l6net'));
  await ok(sb.docker('run', '-d', '--name', 'web', '--network', 'l6net', '--restart', 'always', '-p', '8088:80', 'box', 'httpd', '-f', '-p', '80', '-h', '/www'));
  await ok(sb.loom('run', '-d', '--name', 'client', '--network', 'l6net', 'box', 'sleep', '600'));
  assert.equal(await ok(sb.loom('exec', 'client', 'wget', '-qO-', 'http://web/')), 'hello from loom');
  assert.equal(await inspect('web', '{{.HostConfig.RestartPolicy.Name}} {{.RestartCount}}'), 'always 0');
  const pid = await inspect('web', '{{.State.Pid}}');
  await ok(sb.hostExec(['kill', '-9', pid]), 'kill from the host');
  await until(async () => (await inspect('web', '{{.State.Running}} {{.RestartCount}} {{.State.Pid}}')).match(/^true 1 (\d+)$/)?.[1] !== pid && (await inspect('web', '{{.State.Running}} {{.RestartCount}}')) === 'true 1', 'web restarted');
  assert.notEqual(await inspect('web', '{{.State.Pid}}'), pid);
  assert.match(await inspect('web', '{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}}{{end}}'), /^l6net=\d+\.\d+\.\d+\.\d+$/);
  // the name resolves to its (possibly new) address from another container, and it serves again
  const ip = await inspect('web', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}');
  assert.match(await ok(sb.loom('exec', 'client', 'ping', '-c1', '-W2', 'web')), new RegExp(`^PING web \\(${ip.replace(/\./g, '\\.')}\\)`));
  assert.equal(await until(async () => (await sb.loom('exec', 'client', 'wget', '-qO-', 'http://web/')).stdout.trim(), 'web serving'), 'hello from loom');
  assert.ok((await netnsNames()).includes(`${sb.netnsPrefix}web`));
  // its published port is back too, from the outside world
  assert.equal(await until(async () => (await sb.extExec([process.execPath, '-e', HTTP_GET, 'http://198.51.100.1:8088/'])).stdout.trim(), 'published port'), 'hello from loom');
  assert.equal(await inspect('web', '{{(index (index .NetworkSettings.Ports "80/tcp") 0).HostPort}}'), '8088');
  // the docker CLI sees the same
  assert.equal((await ok(sb.docker('inspect', '-f', '{{.RestartCount}} {{.State.Status}}', 'web'))), '1 running');
});

test('on-failure:N gives up after N restarts; RestartCount; exit code kept', { skip }, async () => {
  await ok(sb.loom('run', '-d', '--name', 'flaky', '--restart', 'on-failure:2', 'box', 'sh', '-c', 'echo run; exit 3'));
  await until(async () => (await inspect('flaky', '{{.State.Status}} {{.RestartCount}}')) === 'exited 2', 'flaky to give up');
  assert.equal(await inspect('flaky', '{{.State.ExitCode}} {{.State.Restarting}} {{.HostConfig.RestartPolicy.MaximumRetryCount}}'), '3 false 2');
  // each run appended to the same log
  assert.equal((await sb.loom('logs', 'flaky')).stdout, 'run\nrun\nrun\n');
  // a success does not restart an on-failure container
  await ok(sb.docker('run', '-d', '--name', 'fine', '--restart', 'on-failure', 'box', 'true'));
  await until(async () => (await inspect('fine', '{{.State.Status}}')) === 'exited', 'fine to exit');
  assert.equal(await inspect('fine', '{{.RestartCount}} {{.State.ExitCode}}'), '0 0');
  // a manual start begins the count anew (Docker resets RestartCount)
  await ok(sb.loom('start', 'flaky'));
  await until(async () => (await inspect('flaky', '{{.State.Status}} {{.RestartCount}}')) === 'exited 2', 'flaky to give up again');
  assert.equal((await sb.loom('logs', 'flaky')).stdout, 'run\n'.repeat(6));
  await ok(sb.loom('rm', 'flaky', 'fine'));
});

test('a restarting container shows as restarting; stop cancels the restart; update --restart', { skip }, async () => {
  await ok(sb.loom('run', '-d', '--name', 'loop', '--restart', 'always', 'box', 'sh', '-c', 'exit 1'));
  // the back-off grows (Docker's 100 ms doubling): it is seen restarting at some point
  const st = await until(async () => {
    const s = await inspect('loop', '{{.State.Status}} {{.State.Running}} {{.State.Restarting}} {{.State.ExitCode}}');
    return s.startsWith('restarting') ? s : undefined;
  }, 'loop restarting');
  assert.equal(st, 'restarting true true 1');
  const ps = await ok(sb.loom('ps', '--filter', 'name=^loop$', '--format', '{{.Status}}|{{.State}}'));
  assert.match(ps, /^(Restarting \(1\) (Less than a second|\d+ seconds?) ago\|restarting|Up (Less than a second|\d+ seconds?)\|running)$/);
  await ok(sb.loom('stop', 'loop'));
  const after = await inspect('loop', '{{.State.Status}} {{.State.Restarting}}');
  assert.equal(after, 'exited false');
  const n = await inspect('loop', '{{.RestartCount}}');
  await sleep(500);
  assert.equal(await inspect('loop', '{{.RestartCount}}'), n, 'no restart after stop');
  // update --restart, through both CLIs
  assert.equal(await ok(sb.loom('update', '--restart', 'on-failure:5', 'loop')), 'loop');
  assert.equal(await inspect('loop', '{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}'), 'on-failure:5');
  assert.equal(await ok(sb.docker('update', '--restart', 'unless-stopped', 'loop')), 'loop');
  assert.equal(await inspect('loop', '{{.HostConfig.RestartPolicy.Name}}'), 'unless-stopped');
  let r = await sb.docker('update', '--restart', 'sometimes', 'loop');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /Error response from daemon: invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'/);
  r = await sb.loom('update', '--restart', 'always:3', 'loop');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /invalid restart policy: maximum retry count can only be used with 'on-failure'/);
  r = await sb.docker('run', '-d', '--restart', 'sometimes', 'box', 'true');
  assert.equal(r.code, 125);
  assert.match(r.stderr, /^docker: Error response from daemon: invalid restart policy: unknown policy 'sometimes'/);
  for (const cli of ['docker', 'loom'] as const) {
    r = await sb[cli]('run', '--rm', '--restart', 'always', 'box', 'true');
    assert.equal(r.code, 125);
    assert.equal(r.stderr, `${cli}: conflicting options: cannot specify both --restart and --rm\n\nRun '${cli} run --help' for more information\n`);
  }
  await ok(sb.loom('rm', 'loop'));
});

test('daemon SIGKILL and restart: always and unless-stopped containers are back, always also when a user stopped it', { skip }, async () => {
  await ok(sb.loom('run', '-d', '--name', 'keep', '--restart', 'always', 'box', 'sleep', '600'));
  await ok(sb.loom('run', '-d', '--name', 'keep-stopped', '--restart', 'always', 'box', 'sleep', '600'));
  await ok(sb.loom('run', '-d', '--name', 'us-stopped', '--restart', 'unless-stopped', 'box', 'sleep', '600'));
  await ok(sb.loom('run', '-d', '--name', 'us-run', '--restart', 'unless-stopped', 'box', 'sleep', '600'));
  await ok(sb.loom('stop', '-t', '0', 'keep-stopped', 'us-stopped'));
  const pids = [await inspect('keep', '{{.State.Pid}}'), await inspect('us-run', '{{.State.Pid}}')];
  await sb.stopDaemon('SIGKILL');
  // these die too while the daemon is away
  await ok(sb.hostExec(['kill', '-9', ...pids]));
  await sb.startDaemon();
  await until(async () => (await inspect('keep', '{{.State.Running}}')) === 'true', 'keep back');
  await until(async () => (await inspect('us-run', '{{.State.Running}}')) === 'true', 'us-run back');
  assert.notEqual(await inspect('keep', '{{.State.Pid}}'), pids[0]);
  assert.equal(await inspect('keep-stopped', '{{.State.Running}} {{.RestartCount}}'), 'true 0');
  assert.equal(await inspect('us-stopped', '{{.State.Status}}'), 'exited');
  // web (always, user network) was running all along and still serves by name
  assert.equal(await until(async () => (await sb.loom('exec', 'client', 'wget', '-qO-', 'http://web/')).stdout.trim(), 'web serving'), 'hello from loom');
  await ok(sb.loom('rm', '-f', 'keep', 'keep-stopped', 'us-stopped', 'us-run'));
});

// ---------------------------------------------------------------------------------------------- rename

test('rename: name, DNS, ip netns name and links follow', { skip }, async () => {
  await ok(sb.loom('run', '-d', '--name', 'old', '--network', 'l6net', 'box', 'sleep', '600'));
  const id = await inspect('old', '{{.Id}}');
  assert.ok((await netnsNames()).includes(`${sb.netnsPrefix}old`));
  await ok(sb.loom('rename', 'old', 'newer'));
  assert.equal(await inspect(id, '{{.Name}}'), '/newer');
  const nss = await netnsNames();
  assert.ok(nss.includes(`${sb.netnsPrefix}newer`), `netns renamed: ${nss}`);
  assert.ok(!nss.includes(`${sb.netnsPrefix}old`));
  const ip = await inspect('newer', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}');
  assert.match(await ok(sb.loom('exec', 'client', 'ping', '-c1', '-W2', 'newer')), new RegExp(`^PING newer \\(${ip.replace(/\./g, '\\.')}\\)`));
  assert.notEqual((await sb.loom('exec', 'client', 'nslookup', '-timeout=1', '-retry=1', 'old')).code, 0, 'the old name is gone');
  // the namespace under its new name is the container's
  assert.match(await ok(sb.hostExec(['ip', 'netns', 'exec', `${sb.netnsPrefix}newer`, 'ip', '-o', '-4', 'addr', 'show', 'eth0'])), new RegExp(ip.replace(/\./g, '\\.')));
  // docker rename; errors as Docker words them
  await ok(sb.docker('rename', 'newer', 'newest'));
  let r = await sb.docker('rename', 'newest', 'client');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^Error response from daemon: Conflict\. The container name "\/client" is already in use by container "[0-9a-f]{64}"\. You have to remove \(or rename\) that container to be able to reuse that name\.\nError: failed to rename container named newest\n$/);
  r = await sb.loom('rename', 'nosuch', 'x');
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'Error response from daemon: No such container: nosuch\nError: failed to rename container named nosuch\n');
  r = await sb.loom('rename', 'newest', 'newest');
  assert.match(r.stderr, /Renaming a container with the same name as its current name/);
  // a stopped container renames too, and starts under its new name
  await ok(sb.loom('stop', '-t', '0', 'newest'));
  await ok(sb.loom('rename', 'newest', 'again'));
  await ok(sb.loom('start', 'again'));
  assert.ok((await netnsNames()).includes(`${sb.netnsPrefix}again`));
  // links on the default bridge follow a rename of the linked container
  await ok(sb.loom('run', '-d', '--name', 'db', 'box', 'sleep', '600'));
  await ok(sb.loom('run', '-d', '--name', 'app', '--link', 'db:database', 'box', 'sleep', '600'));
  await ok(sb.loom('rename', 'db', 'db2'));
  assert.match(await inspect('app', '{{json .HostConfig.Links}}'), /db2/);
  await ok(sb.loom('restart', '-t', '0', 'app'));
  assert.match(await ok(sb.loom('exec', 'app', 'cat', '/etc/hosts')), /\tdatabase\b/);
  await ok(sb.loom('exec', 'app', 'ping', '-c1', '-W2', 'database'));
  await ok(sb.loom('rm', '-f', 'again', 'db2', 'app'));
});

// ---------------------------------------------------------------------------------------------- ps

/** The output without its clock: "3 seconds ago", "Up 2 seconds" become T (and the padding that went with them). */
const timeless = (s: string) => s.replace(/(Less than a second|About a minute|About an hour|\d+ (seconds?|minutes?|hours?|days?|weeks?|months?|years?))/g, 'T').replace(/ {2,}/g, '  ');

/**
 * loom's output equals docker's for the same arguments. Both print the daemon's texts, but the two CLIs
 * ask at slightly different moments, so "N seconds" may differ when a second boundary falls in between:
 * a few attempts, then the comparison without the clock.
 */
async function samePs(...args: string[]): Promise<string> {
  let l = '', d = '';
  for (let i = 0; i < 4; i++) {
    [d, l] = await Promise.all([ok(sb.docker('ps', ...args)), ok(sb.loom('ps', ...args))]);
    if (l === d) return l;
  }
  assert.equal(timeless(l), timeless(d), `ps ${args.join(' ')} differs\nloom:\n${l}\ndocker:\n${d}`);
  return l;
}

/** Every line's cells start where the header's do (tabwriter alignment). */
function assertAligned(table: string): void {
  const [head, ...rows] = table.split('\n');
  const starts = [...head!.matchAll(/(?:^|   )(\S)/g)].map((m) => m.index! + m[0].length - 1);
  for (const r of rows) for (const at of starts.slice(1)) assert.match(r.slice(at - 3, at), /^ {3}$/, `column at ${at} in ${JSON.stringify(r)}`);
}

test('ps: Docker\'s columns, status texts, PORTS, and the same output as the docker CLI', { skip }, async () => {
  await ok(sb.loom('run', '-d', '--name', 'pweb', '-p', '8080:80', '--label', 'tier=front', '--label', 'team=a', 'box', 'httpd', '-f', '-p', '80', '-h', '/www'));
  await ok(sb.loom('run', '-d', '--name', 'prange', '-p', '9000-9001:9000-9001/udp', '--expose', '7000', 'box', 'sleep', '600'));
  assert.equal((await sb.loom('run', '--name', 'pdone', 'box', 'sh', '-c', 'exit 4')).code, 4);
  await ok(sb.loom('create', '--name', 'pnew', '--label', 'tier=back', 'box', 'echo', 'hello world'));
  await ok(sb.loom('network', 'create', 'psnet'));
  await ok(sb.loom('create', '--name', 'pnet', '--network', 'psnet', 'box', 'true'));
  const table = await samePs('-a');
  assertAligned(table);
  const lines = table.split('\n');
  assert.match(lines[0]!, /^CONTAINER ID   IMAGE     COMMAND +CREATED +STATUS +PORTS +NAMES$/);
  const row = (name: string) => lines.find((l) => l.endsWith(` ${name}`)) ?? '';
  assert.match(row('pweb'), /^[0-9a-f]{12}   box       "httpd -f -p 80 -h \/…"   .* ago +Up (Less than a second|\d+ seconds?) +0\.0\.0\.0:8080->80\/tcp(, \[::\]:8080->80\/tcp)? +pweb$/);
  assert.match(row('prange'), /7000\/tcp, 0\.0\.0\.0:9000-9001->9000-9001\/udp/);
  assert.match(row('pdone'), /Exited \(4\) (Less than a second|\d+ seconds?) ago/);
  assert.match(row('pnew'), /"echo 'hello world'" .* Created /);
  // without -a: running containers only, newest first
  const running = (await samePs('--format', '{{.Names}}')).split('\n');
  assert.ok(running.indexOf('prange') < running.indexOf('pweb'));
  assert.ok(!running.includes('pdone') && !running.includes('pnew'));
  // formats
  await samePs('-a', '--no-trunc');
  await samePs('-a', '--format', 'table {{.Names}}\t{{.Status}}\t{{.Label "tier"}}');
  await samePs('-a', '--format', '{{.ID}} {{.Names}} {{.Labels}} {{.Networks}} {{.State}} {{.Ports}} {{.Command}}');
  await samePs('-a', '--format', 'json');
  await samePs('-a', '--format', '{{json .}}');
  await samePs('-a', '--format', 'table {{.ID}}\t{{.Image}}\t{{.CreatedAt}}\t{{.RunningFor}}\t{{.Mounts}}\t{{.Size}}');
  await samePs('-aq');
  await samePs('-a', '-q', '--no-trunc');
  await samePs('-n', '2');
  await samePs('-l', '--format', '{{.Names}}');
  assert.equal(await ok(sb.loom('ps', '-l', '--format', '{{.Names}}')), 'pnet');
  assert.deepEqual((await ok(sb.loom('ps', '-n', '2', '--format', '{{.Names}}'))).split('\n'), ['pnet', 'pnew']);
  // filters, each through both CLIs
  const names = async (...f: string[]) => {
    const s = await samePs('-a', '--format', '{{.Names}}', ...f.flatMap((x) => ['--filter', x]));
    return s ? s.split('\n').sort() : [];
  };
  const psnetId = await ok(sb.loom('network', 'inspect', '-f', '{{.Id}}', 'psnet'));
  const id = await inspect('pweb', '{{.Id}}');
  const cases: [string[], string[]][] = [
    [['name=pweb'], ['pweb']], [['name=^p.*w'], ['pnew', 'pweb']], [['name=pn'], ['pnet', 'pnew']],
    [['label=tier'], ['pnew', 'pweb']], [['label=tier=front'], ['pweb']], [['label=tier', 'label=team=a'], ['pweb']],
    [['status=exited'], ['pdone']], [['status=created'], ['pnet', 'pnew']], [['exited=4'], ['pdone']],
    [['publish=8080'], ['pweb']], [['publish=9000-9001/udp'], ['prange']], [['expose=80', 'name=^p'], ['pweb']],
    [['expose=7000'], ['prange']], [['network=psnet'], ['pnet']], [[`network=${psnetId.slice(0, 12)}`], ['pnet']],
    [['network=bridge', 'name=^p'], ['pdone', 'pnew', 'prange', 'pweb']], [['ancestor=box', 'name=^p'], ['pdone', 'pnet', 'pnew', 'prange', 'pweb']],
    [[`id=${id.slice(0, 10)}`], ['pweb']], [['since=pdone'], ['pnet', 'pnew']], [['before=prange', 'name=^p'], ['pweb']],
  ];
  // a few at a time: each runs both CLIs
  for (let i = 0; i < cases.length; i += 4) {
    await Promise.all(cases.slice(i, i + 4).map(async ([f, want]) => assert.deepEqual(await names(...f), want, `filter ${f.join(' ')}`)));
  }
  // bad filters: Docker's words
  let r = await sb.docker('ps', '--filter', 'colour=red');
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'Error response from daemon: invalid filter \'colour\'\n');
  r = await sb.loom('ps', '--filter', 'colour=red');
  assert.equal(r.stderr, 'Error response from daemon: invalid filter \'colour\'\n');
  r = await sb.loom('ps', '--filter', 'status=sleeping');
  assert.match(r.stderr, /invalid filter 'status=sleeping': invalid value for state \(sleeping\): must be one of created, running, paused, restarting, removing, exited, dead/);
  r = await sb.loom('ps', '--format', '{{.ID');
  assert.equal(r.code, 1);
  assert.equal(r.stderr, (await sb.docker('ps', '--format', '{{.ID')).stderr);
  await ok(sb.loom('rm', '-f', 'pweb', 'prange', 'pdone', 'pnew', 'pnet'));
  await ok(sb.loom('network', 'rm', 'psnet'));
});

// ---------------------------------------------------------------------------------------------- logs
// Lines of the two streams are ordered by the time the daemon saw them (the shim writes them to two files
// directly), so the script leaves a little time between lines of different streams.

test('logs: --tail, -t, --since across both streams; -f streams and ends when the container exits', { skip }, async () => {
  await ok(sb.loom('run', '-d', '--name', 'chat', 'box', 'sh', '-c', 'echo one; sleep 0.05; echo two >&2; sleep 0.05; echo three; sleep 1.2; echo four; sleep 0.05; echo five >&2; sleep 600'));
  await until(async () => (await sb.loom('logs', 'chat')).stderr.includes('five'), 'all lines');
  let r = await sb.loom('logs', 'chat');
  assert.equal(r.stdout, 'one\nthree\nfour\n');
  assert.equal(r.stderr, 'two\nfive\n');
  // --tail counts lines of both streams together
  r = await sb.docker('logs', '--tail', '2', 'chat');
  assert.equal(r.stdout, 'four\n');
  assert.equal(r.stderr, 'five\n');
  r = await sb.loom('logs', '-n', '3', 'chat');
  assert.equal(r.stdout, 'three\nfour\n');
  assert.equal(r.stderr, 'five\n');
  assert.equal((await sb.loom('logs', '--tail', '0', 'chat')).stdout, '');
  // -t: Docker's fixed-width RFC 3339 times, in the order the lines were written
  r = await sb.docker('logs', '-t', 'chat');
  const stamped = r.stdout.trim().split('\n');
  assert.equal(stamped.length, 3);
  for (const l of stamped) assert.match(l, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (one|three|four)$/);
  const t3 = Date.parse(stamped[1]!.split(' ')[0]!);
  const t4 = Date.parse(stamped[2]!.split(' ')[0]!);
  assert.ok(t4 > t3, 'four after three');
  // --since: the time of "four" leaves out what came before it (one second apart)
  const since = stamped[2]!.split(' ')[0]!;
  for (const cli of ['docker', 'loom'] as const) {
    r = await sb[cli]('logs', '--since', since, 'chat');
    assert.equal(r.stdout, 'four\n', `${cli} --since`);
    assert.equal(r.stderr, 'five\n');
    r = await sb[cli]('logs', '--until', stamped[1]!.split(' ')[0]!, 'chat');
    assert.equal(r.stdout, 'one\nthree\n', `${cli} --until`);
  }
  assert.equal((await sb.loom('logs', '--since', '1h', 'chat')).stdout, 'one\nthree\nfour\n');
  await ok(sb.loom('rm', '-f', 'chat'));

  // -f: lines arrive while the container runs, and the command ends when it exits
  for (const cli of ['loom', 'docker'] as const) {
    const name = `tick-${cli}`;
    await ok(sb.loom('run', '-d', '--name', name, 'box', 'sh', '-c', 'echo start; i=0; while [ ! -e /tmp/stop ]; do i=$((i+1)); echo tick $i; sleep 0.1; done; echo bye; echo err >&2'));
    const argv = cli === 'loom' ? [LOOM, 'logs', '-f', name] : ['docker', 'logs', '-f', name];
    const child = spawn(argv[0]!, argv.slice(1), { env: sb.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    child.stdout.on('data', (b: Buffer) => (out += b));
    child.stderr.on('data', (b: Buffer) => (err += b));
    const exited = new Promise<number>((res) => child.on('close', (c) => res(c ?? -1)));
    await until(async () => /tick 3\n/.test(out), `${cli} logs -f streaming`);
    assert.equal(child.exitCode, null, 'still following');
    await ok(sb.loom('exec', name, 'touch', '/tmp/stop'));
    assert.equal(await exited, 0);
    assert.match(out, /^start\ntick 1\n(tick \d+\n)+bye\n$/);
    assert.equal(err, 'err\n');
    await ok(sb.loom('rm', name));
  }
  // a container that is not running: -f prints what there is and ends
  await ok(sb.loom('run', '--name', 'said', 'box', 'echo', 'said it'));
  assert.equal((await sb.docker('logs', '-f', 'said')).stdout, 'said it\n');
  await ok(sb.loom('rm', 'said'));
});

// ---------------------------------------------------------------------------------------------- wait, kill, stop, restart, pause

test('wait, kill -s, stop -t, restart -t, pause/unpause', { skip }, async () => {
  // a shell that reports the signals it gets
  const trap = 'trap "echo got-HUP" HUP; trap "echo got-TERM; exit 7" TERM; echo ready; while true; do sleep 0.1; done';
  await ok(sb.loom('run', '-d', '--name', 'sig', 'box', 'sh', '-c', trap));
  await until(async () => (await sb.loom('logs', 'sig')).stdout.includes('ready'), 'sig ready');
  assert.equal(await ok(sb.docker('kill', '-s', 'HUP', 'sig')), 'sig');
  await until(async () => (await sb.loom('logs', 'sig')).stdout.includes('got-HUP'), 'HUP delivered');
  assert.equal(await inspect('sig', '{{.State.Running}}'), 'true');
  assert.equal(await ok(sb.loom('kill', '--signal', 'SIGTERM', 'sig')), 'sig');
  assert.equal(await ok(sb.loom('wait', 'sig')), '7');
  assert.equal(await inspect('sig', '{{.State.ExitCode}}'), '7');
  let r = await sb.loom('kill', '-s', 'BOGUS', 'sig');
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'Error response from daemon: Invalid signal: BOGUS\n');
  r = await sb.docker('kill', 'sig');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^Error response from daemon: container [0-9a-f]{64} is not running\n$/);
  // stop -t: a process that ignores SIGTERM is killed after the timeout (137)
  await ok(sb.loom('run', '-d', '--name', 'stubborn', 'box', 'sh', '-c', 'trap "" TERM; echo ready; while true; do sleep 0.1; done'));
  await until(async () => (await sb.loom('logs', 'stubborn')).stdout.includes('ready'), 'stubborn ready');
  assert.equal(await ok(sb.docker('stop', '-t', '1', 'stubborn')), 'stubborn');
  assert.equal(await inspect('stubborn', '{{.State.ExitCode}}'), '137');
  // wait on several, as docker prints them
  await ok(sb.loom('start', 'stubborn'));
  const w = sb.docker('wait', 'stubborn', 'sig');
  await ok(sb.loom('kill', 'stubborn'));
  assert.deepEqual((await ok(w)).split('\n'), ['137', '7']);
  // restart -t gives the container a new process; stop of a stopped container is fine
  await ok(sb.loom('start', 'stubborn'));
  const pid0 = await inspect('stubborn', '{{.State.Pid}}');
  assert.equal(await ok(sb.loom('restart', '-t', '0', 'stubborn')), 'stubborn');
  assert.notEqual(await inspect('stubborn', '{{.State.Pid}}'), pid0);
  assert.equal(await inspect('stubborn', '{{.State.Running}}'), 'true');
  // pause / unpause (cgroup freezer via runc)
  assert.equal(await ok(sb.docker('pause', 'stubborn')), 'stubborn');
  assert.equal(await inspect('stubborn', '{{.State.Status}} {{.State.Paused}}'), 'paused true');
  assert.match(await ok(sb.loom('ps', '--filter', 'name=stubborn', '--format', '{{.Status}}')), /^Up .* \(Paused\)$/);
  r = await sb.loom('exec', 'stubborn', 'true');
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'Error response from daemon: Container stubborn is paused, unpause the container before exec\n');
  r = await sb.loom('pause', 'stubborn');
  assert.match(r.stderr, /^Error response from daemon: Container [0-9a-f]{64} is already paused\n$/);
  r = await sb.loom('rm', 'stubborn');
  assert.equal(r.stderr, 'Error response from daemon: cannot remove container "stubborn": container is paused and must be unpaused first\n');
  r = await sb.docker('start', 'stubborn');
  assert.match(r.stderr, /cannot start a paused container, try unpause instead/);
  assert.equal(await ok(sb.loom('unpause', 'stubborn')), 'stubborn');
  assert.equal(await inspect('stubborn', '{{.State.Status}}'), 'running');
  r = await sb.docker('unpause', 'stubborn');
  assert.match(r.stderr, /^Error response from daemon: Container [0-9a-f]{64} is not paused\n$/);
  r = await sb.loom('rm', 'stubborn');
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'Error response from daemon: cannot remove container "stubborn": container is running: stop the container before removing or force remove\n');
  await ok(sb.loom('rm', '-f', 'stubborn', 'sig'));
});

// ---------------------------------------------------------------------------------------------- exec

test('exec: -e -w -u -d, exit codes passed through, Docker\'s errors', { skip }, async () => {
  await ok(sb.loom('run', '-d', '--name', 'ex', '-e', 'FROM_RUN=1', 'box', 'sleep', '600'));
  for (const cli of ['loom', 'docker'] as const) {
    const x = (...a: string[]) => sb[cli]('exec', ...a);
    assert.equal(await ok(x('-e', 'A=1', '-e', 'B=two words', 'ex', 'sh', '-c', 'echo "$A|$B|$FROM_RUN"')), '1|two words|1');
    assert.equal(await ok(x('-w', '/www', 'ex', 'pwd')), '/www');
    assert.equal(await ok(x('-u', 'nobody', 'ex', 'id', '-u')), '65534');
    assert.equal(await ok(x('-u', '1234:5678', 'ex', 'sh', '-c', 'echo $(id -u):$(id -g)')), '1234:5678');
    let r = await x('ex', 'sh', '-c', 'echo out; echo err >&2; exit 42');
    assert.equal(r.code, 42);
    assert.equal(r.stdout, 'out\n');
    assert.equal(r.stderr, 'err\n');
    r = await x('-d', 'ex', 'sh', '-c', `sleep 0.2; echo detached > /tmp/${cli}`);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, '');
    await until(async () => (await sb.loom('exec', 'ex', 'cat', `/tmp/${cli}`)).stdout === 'detached\n', 'detached exec ran');
    r = await x('ex', 'nosuchcommand');
    assert.equal(r.code, 127, `${cli}: ${r.stderr}${r.stdout}`);
    assert.match(r.stdout + r.stderr, /executable file not found in \$PATH/);
    r = await x('-u', 'nosuchuser', 'ex', 'true');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /unable to find user nosuchuser: no matching entries in passwd file/);
    r = await x('nosuchctr', 'true');
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'Error response from daemon: No such container: nosuchctr\n');
    // stdin with -i
    const i = await runIn(cli, 'piped\n', 'exec', '-i', 'ex', 'cat');
    assert.equal(i.stdout, 'piped\n');
  }
  await ok(sb.loom('stop', '-t', '0', 'ex'));
  const r = await sb.docker('exec', 'ex', 'true');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^Error response from daemon: container [0-9a-f]{64} is not running\n$/);
  await ok(sb.loom('rm', 'ex'));
});

function runIn(cli: 'loom' | 'docker', input: string, ...args: string[]): Promise<Result> {
  return cli === 'loom' ? sb.loomIn(input, ...args) : new Promise((resolve) => {
    const c = spawn('docker', args, { env: sb.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    c.stdout.on('data', (b: Buffer) => (stdout += b));
    c.stderr.on('data', (b: Buffer) => (stderr += b));
    c.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    c.stdin.end(input);
  });
}

// ---------------------------------------------------------------------------------------------- run options

test('run --label --env-file --workdir --user --entrypoint --init --add-host', { skip }, async () => {
  const envFile = path.join(sb.dir, 'l6.env');
  fs.writeFileSync(envFile, '# comment\nFILE_A=from file\n  FILE_B=2\nL6_HOST_VAR\nL6_UNSET_VAR\n');
  process.env.L6_HOST_VAR = 'from host';
  for (const cli of ['loom', 'docker'] as const) {
    const run = (...a: string[]) => ok(sb[cli]('run', '--rm', ...a), `${cli} run ${a.join(' ')}`);
    assert.equal(await run('--env-file', envFile, '-e', 'FILE_B=override', 'box', 'sh', '-c', 'echo "$FILE_A|$FILE_B|$L6_HOST_VAR|${L6_UNSET_VAR-unset}"'), 'from file|override|from host|unset');
    assert.equal(await run('--workdir', '/made/for/it', 'box', 'pwd'), '/made/for/it');
    assert.equal(await run('-w', '/www', 'box', 'cat', 'index.html'), 'hello from loom');
    assert.equal(await run('--user', 'nobody', 'box', 'id', '-u'), '65534');
    assert.equal(await run('-u', '4321', 'box', 'id', '-u'), '4321');
    assert.equal(await run('--entrypoint', 'echo', 'box', 'via', 'entrypoint'), 'via entrypoint');
    assert.equal(await run('--entrypoint', '/bin/sh', 'box', '-c', 'echo $0'), '/bin/sh');
    // --init: docker-init is PID 1, the command its child
    assert.equal(await run('--init', 'box', 'sh', '-c', 'cat /proc/1/cmdline | tr "\\0" " "'), '/sbin/docker-init -- sh -c cat /proc/1/cmdline | tr "\\0" " "');
    const hosts = await run('--add-host', 'db.example:10.1.2.3', '--add-host', 'v6host=[2001:db8::1]', 'box', 'cat', '/etc/hosts');
    assert.match(hosts, /^10\.1\.2\.3\tdb\.example$/m);
    assert.match(hosts, /^2001:db8::1\tv6host$/m);
    assert.equal(await run('--add-host', 'gw:host-gateway', 'box', 'sh', '-c', 'grep -w gw /etc/hosts | cut -f1'), '172.17.0.1');
  }
  await ok(sb.docker('run', '-d', '--name', 'labelled', '--label', 'a=1', '--label', 'b', '-l', 'c=x=y', 'box', 'sleep', '600'));
  assert.equal(await inspect('labelled', '{{json .Config.Labels}}'), '{"a":"1","b":"","c":"x=y"}');
  await ok(sb.loom('rm', '-f', 'labelled'));
  // a bad --add-host is refused by the CLI, as docker does
  for (const cli of ['docker', 'loom'] as const) {
    const r = await sb[cli]('run', '--add-host', 'nohost', 'box', 'true');
    assert.equal(r.code, 125);
    assert.match(r.stderr, /^invalid argument "nohost" for "--add-host" flag: bad format for add-host: "nohost"\n/);
  }
});

// ---------------------------------------------------------------------------------------------- errors and exit codes

test('errors and exit codes as Docker\'s', { skip }, async () => {
  await ok(sb.loom('run', '-d', '--name', 'errc', 'box', 'sleep', '600'));
  for (const cli of ['docker', 'loom'] as const) {
    // the container's own code passes through
    let r = await sb[cli]('run', '--rm', 'box', 'sh', '-c', 'exit 9');
    assert.equal(r.code, 9);
    // command not found: 127; not executable: 126
    r = await sb[cli]('run', '--rm', 'box', 'nosuchcmd');
    assert.equal(r.code, 127, r.stderr);
    assert.match(r.stderr, new RegExp(`^${cli}: Error response from daemon: .*executable file not found in \\$PATH.*\\n\\nRun '${cli} run --help' for more information\\n$`, 's'));
    r = await sb[cli]('run', '--rm', 'box', '/www/index.html');
    assert.equal(r.code, 126, r.stderr);
    r = await sb[cli]('run', '--rm', 'box', '/etc');
    assert.equal(r.code, 126, r.stderr);
    // daemon errors: 125
    r = await sb[cli]('run', '--rm', '--network', 'nosuchnet', 'box', 'true');
    assert.equal(r.code, 125);
    r = await sb[cli]('run', '-d', '--name', 'errc', 'box', 'true');
    assert.equal(r.code, 125);
    assert.match(r.stderr, new RegExp(`^${cli}: Error response from daemon: Conflict\\. The container name "/errc" is already in use by container "[0-9a-f]{64}"\\. You have to remove \\(or rename\\) that container to be able to reuse that name\\.\\n\\nRun '${cli} run --help' for more information\\n$`));
    // per-container verbs: exit 1, one line per failure
    r = await sb[cli]('stop', 'nope1', 'nope2');
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'Error response from daemon: No such container: nope1\nError response from daemon: No such container: nope2\n');
    r = await sb[cli]('start', 'nope');
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'Error response from daemon: No such container: nope\nError: failed to start containers: nope\n');
    for (const v of ['kill', 'rm', 'pause', 'unpause', 'wait', 'restart']) {
      r = await sb[cli](v, 'nope');
      assert.equal(r.code, 1, `${cli} ${v}`);
      assert.equal(r.stderr, 'Error response from daemon: No such container: nope\n', `${cli} ${v}`);
    }
    r = await sb[cli]('rm', '-f', 'nope');
    assert.equal(r.code, 0, `${cli} rm -f of nothing`);
    r = await sb[cli]('logs', 'nope');
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'Error response from daemon: No such container: nope\n');
    // usage mistakes
    r = await sb[cli]('stop');
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `${cli}: '${cli} stop' requires at least 1 argument\n\nUsage:  ${cli} stop [OPTIONS] CONTAINER [CONTAINER...]\n\nSee '${cli} stop --help' for more information\n`);
    r = await sb[cli]('logs');
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `${cli}: '${cli} logs' requires 1 argument\n\nUsage:  ${cli} logs [OPTIONS] CONTAINER\n\nRun '${cli} logs --help' for more information\n`);
    r = await sb[cli]('ps', '--bogus');
    assert.equal(r.code, 125);
    assert.equal(r.stderr, `unknown flag: --bogus\n\nUsage:  ${cli} ps [OPTIONS]\n\nRun '${cli} ps --help' for more information\n`);
  }
  // start of a running container is fine (304), as is stop of a stopped one
  assert.equal(await ok(sb.docker('start', 'errc')), 'errc');
  await ok(sb.loom('create', '--name', 'idle', 'box', 'true'));
  assert.equal(await ok(sb.loom('stop', 'idle')), 'idle');
  assert.equal(await ok(sb.loom('wait', 'idle')), '0');
  await ok(sb.loom('rm', 'idle'));
  // a failed start leaves the container created with Docker's exit code
  const r = await sb.loom('run', '--name', 'broken', 'box', 'nosuchcmd');
  assert.equal(r.code, 127);
  assert.equal(await inspect('broken', '{{.State.Status}} {{.State.ExitCode}}'), 'created 127');
  assert.match(await inspect('broken', '{{.State.Error}}'), /executable file not found/);
  await ok(sb.loom('rm', '-f', 'broken', 'errc'));
});

test('everything removed: no namespace of this test left', { skip }, async () => {
  await ok(sb.loom('rm', '-f', 'web', 'client'));
  await ok(sb.loom('network', 'rm', 'l6net'));
  assert.deepEqual(await ok(sb.loom('ps', '-aq')), '');
  assert.deepEqual(await netnsNames(), []);
});
