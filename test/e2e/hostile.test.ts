// Hostile and malformed input against a real daemon in a sandbox (issue 12): requests that used to end or
// hang the daemon, wrong JSON types, bodies too deep or too big, non-JSON bodies, malformed query values,
// addresses Docker's IPAM holds back, names too long for a file, and who may use the socket. Every refusal
// is a 4xx with a JSON message, nothing is left behind, and the daemon still answers afterwards.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import http from 'node:http';
import { createSandbox, runCmd, type Sandbox } from '../helpers/sandbox.ts';
import { ok } from '../helpers/assert.ts';

let sb: Sandbox;
const skip = process.getuid?.() !== 0 ? 'needs root (network namespaces, runc, useradd)' : false;

before(async () => {
  if (skip) return;
  sb = await createSandbox({ tag: 'hostile' });
  await sb.startDaemon();
  await sb.image('box');
}, { timeout: 120_000 });

after(async () => {
  if (sb) await sb.cleanup();
});

/** One raw HTTP/1.1 exchange on the socket: what a client that is no HTTP library can send. */
function raw(text: string | Buffer): Promise<string> {
  return new Promise((resolve) => {
    const s = net.createConnection(sb.socket);
    let out = '';
    s.on('data', (d) => (out += d.toString('latin1')));
    s.on('end', () => resolve(out));
    s.on('close', () => resolve(out));
    // the daemon may answer (413) and close before all of a big body is written: what came back counts
    s.on('error', () => resolve(out));
    s.end(text);
  });
}

/**
 * Sends a head and then body pieces, one after the other, and reads the answer. The pieces must add up to
 * no more than the daemon reads before it answers: writing on after its answer (and close) would end in
 * EPIPE, and node drops what it had not read yet.
 */
function rawSend(head: string, pieces: Buffer[]): Promise<string> {
  return new Promise((resolve) => {
    const s = net.createConnection(sb.socket);
    let out = '';
    s.on('data', (d) => (out += d.toString('latin1')));
    const done = () => resolve(out);
    s.on('close', done);
    s.on('error', done);
    s.write(head);
    (async () => {
      for (const p of pieces) {
        if (s.destroyed) break;
        if (!s.write(p)) await new Promise((r) => { s.once('drain', r); s.once('close', r); });
      }
    })();
  });
}

/** A request with full control of headers and body bytes: status and parsed JSON body (or text). */
function request(method: string, path: string, opts: { body?: string | Buffer; headers?: Record<string, string> } = {}): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: sb.socket, method, path, headers: { ...(opts.body !== undefined ? { 'Content-Length': String(Buffer.byteLength(opts.body)) } : {}), ...opts.headers } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => {
        let body: any = text;
        try { body = text ? JSON.parse(text) : null; } catch { /* text */ }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}
const post = (path: string, body: unknown) => request('POST', path, { body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } });

async function alive(): Promise<void> {
  const r = await request('GET', '/_ping');
  assert.equal(r.status, 200);
  assert.equal(r.body, 'OK');
}

async function objects(): Promise<{ containers: string[]; networks: string[]; links: number }> {
  const cs = await sb.api('GET', '/containers/json?all=1');
  const ns = await sb.api('GET', '/networks');
  // without links network rm / disconnect retired (lmdel…), deleted in the background
  const links = (await ok(sb.hostExec(['ip', '-o', 'link', 'show']))).split('\n').filter((l) => !/^\d+: lmdel/.test(l)).length;
  return { containers: cs.body.map((c: any) => c.Id).sort(), networks: ns.body.map((n: any) => n.Id).sort(), links };
}

test('requests that used to end the daemon are 400s and it goes on', { skip }, async () => {
  for (const p of ['/containers/%FF%FE/json', '/containers/%zz/json', '/containers/%E0%A4%A/json', '/v1.41/networks/%C3%28']) {
    const r = await raw(`GET ${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.match(r, /^HTTP\/1\.1 400 /, p);
    assert.match(r, /"message":"/, p);
    await alive();
  }
  const r = await raw('GET http://[::1/containers/json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.match(r, /^HTTP\/1\.1 400 /);
  await alive();
  // API versions out of range, compared as versions (1.9 is older than 1.24)
  for (const [v, want] of [['1.9', /client version 1\.9 is too old/], ['99.99', /client version 99\.99 is too new\. Maximum supported API version is 1\.50/]] as const) {
    const r = await request('GET', `/v${v}/version`);
    assert.equal(r.status, 400);
    assert.match(r.body.message, want);
  }
  // garbage instead of HTTP: node's parser answers 400; still alive
  await raw(Buffer.from([0xff, 0xfe, 0x00, 0x0d, 0x0a, 0x0d, 0x0a]));
  await alive();
});

test('filters run in linear time (Go regexp semantics): a backtracking pattern answers at once', { skip }, async () => {
  await ok(sb.loom('run', '-d', '--name', 'f1', 'box', 'sleep', '600'));
  await ok(sb.loom('network', 'create', 'fnet'));
  const evil = encodeURIComponent(JSON.stringify({ id: ['^([0-9a-f]+)+g$'] }));
  const r = await sb.api('GET', `/containers/json?all=1&filters=${evil}`);
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, []);
  const rn = await sb.api('GET', `/networks?filters=${encodeURIComponent(JSON.stringify({ name: ['^(a|aa)+$', '^([a-z]+)+X$'] }))}`);
  assert.equal(rn.status, 200);
  assert.deepEqual(rn.body, []);
  // still regular expressions, as Docker's: anchors, classes, and a bad pattern matches nothing
  const byName = await sb.api('GET', `/containers/json?filters=${encodeURIComponent(JSON.stringify({ name: ['^/?f[0-9]$'] }))}`);
  assert.deepEqual(byName.body.map((c: any) => c.Names[0]), ['/f1']);
  const bad = await sb.api('GET', `/containers/json?filters=${encodeURIComponent(JSON.stringify({ name: ['('] }))}`);
  assert.equal(bad.status, 200);
  assert.deepEqual(bad.body, []);
  const nets = await sb.api('GET', `/networks?filters=${encodeURIComponent(JSON.stringify({ name: ['^fn.t$'] }))}`);
  assert.deepEqual(nets.body.map((n: any) => n.Name), ['fnet']);
  // filters that are JSON of other shapes: null is none (as Go decodes it), anything else an invalid filter
  for (const [f, status] of [['null', 200], ['{"name":null}', 200], ['{"name":{"f1":true}}', 200], ['5', 400], ['{"name":"f1"}', 400], ['{"name":[5]}', 400], ['{"name":{"x":"y"}}', 400]] as const) {
    const r = await sb.api('GET', `/containers/json?filters=${encodeURIComponent(f)}`);
    assert.equal(r.status, status, f);
    const n = await sb.api('GET', `/networks?filters=${encodeURIComponent(f)}`);
    assert.equal(n.status, status, f);
    if (status === 400) assert.match(r.body.message, /^invalid filter: /);
  }
  // a huge pattern is compared exactly only
  const huge = await sb.api('GET', `/containers/json?filters=${encodeURIComponent(JSON.stringify({ name: ['(a|b)*'.repeat(5000)] }))}`);
  assert.equal(huge.status, 200);
  assert.deepEqual(huge.body, []);
  await ok(sb.loom('rm', '-f', 'f1'));
  await ok(sb.loom('network', 'rm', 'fnet'));
});

test('wrong JSON types: 400 with encoding/json words, nothing created', { skip }, async () => {
  const before = await objects();
  const cases: [string, unknown, RegExp][] = [
    ['/containers/create', { Image: 'box', Env: 'x' }, /cannot unmarshal string into Go struct field ContainerConfigWrapper\.Env of type \[\]string/],
    ['/containers/create', { Image: 'box', Labels: [] }, /Labels of type map\[string\]string/],
    ['/containers/create', { Image: 'box', Tty: 'yes' }, /Tty of type bool/],
    ['/containers/create', { Image: 'box', HostConfig: 'x' }, /HostConfig of type container\.HostConfig/],
    ['/containers/create', { Image: 'box', HostConfig: { PortBindings: { '80/tcp': [{ HostPort: 8080 }] } } }, /PortBinding\.HostConfig\.PortBindings\.HostPort of type string/],
    ['/containers/create', { Image: 'box', NetworkingConfig: { EndpointsConfig: 'x' } }, /EndpointsConfig of type map/],
    ['/containers/create', { Image: 5 }, /Image of type string/],
    ['/containers/create', { Image: 'box', Env: [5] }, /Env of type string/],
    ['/containers/create', { Image: 'box', HostConfig: { NetworkMode: 5 } }, /NetworkMode of type container\.NetworkMode/],
    ['/containers/create', { Image: 'box', HostConfig: { Links: [5] } }, /Links of type string/],
    ['/containers/create', [1], /Go value of type runconfig\.ContainerConfigWrapper/],
    ['/networks/create', { Name: 5 }, /NetworkCreateRequest\.Name of type string/],
    ['/networks/create', { Name: 'n1', IPAM: 'x' }, /IPAM of type network\.IPAM/],
    ['/networks/create', { Name: 'n1', Internal: 'yes' }, /Internal of type bool/],
    ['/networks/create', { Name: 'n1', Options: 'x' }, /Options of type map\[string\]string/],
    ['/networks/create', { Name: 'n1', Labels: [] }, /Labels of type map\[string\]string/],
    ['/networks/create', { Name: 'n1', Driver: 5 }, /Driver of type string/],
    ['/networks/bridge/connect', { Container: 5 }, /NetworkConnect\.Container of type string/],
    ['/networks/bridge/connect', { Container: 'x', EndpointConfig: { Aliases: 'x' } }, /EndpointSettings\.EndpointConfig\.Aliases of type \[\]string/],
    ['/networks/bridge/disconnect', { Container: 5 }, /NetworkDisconnect\.Container of type string/],
  ];
  for (const [path, body, want] of cases) {
    const r = await post(path, body);
    assert.equal(r.status, 400, `${path} ${JSON.stringify(body)}: ${JSON.stringify(r.body)}`);
    assert.match(r.body.message, want);
  }
  // exec and update on a container that exists, so that the type is what is refused
  await ok(sb.loom('run', '-d', '--name', 't1', 'box', 'sleep', '600'));
  const ex = await post('/containers/t1/exec', { Cmd: 'ls' });
  assert.equal(ex.status, 400);
  assert.match(ex.body.message, /ExecConfig\.Cmd of type \[\]string/);
  const up = await post('/containers/t1/update', { RestartPolicy: 'always' });
  assert.equal(up.status, 400);
  assert.match(up.body.message, /UpdateConfig\.RestartPolicy of type container\.RestartPolicy/);
  await ok(sb.loom('rm', '-f', 't1'));
  await alive();
  assert.deepEqual(await objects(), before);
});

test('bodies: too deep (400), too big (413), not JSON (400, moby\'s CheckForJSON)', { skip }, async () => {
  const before = await objects();
  const deep = `{"Image":"box","Labels":{},"X":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
  const d = await request('POST', '/containers/create', { body: deep, headers: { 'Content-Type': 'application/json' } });
  assert.equal(d.status, 400);
  assert.equal(d.body.message, "invalid character '[' exceeded max depth");
  const dn = await request('POST', '/networks/create', { body: `{"Name":"deep","Labels":{"a":${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}}}`, headers: { 'Content-Type': 'application/json' } });
  assert.equal(dn.status, 400);
  // a body over 16 MiB: declared in Content-Length (refused before any of it is read), or sent chunked
  // without a length (refused once 16 MiB and a little more have come)
  const declared = await rawSend(`POST /networks/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${17 << 20}\r\n\r\n`, []);
  assert.match(declared, /^HTTP\/1\.1 413 /);
  assert.match(declared, /"message":"request body too large/);
  const chunk = (b: Buffer) => Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from('\r\n')]);
  const mib = chunk(Buffer.alloc(1 << 20, 'x'));
  const chunked = await rawSend('POST /networks/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n',
    [...Array.from({ length: 16 }, () => mib), chunk(Buffer.alloc(1024, 'x'))]);
  assert.match(chunked, /^HTTP\/1\.1 413 /);
  const tp = await request('POST', '/networks/create', { body: '{"Name":"tp"}', headers: { 'Content-Type': 'text/plain' } });
  assert.equal(tp.status, 400);
  assert.equal(tp.body.message, "unsupported Content-Type header (text/plain): must be 'application/json'");
  const none = await request('POST', '/networks/create', { body: '{"Name":"tp"}' });
  assert.equal(none.status, 400);
  assert.match(none.body.message, /unsupported Content-Type header \(\)/);
  const charset = await request('POST', '/networks/create', { body: '{"Name":"tpc"}', headers: { 'Content-Type': 'application/json; charset=utf-8' } });
  assert.equal(charset.status, 201);
  await ok(sb.loom('network', 'rm', 'tpc'));
  // no Content-Type and no body is fine where a body is optional
  const exec = await request('POST', '/containers/nope/exec');
  assert.equal(exec.status, 404);
  // invalid UTF-8 in a string: replaced as Go's decoder does, never a 5xx
  const bad = Buffer.concat([Buffer.from('{"Name":"u'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
  const u = await request('POST', '/networks/create', { body: bad, headers: { 'Content-Type': 'application/json' } });
  assert.equal(u.status, 400);
  assert.match(u.body.message, /invalid network name/);
  await alive();
  assert.deepEqual(await objects(), before);
});

test('malformed numbers in the query are 400s with strconv\'s words; booleans as moby reads them', { skip }, async () => {
  const l = await sb.api('GET', '/containers/json?limit=abc');
  assert.equal(l.status, 400);
  assert.equal(l.body.message, 'strconv.Atoi: parsing "abc": invalid syntax');
  await ok(sb.loom('create', '--name', 'q1', 'box', 'true'));
  const t = await sb.api('POST', '/containers/q1/stop?t=soon');
  assert.equal(t.status, 400);
  assert.equal(t.body.message, 'strconv.Atoi: parsing "soon": invalid syntax');
  const e = await request('GET', '/events?since=yesterday');
  assert.equal(e.status, 400);
  assert.equal(e.body.message, 'strconv.ParseInt: parsing "yesterday": invalid syntax');
  // httputils.BoolValue: anything but "", 0, no, false, none is true
  const all = await sb.api('GET', '/containers/json?all=yes');
  assert.ok(all.body.some((c: any) => c.Names[0] === '/q1'));
  const notAll = await sb.api('GET', '/containers/json?all=no');
  assert.ok(!notAll.body.some((c: any) => c.Names[0] === '/q1'));
  await ok(sb.loom('rm', 'q1'));
});

test('addresses Docker\'s IPAM holds back: network and broadcast as gateway, network address for a container (403)', { skip }, async () => {
  const before = await objects();
  for (const gw of ['10.77.0.0', '10.77.0.255']) {
    const r = await post('/networks/create', { Name: 'gw', IPAM: { Config: [{ Subnet: '10.77.0.0/24', Gateway: gw }] } });
    assert.equal(r.status, 403);
    assert.equal(r.body.message, `failed to allocate gateway (${gw}): Address already in use`);
  }
  const aux = await post('/networks/create', { Name: 'gw', IPAM: { Config: [{ Subnet: '10.77.0.0/24', AuxiliaryAddresses: { a: '10.77.0.255' } }] } });
  assert.equal(aux.status, 403);
  assert.equal(aux.body.message, 'failed to allocate secondary ip address (a:10.77.0.255): Address already in use');
  assert.deepEqual(await objects(), before);
  await ok(sb.loom('network', 'create', '--subnet', '10.77.0.0/24', 'gw'));
  await ok(sb.loom('create', '--name', 'ipc', 'box', 'sleep', '600'));
  for (const ip of ['10.77.0.0', '10.77.0.255']) {
    const r = await post('/networks/gw/connect', { Container: 'ipc', EndpointConfig: { IPAMConfig: { IPv4Address: ip } } });
    assert.equal(r.status, 403, ip);
    assert.equal(r.body.message, 'Address already in use');
  }
  const r = await sb.loom('run', '-d', '--network', 'gw', '--ip', '10.77.0.0', 'box', 'sleep', '1');
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /Address already in use/);
  await ok(sb.loom('network', 'connect', '--ip', '10.77.0.9', 'gw', 'ipc'));
  await ok(sb.loom('rm', '-f', 'ipc'));
  await ok(sb.loom('container', 'prune', '-f'));
  await ok(sb.loom('network', 'rm', 'gw'));
});

test('names of 300 and 4,000 characters: created, started, renamed; ordinary names keep <prefix><name>', { skip }, async () => {
  const long = `a${'b'.repeat(299)}`;
  const huge = `c${'d'.repeat(3999)}`;
  const netnsList = async () => (await ok(sb.hostExec(['ip', 'netns', 'list']))).split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(sb.netnsPrefix));
  for (const name of [long, huge]) {
    const id = await ok(sb.loom('run', '-d', '--name', name, 'box', 'sleep', '600'), `run ${name.length}`);
    assert.equal(await ok(sb.loom('inspect', '-f', '{{.State.Running}}', name)), 'true');
    assert.match(await ok(sb.loom('exec', name, 'ip', '-o', '-4', 'addr', 'show', 'eth0')), /inet 172\.17\./);
    assert.ok((await netnsList()).includes(`${sb.netnsPrefix}@${id}`));
  }
  // rename: long to short gets the readable file, short to long the id's
  const id = await ok(sb.loom('inspect', '-f', '{{.Id}}', long));
  await ok(sb.loom('rename', long, 'short1'));
  let list = await netnsList();
  assert.ok(list.includes(`${sb.netnsPrefix}short1`));
  assert.ok(!list.includes(`${sb.netnsPrefix}@${id}`));
  await ok(sb.hostExec(['ip', 'netns', 'exec', `${sb.netnsPrefix}short1`, 'ip', 'link', 'show', 'eth0']));
  await ok(sb.loom('rename', 'short1', `e${'f'.repeat(500)}`));
  list = await netnsList();
  assert.ok(list.includes(`${sb.netnsPrefix}@${id}`));
  assert.equal(await ok(sb.loom('exec', `e${'f'.repeat(500)}`, 'echo', 'hi')), 'hi');
  await ok(sb.loom('rm', '-f', id, huge));
  assert.deepEqual(await netnsList(), []);
});

test('the socket is 0660 root:<group>; a member gets through, anyone else is refused', { skip }, async () => {
  const tag = `${process.pid}`.slice(-6);
  const group = `loomtg${tag}`, member = `loomtm${tag}`, other = `loomto${tag}`;
  const cleanup = async () => {
    for (const u of [member, other]) await runCmd(['userdel', u]);
    await runCmd(['groupdel', group]);
  };
  await cleanup();
  try {
    await ok(runCmd(['groupadd', group]));
    await ok(runCmd(['useradd', '-M', '-N', '-s', '/usr/sbin/nologin', '-G', group, member]));
    await ok(runCmd(['useradd', '-M', '-N', '-s', '/usr/sbin/nologin', other]));
    const gid = Number((await ok(runCmd(['getent', 'group', group]))).split(':')[2]);
    // a daemon of its own with -G (the default `loom` group is the machine's)
    await sb.stopDaemon();
    await sb.startDaemon(['-G', group]);
    const st = fs.statSync(sb.socket);
    assert.equal(st.mode & 0o777, 0o660);
    assert.equal(st.uid, 0);
    assert.equal(st.gid, gid);
    fs.chmodSync(sb.dir, 0o711); // the sandbox's directory is 0700; the socket's mode is what is tested
    const curl = (user: string) => runCmd(['runuser', '-u', user, '--', 'curl', '-sS', '--unix-socket', sb.socket, 'http://x/_ping']);
    const m = await curl(member);
    assert.equal(m.code, 0, m.stderr);
    assert.equal(m.stdout, 'OK');
    const o = await curl(other);
    assert.notEqual(o.code, 0);
    assert.match(o.stderr, /Permission denied|Couldn't connect/);
  } finally {
    fs.chmodSync(sb.dir, 0o700);
    await sb.stopDaemon();
    await cleanup();
    await sb.startDaemon();
  }
  // an explicit group that does not exist stops the start with a clear error
  await sb.stopDaemon();
  await assert.rejects(sb.startDaemon(['-G', 'loomt-nosuchgroup']), /group loomt-nosuchgroup not found/);
  await sb.startDaemon();
});

test('values moby refuses at create (working dir, env, log driver and options) create nothing', { skip }, async () => {
  const before = await objects();
  const cases: [string[], RegExp][] = [
    [['--log-driver', 'nope'], /logger: no log driver named 'nope' is registered/],
    [['--log-opt', 'max-sise=1k'], /unknown log opt 'max-sise' for json-file log driver/],
    [['--log-opt', 'tag={{.Name}}'], /log opt 'tag' is not supported by loom/],
    [['--log-opt', 'max-size=ten'], /invalid size: 'ten'/],
    [['--log-opt', 'max-size=1k', '--log-opt', 'max-file=0'], /max-file cannot be less than 1/],
    [['--log-driver', 'syslog'], /log driver 'syslog' is not supported by loom/],
    [['-w', 'relative/dir'], /the working directory 'relative\/dir' is invalid, it needs to be an absolute path/],
  ];
  for (const [flags, want] of cases) {
    const r = await sb.docker('create', ...flags, 'box', 'true');
    assert.notEqual(r.code, 0, flags.join(' '));
    assert.match(r.stderr, want);
  }
  const env = await post('/containers/create', { Image: 'box', Cmd: ['true'], Env: ['A\u0000=b'] });
  assert.equal(env.status, 400);
  assert.match(env.body.message, /invalid environment variable: "A\\u0000=b": contains a NUL byte/);
  assert.deepEqual(await objects(), before);
  await ok(sb.docker('run', '--rm', '--log-driver', 'json-file', '--log-opt', 'mode=blocking', 'box', 'true'));
});

test('logs limited by size (--log-opt max-size, max-file): old output freed, logs -f loses nothing', { skip }, async () => {
  const pad = 'x'.repeat(50);
  // ~12 KB/s: what is kept (30 KB) spans seconds, so a follower on a loaded machine keeps up
  const script = `sleep 1; i=0; while [ $i -lt 1000 ]; do echo "line $i ${pad}"; i=$((i+1)); [ $((i % 10)) = 0 ] && usleep 50000; done; true`;
  const id = await ok(sb.docker('run', '-d', '--name', 'lr', '--log-opt', 'max-size=10k', '--log-opt', 'max-file=3', 'box', 'sh', '-c', script));
  const follower = sb.loom('logs', '-f', 'lr');
  const r = await follower;
  assert.equal(r.code, 0, r.stderr);
  const want = Array.from({ length: 1000 }, (_, i) => `line ${i} ${pad}`);
  assert.deepEqual(r.stdout.trimEnd().split('\n'), want); // the follower saw every line, in order
  const kept = (await ok(sb.loom('logs', 'lr'))).split('\n');
  assert.equal(kept.at(-1), want.at(-1));
  assert.ok(kept.length * 60 <= 30_000 + 60 && kept.length * 60 >= 20_000 - 60, `${kept.length} lines kept`);
  assert.deepEqual(kept, want.slice(-kept.length)); // a tail of whole lines
  assert.equal(await ok(sb.loom('logs', '--tail', '2', 'lr')), want.slice(-2).join('\n'));
  const st = fs.statSync(`${sb.dir}/data/containers/${id}/stdout.log`);
  assert.ok(st.blocks * 512 <= 40 << 10, `${st.blocks * 512} bytes on disk`);
  const [j] = JSON.parse(await ok(sb.docker('inspect', 'lr')));
  assert.deepEqual(j.HostConfig.LogConfig, { Type: 'json-file', Config: { 'max-size': '10k', 'max-file': '3' } });
  await ok(sb.loom('rm', 'lr'));
  // bin/loom takes the same flags
  await ok(sb.loom('create', '--name', 'll', '--log-opt', 'max-size=20k', 'box', 'true'));
  assert.equal(await ok(sb.loom('inspect', '-f', '{{json .HostConfig.LogConfig.Config}}', 'll')), '{"max-size":"20k"}');
  await ok(sb.loom('rm', 'll'));
  const bad = await sb.loom('create', '--log-driver', 'nope', 'box', 'true');
  assert.match(bad.stderr, /logger: no log driver named 'nope' is registered/);
  // daemon-wide defaults: every container gets them unless it sets its own
  await sb.stopDaemon();
  await sb.startDaemon(['--log-opt', 'max-size=5k']);
  try {
    await ok(sb.docker('create', '--name', 'ld1', 'box', 'true'));
    await ok(sb.docker('create', '--name', 'ld2', '--log-opt', 'max-size=7k', '--log-opt', 'max-file=2', 'box', 'true'));
    assert.equal(await ok(sb.docker('inspect', '-f', '{{json .HostConfig.LogConfig.Config}}', 'ld1')), '{"max-size":"5k"}');
    assert.equal(await ok(sb.docker('inspect', '-f', '{{json .HostConfig.LogConfig.Config}}', 'ld2')), '{"max-file":"2","max-size":"7k"}');
    await ok(sb.loom('rm', 'ld1', 'ld2'));
  } finally {
    await sb.stopDaemon();
    await sb.startDaemon();
  }
  await sb.stopDaemon();
  await assert.rejects(sb.startDaemon(['--log-opt', 'max-sise=5k']), /unknown log opt 'max-sise' for json-file log driver/);
  await sb.startDaemon();
});
