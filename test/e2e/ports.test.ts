// Issue 3 end to end: port publishing, links, icc, internal networks and isolation between networks, through
// a loom daemon in a sandbox "host" namespace, driven by bin/loom and by the unmodified docker CLI. Every
// check is a real packet: from the sandbox's outside world (198.51.100.2) to the host's address, from the
// host itself (127.0.0.1 and its own addresses) and from containers (hairpin). Two daemons: one with the
// defaults (most tests share it) and one with --icc=false.
//
// Notes on the tools: busybox-static's `wget -T` crashes here, so every client runs under `timeout`; its
// `nc` has no UDP, so UDP servers and clients are node scripts run in the container's (or the outside
// world's) namespace. Checks that expect silence (a drop) cost their timeout, so they run side by side.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createSandbox, eventually, type Result, type Sandbox } from '../helpers/sandbox.ts';
import { ok } from '../helpers/assert.ts';

const skip = process.getuid?.() !== 0 ? 'needs root (network namespaces, nftables, runc)' : false;
const NODE = process.execPath;
const HOST = '198.51.100.1';
const HELLO = 'hello from loom';

let sb: Sandbox; // default daemon
let sbi: Sandbox; // daemon with --icc=false

/** A failing command: its exit code and stderr. */
async function fails(p: Promise<Result>, what = 'command'): Promise<Result> {
  const r = await p;
  assert.notEqual(r.code, 0, `${what} should have failed: ${r.stdout}`);
  return r;
}

// ------------------------------------------------------------------ clients

const WGET = (url: string, secs = 3) => ['timeout', String(secs), 'wget', '-qO-', url];
/** HTTP GET from the outside world; the body or null. */
async function fromExt(s: Sandbox, port: number, host = HOST): Promise<string | null> {
  const r = await s.extExec(['busybox', ...WGET(`http://${host}:${port}/`)]);
  return r.code === 0 ? r.stdout.trim() : null;
}
/** HTTP GET from the host namespace itself. */
async function fromHost(s: Sandbox, host: string, port: number): Promise<string | null> {
  const r = await s.hostExec(['busybox', ...WGET(`http://${host}:${port}/`)]);
  return r.code === 0 ? r.stdout.trim() : null;
}
/** HTTP GET from inside a container. `secs` bounds a check that expects no answer at all (a drop). */
async function fromCtr(s: Sandbox, name: string, host: string, port = 80, secs = 3): Promise<string | null> {
  const r = await s.loom('exec', name, ...WGET(`http://${host}:${port}/`, secs));
  return r.code === 0 ? r.stdout.trim() : null;
}
async function pingable(s: Sandbox, name: string, ip: string): Promise<boolean> {
  return (await s.loom('exec', name, 'ping', '-c1', '-W1', ip)).code === 0;
}

/** A UDP echo server in a container's namespace ("pong <payload> from <peer address>"). */
const UDP_ECHO = `const d=require('dgram').createSocket('udp4');d.on('message',(m,r)=>d.send('pong '+m+' from '+r.address,r.port,r.address));d.bind(+process.argv[1])`;
/** One UDP request; prints the answer, exit 1 without one. */
const UDP_ASK = `const [h,p]=process.argv.slice(1);const d=require('dgram').createSocket('udp4');setTimeout(()=>process.exit(1),2000);d.on('message',m=>{console.log(String(m));process.exit(0)});d.send('ping',+p,h)`;
/** The outside world's TCP server that answers with the peer address it sees (proves masquerade or its absence). */
const PEER_ECHO = `require('net').createServer(s=>{s.end('HTTP/1.0 200 OK\\r\\n\\r\\npeer='+s.remoteAddress.replace('::ffff:','')+'\\n')}).listen(9000,'198.51.100.2')`;

// ------------------------------------------------------------------ servers and state

/**
 * A container serving its own name over HTTP on `ports` (default 80): `flags` go to `loom run`.
 * Returns once every port listens (read from the container's /proc/net/tcp).
 */
async function serve(s: Sandbox, name: string, flags: string[] = [], ports = [80]): Promise<void> {
  const script = `mkdir -p /w && echo ${name} > /w/index.html && for p in ${ports.join(' ')}; do httpd -p $p -h /w; done; exec sleep 1d`;
  await ok(s.loom('run', '-d', '--name', name, ...flags, 'box', 'sh', '-c', script), `run ${name}`);
  await listening(s, name, ports);
}

async function listening(s: Sandbox, name: string, ports: number[], proto: 'tcp' | 'udp' = 'tcp'): Promise<void> {
  const hex = ports.map((p) => p.toString(16).toUpperCase().padStart(4, '0'));
  const state = proto === 'tcp' ? ' 0A' : ' 07';
  // httpd listens on [::] (tcp6, which takes IPv4 too), node's udp4 socket on 0.0.0.0
  await ok(s.loom('exec', name, 'timeout', '10', 'sh', '-c', `for p in ${hex.join(' ')}; do until grep -qs ":$p [0-9A-F]*:0000${state}" /proc/net/${proto} /proc/net/${proto}6; do sleep 0.05; done; done`), `${name} listens on ${ports}`);
}

const ipOf = async (s: Sandbox, name: string) => ok(s.loom('inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', name));
const inspect = async (s: Sandbox, name: string, tpl: string) => JSON.parse(await ok(s.loom('inspect', '-f', `{{json ${tpl}}}`, name)));

/** What loom holds in the host namespace: the nftables ruleset, links, container namespaces, addresses. */
async function snapshot(s: Sandbox): Promise<{ nft: string; links: string[]; netns: string[]; addrs: string }> {
  const nft = await ok(s.hostExec(['nft', 'list', 'ruleset']));
  // links network rm / disconnect retired (lmdel…) are on their way out in the background: not loom's to count
  const links = (await ok(s.hostExec(['ip', '-o', 'link', 'show']))).split('\n').map((l) => l.split(': ')[1]!.split('@')[0]!).filter((l) => !l.startsWith('lmdel')).sort();
  const netns = (await s.hostExec(['ip', 'netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(s.netnsPrefix)).sort();
  const addrs = (await ok(s.hostExec(['ip', '-o', 'addr', 'show']))).split('\n').filter((l) => !/^\d+: lmdel/.test(l)).join('\n');
  return { nft, links, netns, addrs };
}

/** Whether a process on the host can bind host port `port` (loom holds published ports against that). */
async function hostCanBind(s: Sandbox, port: number, proto: 'tcp' | 'udp' = 'tcp'): Promise<boolean> {
  const script = `const s=require('${proto === 'tcp' ? 'net' : 'dgram'}');` + (proto === 'tcp'
    ? `s.createServer().on('error',()=>process.exit(1)).listen(${port},'0.0.0.0',()=>process.exit(0))`
    : `s.createSocket('udp4').on('error',()=>process.exit(1)).bind(${port},'0.0.0.0',()=>process.exit(0))`);
  return (await s.hostExec([NODE, '-e', script])).code === 0;
}

/** Removes every container but `keep` (failed runs leave created ones behind, as in Docker). */
async function removeAll(s: Sandbox, keep: string[] = []): Promise<void> {
  const names = (await ok(s.loom('ps', '-a', '--format', '{{.Names}}'))).split('\n').filter((n) => n && !keep.includes(n));
  if (names.length) await ok(s.loom('rm', '-f', ...names));
}

before(async () => {
  if (skip) return;
  [sb, sbi] = await Promise.all([createSandbox({ tag: 'ports' }), createSandbox({ tag: 'noicc', daemonArgs: ['--icc=false'] })]);
  await Promise.all([sb.startDaemon().then(() => sb.image('box')), sbi.startDaemon().then(() => sbi.image('box'))]);
  sb.spawnExt([NODE, '-e', PEER_ECHO]);
  sbi.spawnExt([NODE, '-e', PEER_ECHO]);
}, { timeout: 120_000 });

after(async () => {
  await Promise.all([sb?.cleanup(), sbi?.cleanup()]);
});

// ------------------------------------------------------------------ publishing

describe('port publishing', { skip }, () => {
  let r1 = 0, r2 = 0; // the random host ports of -p 80 and -p 127.0.0.1::80
  const udpServers: ChildProcess[] = []; // they live in the udp container's namespace: gone before it is

  test('every -p form: inspect, `loom port`, ps', async () => {
    await serve(sb, 'pub', ['-p', '8080:80', '-p', '127.0.0.1:8081:80', '-p', '127.0.0.1::80', '-p', '80', '-p', '8000-8002:8000-8002', '-p', '9000-9002:80'], [80, 8000, 8001, 8002]);
    assert.deepEqual(await inspect(sb, 'pub', '.HostConfig.PortBindings'), {
      '80/tcp': [{ HostIp: '', HostPort: '8080' }, { HostIp: '127.0.0.1', HostPort: '8081' }, { HostIp: '127.0.0.1', HostPort: '' }, { HostIp: '', HostPort: '' }, { HostIp: '', HostPort: '9000-9002' }],
      '8000/tcp': [{ HostIp: '', HostPort: '8000' }], '8001/tcp': [{ HostIp: '', HostPort: '8001' }], '8002/tcp': [{ HostIp: '', HostPort: '8002' }],
    });
    const ports = await inspect(sb, 'pub', '.NetworkSettings.Ports');
    const random = (ip: string) => ports['80/tcp'].filter((b: { HostIp: string; HostPort: string }) => b.HostIp === ip && !['8080', '8081', '9000'].includes(b.HostPort)).map((b: { HostPort: string }) => Number(b.HostPort));
    [r1, r2] = [random('0.0.0.0')[0], random('127.0.0.1')[0]];
    const [lo, hi] = (await ok(sb.hostExec(['cat', '/proc/sys/net/ipv4/ip_local_port_range']))).split(/\s+/).map(Number);
    for (const r of [r1, r2]) assert.ok(r >= lo! && r <= hi!, `random host port ${r} from the ephemeral range ${lo}-${hi}`);
    const sortBindings = (l: { HostIp: string; HostPort: string }[]) => [...l].sort((a, b) => `${a.HostIp}:${a.HostPort}`.localeCompare(`${b.HostIp}:${b.HostPort}`));
    assert.deepEqual(sortBindings(ports['80/tcp']), sortBindings([
      { HostIp: '0.0.0.0', HostPort: '8080' }, { HostIp: '127.0.0.1', HostPort: '8081' }, { HostIp: '127.0.0.1', HostPort: String(r2) },
      { HostIp: '0.0.0.0', HostPort: String(r1) }, { HostIp: '0.0.0.0', HostPort: '9000' },
    ]), '-p 9000-9002:80 takes the first free port of the range');
    for (const p of [8000, 8001, 8002]) assert.deepEqual(ports[`${p}/tcp`], [{ HostIp: '0.0.0.0', HostPort: String(p) }]);
    assert.equal(await ok(sb.loom('port', 'pub')), [
      `80/tcp -> 0.0.0.0:8080`, `80/tcp -> 0.0.0.0:9000`, `80/tcp -> 0.0.0.0:${r1}`, `80/tcp -> 127.0.0.1:8081`, `80/tcp -> 127.0.0.1:${r2}`,
      `8000/tcp -> 0.0.0.0:8000`, `8001/tcp -> 0.0.0.0:8001`, `8002/tcp -> 0.0.0.0:8002`,
    ].join('\n'));
    assert.equal(await ok(sb.loom('port', 'pub', '8001')), '0.0.0.0:8001');
    assert.equal(await ok(sb.loom('port', 'pub', '80/tcp')), ['0.0.0.0:8080', '0.0.0.0:9000', `0.0.0.0:${r1}`, '127.0.0.1:8081', `127.0.0.1:${r2}`].join('\n'));
    const none = await fails(sb.loom('port', 'pub', '81'));
    assert.equal(none.stderr, "Error: No public port '81' published for pub\n");
    assert.equal(await ok(sb.loom('ps', '--filter', 'name=pub', '--format', '{{.Ports}}')),
      `0.0.0.0:8000-8002->8000-8002/tcp, 0.0.0.0:8080->80/tcp, 0.0.0.0:9000->80/tcp, 0.0.0.0:${r1}->80/tcp, 127.0.0.1:8081->80/tcp, 127.0.0.1:${r2}->80/tcp`);
  });

  test('reachable from the outside world at the host address, except what is bound to 127.0.0.1', async () => {
    const got = await Promise.all([8080, 9000, r1, 8000, 8001, 8002, 8081, r2, 9001].map((p) => fromExt(sb, p)));
    assert.deepEqual(got, ['pub', 'pub', 'pub', 'pub', 'pub', 'pub', null, null, null]);
  });

  test('reachable from the host itself: 127.0.0.1, its own address, the bridge gateway', async () => {
    const got = await Promise.all([
      fromHost(sb, '127.0.0.1', 8080), fromHost(sb, '127.0.0.1', 8081), fromHost(sb, '127.0.0.1', r2), fromHost(sb, '127.0.0.1', r1),
      fromHost(sb, '127.0.0.1', 8002), fromHost(sb, HOST, 8080), fromHost(sb, HOST, 8000), fromHost(sb, '172.17.0.1', 8080), fromHost(sb, HOST, 8081),
    ]);
    assert.deepEqual(got, ['pub', 'pub', 'pub', 'pub', 'pub', 'pub', 'pub', 'pub', null]);
  });

  test('hairpin: other containers and the container itself reach it through the host address', async () => {
    await ok(sb.loom('run', '-d', '--name', 'client', 'box', 'sleep', '1d'));
    const got = await Promise.all([
      fromCtr(sb, 'client', HOST, 8080), fromCtr(sb, 'client', HOST, 8001), fromCtr(sb, 'client', '172.17.0.1', r1),
      fromCtr(sb, 'pub', HOST, 8080), fromCtr(sb, 'pub', HOST, 9000), fromCtr(sb, 'client', HOST, 8081),
    ]);
    assert.deepEqual(got, ['pub', 'pub', 'pub', 'pub', 'pub', null]);
  });

  test('udp: from outside and from the host, answered by the right container', async () => {
    await ok(sb.loom('run', '-d', '--name', 'udp', '-p', '5353:53/udp', '-p', '127.0.0.1:5354:54/udp', 'box', 'sleep', '1d'));
    const ns = `/run/netns/${sb.netnsPrefix}udp`;
    for (const p of [53, 54]) udpServers.push(sb.spawnHost(['nsenter', `--net=${ns}`, NODE, '-e', UDP_ECHO, String(p)]));
    await listening(sb, 'udp', [53, 54], 'udp');
    const ctrIp = await ipOf(sb, 'udp');
    assert.equal(await ok(sb.extExec([NODE, '-e', UDP_ASK, HOST, '5353'])), 'pong ping from 198.51.100.2', 'outside: no source NAT');
    assert.equal(await ok(sb.hostExec([NODE, '-e', UDP_ASK, '127.0.0.1', '5353'])), 'pong ping from 172.17.0.1', "the host's loopback is masqueraded");
    assert.equal(await ok(sb.hostExec([NODE, '-e', UDP_ASK, '127.0.0.1', '5354'])), 'pong ping from 172.17.0.1');
    assert.equal((await sb.extExec([NODE, '-e', UDP_ASK, HOST, '5354'])).code, 1, '127.0.0.1-only udp port is not reachable from outside');
    assert.deepEqual(await inspect(sb, 'udp', '.NetworkSettings.Ports'), { '53/udp': [{ HostIp: '0.0.0.0', HostPort: '5353' }], '54/udp': [{ HostIp: '127.0.0.1', HostPort: '5354' }] });
    assert.match(ctrIp, /^172\.17\./);
    assert.equal(await hostCanBind(sb, 5353, 'udp'), false, 'loom holds the udp port');
  });

  test('-P publishes every exposed port on a random host port', async () => {
    await serve(sb, 'all', ['-P', '--expose', '80', '--expose', '81/udp']);
    const ports = await inspect(sb, 'all', '.NetworkSettings.Ports');
    assert.deepEqual(Object.keys(ports).sort(), ['80/tcp', '81/udp']);
    const p80 = Number(ports['80/tcp'][0].HostPort);
    assert.equal(ports['80/tcp'][0].HostIp, '0.0.0.0');
    assert.ok(p80 > 1024 && ![r1, r2].includes(p80), `a fresh random port: ${p80}`);
    assert.equal(await fromExt(sb, p80), 'all');
    assert.equal(await ok(sb.loom('port', 'all', '81/udp')), `0.0.0.0:${ports['81/udp'][0].HostPort}`);
    // --expose alone publishes nothing
    await serve(sb, 'exposed', ['--expose', '80']);
    assert.deepEqual(await inspect(sb, 'exposed', '.NetworkSettings.Ports'), { '80/tcp': null });
    assert.equal(await ok(sb.loom('port', 'exposed')), '');
  });

  test('a host process cannot take a published port', async () => {
    assert.equal(await hostCanBind(sb, 8080), false);
    assert.equal(await hostCanBind(sb, 8001), false);
    assert.equal(await hostCanBind(sb, 8083), true);
  });

  test("conflicts with another container's port: 409 naming the port, nothing left behind", async () => {
    const before = await snapshot(sb);
    let r = await fails(sb.loom('run', '-d', '--name', 'dup', '-p', '8080:80', 'box', 'sleep', '1d'));
    assert.equal(r.code, 125);
    assert.match(r.stderr, /^loom: Error response from daemon: failed to set up container networking: driver failed programming external connectivity on endpoint dup \([0-9a-f]{64}\): Bind for 0\.0\.0\.0:8080 failed: port is already allocated\n/);
    assert.equal(await ok(sb.loom('inspect', '-f', '{{.State.Status}} {{.State.Running}}', 'dup')), 'created false');
    assert.deepEqual(await eventually(() => snapshot(sb), before), before, 'no rule, link, namespace or address of the failed start');
    // the API: 409 on start
    const st = await sb.api('POST', '/containers/dup/start');
    assert.equal(st.status, 409);
    assert.match(st.body.message, /Bind for 0\.0\.0\.0:8080 failed: port is already allocated$/);
    // one address of the host against every address (and the other way round) conflicts as well
    r = await fails(sb.loom('run', '-d', '-p', '127.0.0.1:8080:80', 'box', 'sleep', '1d'));
    assert.match(r.stderr, /Bind for 0\.0\.0\.0:8080 failed: port is already allocated/);
    r = await fails(sb.loom('run', '-d', '-p', '8081:80', 'box', 'sleep', '1d'));
    assert.match(r.stderr, /Bind for 127\.0\.0\.1:8081 failed: port is already allocated/);
    // a range whose every port is taken
    r = await fails(sb.loom('run', '-d', '-p', '8000-8002:80', 'box', 'sleep', '1d'));
    assert.match(r.stderr, /Bind for 0\.0\.0\.0:8000-8002 failed: port is already allocated/);
    // a udp port does not conflict with the same tcp port
    await ok(sb.loom('run', '-d', '--name', 'u8080', '-p', '8080:80/udp', 'box', 'sleep', '1d'));
    await ok(sb.loom('rm', '-f', 'u8080'));
    await removeAll(sb, ['pub', 'client', 'udp', 'all', 'exposed']);
  });

  test('conflicts with a host process: clear error, the ports taken before it are released', async () => {
    const holder = sb.spawnHost(['busybox', 'nc', '-l', '-p', '6060']);
    await ok(sb.hostExec(['timeout', '10', 'sh', '-c', 'until grep -qs ":17AC [0-9A-F]*:0000 0A" /proc/net/tcp /proc/net/tcp6; do sleep 0.05; done']), 'nc listens');
    const before = await snapshot(sb);
    const r = await fails(sb.loom('run', '-d', '--name', 'blocked', '-p', '7001:80', '-p', '6060:80', 'box', 'sleep', '1d'));
    assert.equal(r.code, 125);
    assert.match(r.stderr, /driver failed programming external connectivity on endpoint blocked \([0-9a-f]{64}\): failed to bind host port for 0\.0\.0\.0:6060:172\.17\.\d+\.\d+:80\/tcp: address already in use\n/);
    assert.deepEqual(await eventually(() => snapshot(sb), before), before);
    assert.equal(await hostCanBind(sb, 7001), true, 'the port held before the failure is released');
    holder.kill('SIGKILL');
    // --rm: the failed container is removed (the docker CLI waits for that)
    const rm = await fails(sb.loom('run', '--rm', '--name', 'gone', '-p', '8080:80', 'box', 'true'));
    assert.match(rm.stderr, /port is already allocated/);
    assert.equal((await sb.loom('inspect', 'gone')).code, 1);
    await ok(sb.loom('rm', '-f', 'blocked'));
  });

  test('invalid specs are refused, naming the bad value', async () => {
    const cases: [string, string][] = [
      ['70000:80', 'invalid hostPort: 70000'], ['8080:70000', 'invalid containerPort: 70000'], ['8080:80/xyz', 'invalid proto: xyz'],
      ['8000-8010:80-85', 'invalid ranges specified for container and host Ports: 80-85 and 8000-8010'], ['9-1:80', 'invalid hostPort: 9-1'],
      ['1.2.3:8080:80', 'invalid IP address: 1.2.3'],
    ];
    for (const [spec, msg] of cases) {
      const r = await fails(sb.loom('run', '-d', '-p', spec, 'box', 'true'), spec);
      assert.equal(r.code, 125, spec);
      assert.equal(r.stderr, `loom: ${msg}\n\nRun 'loom run --help' for more information\n`, spec);
    }
    // values the CLI lets through are refused by the daemon (400) when the container is created
    const r = await fails(sb.loom('create', '-p', '8080:0', 'box', 'true'));
    assert.match(r.stderr, /invalid port specification: "0\/tcp"/);
    const bad = [
      [{ '80/tcp': [{ HostIp: '', HostPort: 'x' }] }, 'invalid port specification: "x"'],
      [{ '80/tcp': [{ HostIp: '', HostPort: '70000' }] }, 'invalid port specification: "70000"'],
      [{ '99999/tcp': [{ HostIp: '', HostPort: '80' }] }, 'invalid port specification: "99999/tcp"'],
      [{ '80/icmp': [{ HostIp: '', HostPort: '80' }] }, 'invalid proto: icmp'],
      [{ '80/tcp': [{ HostIp: 'nonsense', HostPort: '80' }] }, 'invalid IP address: nonsense'],
    ] as const;
    for (const [PortBindings, msg] of bad) {
      const res = await sb.api('POST', '/containers/create', { Image: 'box', Cmd: ['true'], HostConfig: { PortBindings } });
      assert.equal(res.status, 400, msg);
      assert.equal(res.body.message, msg);
    }
    // an address the host does not have
    const na = await fails(sb.loom('run', '-d', '--name', 'noaddr', '-p', '10.9.9.9:8084:80', 'box', 'true'));
    assert.match(na.stderr, /failed to bind host port for 10\.9\.9\.9:8084:172\.17\.\d+\.\d+:80\/tcp: cannot assign requested address/);
    await ok(sb.loom('rm', '-f', 'noaddr'));
  });

  test('rm closes the ports: no answer, no map element, the host may bind them again', async () => {
    for (const c of udpServers) c.kill('SIGKILL');
    await ok(sb.loom('rm', '-f', 'pub', 'all', 'exposed', 'udp'));
    const got = await Promise.all([fromExt(sb, 8080), fromExt(sb, 8001), fromHost(sb, '127.0.0.1', 8081), fromCtr(sb, 'client', HOST, 9000)]);
    assert.deepEqual(got, [null, null, null, null]);
    const table = await ok(sb.hostExec(['nft', 'list', 'table', 'ip', 'loom']));
    assert.doesNotMatch(table, /elements = \{ (?!"loom0" \})/, 'every port map is empty (the bridges set keeps loom0)');
    assert.equal(await hostCanBind(sb, 8080), true);
    assert.equal(await hostCanBind(sb, 5353, 'udp'), true);
    await ok(sb.loom('rm', '-f', 'client'));
  });
});

// ------------------------------------------------------------------ links

describe('links', { skip }, () => {
  test('hosts entry, environment, one-way, inspect', async () => {
    await serve(sb, 'lc1', ['--expose', '80', '--expose', '5432', '-e', 'FOO=bar', '-h', 'dbhost']);
    await ok(sb.loom('run', '-d', '--name', 'lc2', '--link', 'lc1:db', 'box', 'sleep', '1d'));
    const ip1 = await ipOf(sb, 'lc1');
    const hosts = await ok(sb.loom('exec', 'lc2', 'cat', '/etc/hosts'));
    assert.ok(hosts.split('\n').includes(`${ip1}\tdb dbhost lc1`), hosts);
    const env = (await ok(sb.loom('exec', 'lc2', 'env'))).split('\n');
    for (const e of [
      `DB_PORT=tcp://${ip1}:80`, `DB_PORT_80_TCP=tcp://${ip1}:80`, `DB_PORT_80_TCP_ADDR=${ip1}`, 'DB_PORT_80_TCP_PORT=80', 'DB_PORT_80_TCP_PROTO=tcp',
      `DB_PORT_5432_TCP=tcp://${ip1}:5432`, 'DB_NAME=/lc2/db', 'DB_ENV_FOO=bar',
    ]) assert.ok(env.includes(e), `${e} in ${env.join(' ')}`);
    assert.equal(await fromCtr(sb, 'lc2', 'db'), 'lc1');
    assert.equal(await fromCtr(sb, 'lc2', 'lc1'), 'lc1');
    // one-way: the linked container does not know the linking one by name
    const back = await fails(sb.loom('exec', 'lc1', 'ping', '-c1', '-W1', 'lc2'));
    assert.match(back.stderr, /bad address 'lc2'/);
    assert.deepEqual(await inspect(sb, 'lc2', '.HostConfig.Links'), ['/lc1:/lc2/db']);
  });

  test('the hosts entry follows the linked container to its new address', async () => {
    const old = await ipOf(sb, 'lc1');
    await ok(sb.loom('stop', '-t', '0', 'lc1'));
    await ok(sb.loom('run', '-d', '--name', 'squatter', 'box', 'sleep', '1d')); // takes the next address
    await ok(sb.loom('start', 'lc1'));
    const ip = await ipOf(sb, 'lc1');
    assert.notEqual(ip, old);
    assert.match(await ok(sb.loom('exec', 'lc2', 'cat', '/etc/hosts')), new RegExp(`^${ip.replace(/\./g, '\\.')}\tdb dbhost lc1$`, 'm'));
    await listening(sb, 'lc1', [80]);
    assert.equal(await fromCtr(sb, 'lc2', 'db'), 'lc1');
  });

  test('links to a missing or a stopped container are refused', async () => {
    let r = await fails(sb.loom('run', '-d', '--name', 'orphan', '--link', 'nosuch:x', 'box', 'true'));
    assert.equal(r.code, 125);
    assert.match(r.stderr, /could not get container for nosuch/);
    assert.equal((await sb.loom('inspect', 'orphan')).code, 1, 'nothing created');
    const res = await sb.api('POST', '/containers/create', { Image: 'box', Cmd: ['true'], HostConfig: { Links: ['nosuch:x'] } });
    assert.equal(res.status, 400, 'not 404: the docker CLI would go and pull the image');
    await ok(sb.loom('create', '--name', 'idle', 'box', 'true'));
    const before = await snapshot(sb);
    r = await fails(sb.loom('run', '-d', '--name', 'tostopped', '--link', 'idle', 'box', 'sleep', '1d'));
    assert.match(r.stderr, /Cannot link to a non running container: \/idle AS \/tostopped\/idle/);
    assert.deepEqual(await eventually(() => snapshot(sb), before), before);
    // on the default bridge, only to a container that is on it too
    await ok(sb.loom('network', 'create', 'elsewhere'));
    await ok(sb.loom('run', '-d', '--name', 'away', '--network', 'elsewhere', 'box', 'sleep', '1d'));
    r = await fails(sb.loom('run', '-d', '--name', 'tofar', '--link', 'away', 'box', 'sleep', '1d'));
    assert.match(r.stderr, /Cannot link to \/away, as it does not belong to the default network/);
    await ok(sb.loom('rm', '-f', 'idle', 'tostopped', 'lc1', 'lc2', 'squatter', 'away', 'tofar'));
    await ok(sb.loom('network', 'rm', 'elsewhere'));
  });
});

// ------------------------------------------------------------------ networks

describe('bridge networks: isolation, icc, internal, options', { skip }, () => {
  test('isolation between networks: no way to the other containers nor to their gateway; published ports and egress work', async () => {
    await ok(sb.loom('network', 'create', '--subnet', '10.81.0.0/24', 'na'));
    await ok(sb.loom('network', 'create', '--subnet', '10.82.0.0/24', 'nb'));
    await serve(sb, 'a1', ['--network', 'na']);
    await serve(sb, 'b1', ['--network', 'nb', '-p', '8091:80']);
    await serve(sb, 'd1');
    const b1 = await ipOf(sb, 'b1'), d1 = await ipOf(sb, 'd1');
    // the outside world, given a route, cannot reach a container directly either
    await ok(sb.extExec(['ip', 'route', 'add', '10.82.0.0/24', 'via', HOST]));
    const [toB1, toD1, toNbGw, toDefGw, pingB1, ownGw, published, out, fromDefault, direct] = await Promise.all([
      fromCtr(sb, 'a1', b1, 80, 2), fromCtr(sb, 'a1', d1, 80, 2), pingable(sb, 'a1', '10.82.0.1'), pingable(sb, 'a1', '172.17.0.1'),
      pingable(sb, 'a1', b1), pingable(sb, 'a1', '10.81.0.1'), fromCtr(sb, 'a1', HOST, 8091), fromCtr(sb, 'a1', '198.51.100.2', 9000),
      fromCtr(sb, 'd1', b1, 80, 2), sb.extExec(['busybox', ...WGET(`http://${b1}/`, 2)]),
    ]);
    await ok(sb.extExec(['ip', 'route', 'del', '10.82.0.0/24']));
    assert.equal(toB1, null, 'na -> nb container');
    assert.equal(toD1, null, 'na -> default bridge container');
    assert.equal(toNbGw, false, "na -> nb's gateway");
    assert.equal(toDefGw, false, "na -> the default bridge's gateway");
    assert.equal(pingB1, false);
    assert.equal(ownGw, true, 'its own gateway');
    assert.equal(published, 'b1', "another network's published port, through the host address");
    assert.equal(out, 'peer=198.51.100.1', 'egress, masqueraded');
    assert.equal(fromDefault, null, 'default bridge -> nb container');
    assert.notEqual(direct.code, 0, 'outside world -> container address');
    // connected to both: reaches both
    await ok(sb.loom('network', 'connect', 'nb', 'a1'));
    assert.equal(await fromCtr(sb, 'a1', b1), 'b1');
    await ok(sb.loom('rm', '-f', 'a1', 'b1', 'd1'));
    await ok(sb.loom('network', 'rm', 'na', 'nb'));
  });

  test('-o com.docker.network.bridge.enable_icc=false: no container-to-container traffic, egress and published ports work', async () => {
    await ok(sb.loom('network', 'create', '-o', 'com.docker.network.bridge.enable_icc=false', 'quiet'));
    await serve(sb, 'q1', ['--network', 'quiet', '-p', '8092:80']);
    await serve(sb, 'q2', ['--network', 'quiet']);
    const q1 = await ipOf(sb, 'q1');
    const [byIp, byName, ping, out, ext, hairpin, gw] = await Promise.all([
      fromCtr(sb, 'q2', q1, 80, 2), fromCtr(sb, 'q2', 'q1', 80, 2), pingable(sb, 'q2', q1), fromCtr(sb, 'q2', '198.51.100.2', 9000),
      fromExt(sb, 8092), fromCtr(sb, 'q2', HOST, 8092), pingable(sb, 'q2', (await ok(sb.loom('network', 'inspect', '-f', '{{(index .IPAM.Config 0).Gateway}}', 'quiet')))),
    ]);
    assert.deepEqual([byIp, byName, ping], [null, null, false]);
    assert.equal(out, 'peer=198.51.100.1');
    assert.equal(ext, 'q1');
    assert.equal(hairpin, 'q1', 'a published port is reachable through the host address');
    assert.equal(gw, true);
    await ok(sb.loom('rm', '-f', 'q1', 'q2'));
    await ok(sb.loom('network', 'rm', 'quiet'));
  });

  test('--internal: containers talk to each other, nothing goes out or comes in, ports are not published', async () => {
    await ok(sb.loom('network', 'create', '--internal', '--subnet', '10.83.0.0/24', 'sealed'));
    await serve(sb, 'i1', ['--network', 'sealed', '-p', '8093:80']);
    await serve(sb, 'i2', ['--network', 'sealed']);
    await serve(sb, 'd2');
    const i1 = await ipOf(sb, 'i1');
    // not even with a route to it from outside, nor from another network's container
    await ok(sb.extExec(['ip', 'route', 'add', '10.83.0.0/24', 'via', HOST]));
    const [peer, out, routes, published, ext, other] = await Promise.all([
      fromCtr(sb, 'i2', 'i1'), sb.loom('exec', 'i1', 'ping', '-c1', '-W1', '198.51.100.2'), ok(sb.loom('exec', 'i1', 'ip', 'route')),
      fromExt(sb, 8093), sb.extExec(['busybox', ...WGET(`http://${i1}/`, 2)]), fromCtr(sb, 'd2', i1, 80, 2),
    ]);
    await ok(sb.extExec(['ip', 'route', 'del', '10.83.0.0/24']));
    assert.equal(peer, 'i1', 'containers of the internal network talk');
    assert.match(out.stderr, /Network is unreachable/);
    assert.doesNotMatch(routes, /default/);
    assert.equal(published, null, 'no published port');
    assert.notEqual(ext.code, 0, 'outside world -> container address');
    assert.equal(other, null, 'another network -> internal container');
    assert.equal(await ok(sb.loom('port', 'i1')), '');
    assert.equal(await ok(sb.loom('network', 'inspect', '-f', '{{.Internal}}', 'sealed')), 'true');
    await ok(sb.loom('rm', '-f', 'i1', 'i2', 'd2'));
    await ok(sb.loom('network', 'rm', 'sealed'));
  });

  test('enable_ip_masquerade=false: the outside world sees the container address', async () => {
    await ok(sb.loom('network', 'create', '--subnet', '10.84.0.0/24', '-o', 'com.docker.network.bridge.enable_ip_masquerade=false', 'plain'));
    await ok(sb.loom('run', '-d', '--name', 'm1', '--network', 'plain', 'box', 'sleep', '1d'));
    await ok(sb.extExec(['ip', 'route', 'add', '10.84.0.0/24', 'via', HOST])); // the way back, as a routed network would have
    const ip = await ipOf(sb, 'm1');
    assert.equal(await fromCtr(sb, 'm1', '198.51.100.2', 9000), `peer=${ip}`);
    await ok(sb.extExec(['ip', 'route', 'del', '10.84.0.0/24']));
    await ok(sb.loom('rm', '-f', 'm1'));
    await ok(sb.loom('network', 'rm', 'plain'));
  });

  test('bridge.name, driver.mtu and host_binding_ipv4', async () => {
    await ok(sb.loom('network', 'create', '-o', 'com.docker.network.bridge.name=loomtest0', '-o', 'com.docker.network.driver.mtu=1400',
      '-o', 'com.docker.network.bridge.host_binding_ipv4=127.0.0.1', 'tuned'));
    assert.match(await ok(sb.hostExec(['ip', '-o', 'link', 'show', 'loomtest0'])), /mtu 1400/);
    await serve(sb, 't1', ['--network', 'tuned', '-p', '8094:80', '-p', `${HOST}:8095:80`]);
    assert.equal(await ok(sb.loom('exec', 't1', 'cat', '/sys/class/net/eth0/mtu')), '1400');
    assert.match(await ok(sb.hostExec(['ip', '-o', 'link', 'show', 'master', 'loomtest0'])), /mtu 1400/);
    assert.equal(await ok(sb.loom('port', 't1')), `80/tcp -> 127.0.0.1:8094\n80/tcp -> ${HOST}:8095`);
    const got = await Promise.all([fromExt(sb, 8094), fromHost(sb, '127.0.0.1', 8094), fromExt(sb, 8095)]);
    assert.deepEqual(got, [null, 't1', 't1'], 'without an address the port binds to host_binding_ipv4; an explicit one wins');
    await ok(sb.loom('rm', '-f', 't1'));
    await ok(sb.loom('network', 'rm', 'tuned'));
    assert.equal((await sb.hostExec(['ip', 'link', 'show', 'loomtest0'])).code, 1, 'the bridge goes with the network');
  });

  test('bad option values are refused, naming them, and leave nothing', async () => {
    const before = await snapshot(sb);
    const cases: [string, string][] = [
      ['com.docker.network.driver.mtu=abc', 'failed to parse com.docker.network.driver.mtu value: abc (strconv.Atoi: parsing "abc": invalid syntax)'],
      ['com.docker.network.bridge.enable_icc=maybe', 'failed to parse com.docker.network.bridge.enable_icc value: maybe (strconv.ParseBool: parsing "maybe": invalid syntax)'],
      ['com.docker.network.bridge.host_binding_ipv4=nowhere', 'failed to parse com.docker.network.bridge.host_binding_ipv4 value: nowhere (nil ip)'],
      ['com.docker.network.bridge.name=a-name-longer-than-15', 'bridge name a-name-longer-than-15 is longer than 15 characters'],
    ];
    for (const [opt, msg] of cases) {
      const r = await fails(sb.loom('network', 'create', '-o', opt, 'badopt'), opt);
      assert.match(r.stderr, new RegExp(msg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), opt);
    }
    assert.deepEqual(await eventually(() => snapshot(sb), before), before);
    assert.equal((await sb.loom('network', 'inspect', 'badopt')).code, 1);
  });
});

// ------------------------------------------------------------------ daemon --icc=false

describe('daemon --icc=false', { skip }, () => {
  test('containers of the default bridge cannot reach each other; links open the exposed ports only; egress and published ports work', async () => {
    await serve(sbi, 'srv', ['--expose', '80', '-p', '8080:80'], [80, 81]);
    await ok(sbi.loom('run', '-d', '--name', 'linked', '--link', 'srv', 'box', 'sleep', '1d'));
    await ok(sbi.loom('run', '-d', '--name', 'stranger', 'box', 'sleep', '1d'));
    const srv = await ipOf(sbi, 'srv'), linked = await ipOf(sbi, 'linked');
    const [viaLink, otherPort, stranger, back, out, ext, hairpin, gw] = await Promise.all([
      fromCtr(sbi, 'linked', 'srv'), fromCtr(sbi, 'linked', srv, 81, 2), fromCtr(sbi, 'stranger', srv, 80, 2), pingable(sbi, 'srv', linked),
      fromCtr(sbi, 'stranger', '198.51.100.2', 9000), fromExt(sbi, 8080), fromCtr(sbi, 'stranger', HOST, 8080), pingable(sbi, 'stranger', '172.17.0.1'),
    ]);
    assert.equal(viaLink, 'srv', 'the link opens the exposed port');
    assert.equal(otherPort, null, 'but not the others');
    assert.equal(stranger, null, 'no icc');
    assert.equal(back, false, 'the link is one-way');
    assert.equal(out, 'peer=198.51.100.1', 'egress');
    assert.equal(ext, 'srv', 'published port from outside');
    assert.equal(hairpin, 'srv', 'published port from another container');
    assert.equal(gw, true);
    assert.equal(await ok(sbi.loom('network', 'inspect', '-f', '{{index .Options "com.docker.network.bridge.enable_icc"}}', 'bridge')), 'false');
    const links = await ok(sbi.hostExec(['nft', 'list', 'set', 'ip', 'loom', 'links']));
    assert.match(links, new RegExp(`"loom0" \\. ${linked.replace(/\./g, '\\.')} \\. ${srv.replace(/\./g, '\\.')} \\. tcp \\. 80`));
  });

  test('the link exception follows the linked container to its new address and goes with it', async () => {
    await ok(sbi.loom('stop', '-t', '0', 'srv'));
    assert.doesNotMatch(await ok(sbi.hostExec(['nft', 'list', 'set', 'ip', 'loom', 'links'])), /elements/, 'a stopped container keeps no exception');
    await ok(sbi.loom('run', '-d', '--name', 'squatter', 'box', 'sleep', '1d'));
    await ok(sbi.loom('start', 'srv'));
    await listening(sbi, 'srv', [80]);
    const [viaLink, squatter] = await Promise.all([fromCtr(sbi, 'linked', 'srv'), fromCtr(sbi, 'squatter', await ipOf(sbi, 'srv'), 80, 2)]);
    assert.equal(viaLink, 'srv');
    assert.equal(squatter, null);
    // a daemon killed and started again adopts all of it: the same rules, the ports held again
    const before = await snapshot(sbi);
    await sbi.stopDaemon('SIGKILL');
    assert.equal(await fromExt(sbi, 8080), 'srv', 'published ports keep working while the daemon is down');
    await sbi.startDaemon();
    assert.deepEqual(await eventually(() => snapshot(sbi), before), before);
    assert.equal(await hostCanBind(sbi, 8080), false, 'the published port is held again');
    assert.deepEqual(await Promise.all([fromExt(sbi, 8080), fromCtr(sbi, 'linked', 'srv')]), ['srv', 'srv']);
    await ok(sbi.loom('rm', '-f', 'linked'));
    assert.doesNotMatch(await ok(sbi.hostExec(['nft', 'list', 'set', 'ip', 'loom', 'links'])), /elements/, 'removing the linking container removes its exceptions');
    await ok(sbi.loom('rm', '-f', 'srv', 'stranger', 'squatter'));
  });
});

// ------------------------------------------------------------------ the docker CLI

describe('the docker CLI', { skip }, () => {
  test('run -p, port, inspect, ps; reachable; conflicts; --link; rm closes', async () => {
    const before = await snapshot(sb);
    await ok(sb.docker('run', '-d', '--name', 'dweb', '-p', '8180:80', '-p', '127.0.0.1::80', '-p', '8181-8182:8181-8182/udp', 'box', 'sh', '-c', 'echo dweb > /www/index.html; exec httpd -f -p 80 -h /www'), 'docker run');
    await listening(sb, 'dweb', [80]);
    const port = (await ok(sb.docker('port', 'dweb'))).split('\n');
    assert.equal(port[0], '80/tcp -> 0.0.0.0:8180');
    assert.match(port[1]!, /^80\/tcp -> 127\.0\.0\.1:\d+$/);
    assert.deepEqual(port.slice(2), ['8181/udp -> 0.0.0.0:8181', '8182/udp -> 0.0.0.0:8182']);
    assert.equal(await ok(sb.docker('port', 'dweb', '8181/udp')), '0.0.0.0:8181');
    const local = Number(port[1]!.split(':').pop());
    assert.deepEqual(JSON.parse(await ok(sb.docker('inspect', '-f', '{{json .NetworkSettings.Ports}}', 'dweb'))), {
      '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '8180' }, { HostIp: '127.0.0.1', HostPort: String(local) }],
      '8181/udp': [{ HostIp: '0.0.0.0', HostPort: '8181' }], '8182/udp': [{ HostIp: '0.0.0.0', HostPort: '8182' }],
    });
    assert.equal(await ok(sb.docker('ps', '--filter', 'name=dweb', '--format', '{{.Ports}}')), `0.0.0.0:8181-8182->8181-8182/udp, 0.0.0.0:8180->80/tcp, 127.0.0.1:${local}->80/tcp`);
    const got = await Promise.all([fromExt(sb, 8180), fromHost(sb, '127.0.0.1', 8180), fromHost(sb, '127.0.0.1', local), fromExt(sb, local)]);
    assert.deepEqual(got, ['dweb', 'dweb', 'dweb', null]);
    // conflict: docker's own wording and exit status; with --rm the CLI returns (the daemon removed the container)
    let r = await fails(sb.docker('run', '-d', '--name', 'ddup', '-p', '8180:80', 'box', 'true'));
    assert.equal(r.code, 125);
    assert.match(r.stderr, /^docker: Error response from daemon: failed to set up container networking: driver failed programming external connectivity on endpoint ddup \([0-9a-f]{64}\): Bind for 0\.0\.0\.0:8180 failed: port is already allocated/);
    r = await fails(sb.docker('run', '--rm', '-p', '8180:80', 'box', 'true'));
    assert.equal(r.code, 125);
    assert.match(r.stderr, /port is already allocated/);
    r = await fails(sb.docker('run', '-p', '8080:70000', 'box', 'true'));
    assert.match(r.stderr, /invalid containerPort: 70000/);
    // links through the docker CLI
    await ok(sb.docker('run', '-d', '--name', 'dlinker', '--link', 'dweb:web', 'box', 'sleep', '1d'));
    assert.equal(await fromCtr(sb, 'dlinker', 'web'), 'dweb');
    assert.equal(await ok(sb.docker('inspect', '-f', '{{.HostConfig.Links}}', 'dlinker')), '[/dweb:/dlinker/web]');
    r = await fails(sb.docker('run', '--rm', '--link', 'nosuch', 'box', 'true'));
    assert.match(r.stderr, /could not get container for nosuch/);
    assert.doesNotMatch(r.stderr + r.stdout, /Unable to find image/);
    await ok(sb.docker('rm', '-f', 'dweb', 'dlinker', 'ddup'));
    assert.deepEqual(await Promise.all([fromExt(sb, 8180), fromHost(sb, '127.0.0.1', local)]), [null, null]);
    assert.deepEqual(await eventually(() => snapshot(sb), before), before, 'nothing left after rm');
  });

  test('docker network create with options, -p on it, isolation', async () => {
    await ok(sb.docker('network', 'create', '-o', 'com.docker.network.bridge.enable_icc=false', '--subnet', '10.85.0.0/24', 'dquiet'));
    await ok(sb.docker('network', 'create', '--internal', 'dsealed'));
    await serve(sb, 'dq1', ['--network', 'dquiet', '-p', '8183:80']);
    await serve(sb, 'dq2', ['--network', 'dquiet']);
    await serve(sb, 'ds1', ['--network', 'dsealed']);
    const [icc, ext, sealed] = await Promise.all([fromCtr(sb, 'dq2', 'dq1', 80, 2), fromExt(sb, 8183), fromCtr(sb, 'dq1', await ipOf(sb, 'ds1'), 80, 2)]);
    assert.deepEqual([icc, ext, sealed], [null, 'dq1', null]);
    const opts = JSON.parse(await ok(sb.docker('network', 'inspect', '-f', '{{json .Options}}', 'dquiet')));
    assert.deepEqual(opts, { 'com.docker.network.bridge.enable_icc': 'false' });
    await ok(sb.docker('rm', '-f', 'dq1', 'dq2', 'ds1'));
    await ok(sb.docker('network', 'rm', 'dquiet', 'dsealed'));
  });
});

// ------------------------------------------------------------------ nothing left

test('after everything is removed, the host holds only the default bridge and its rules', { skip }, async () => {
  await removeAll(sb);
  assert.equal(await ok(sb.loom('ps', '-aq')), '');
  const s = await snapshot(sb);
  assert.deepEqual(s.netns, []);
  assert.deepEqual(s.links.filter((l) => /^(veth|br-)/.test(l)), []);
  assert.doesNotMatch(s.nft, /elements = \{ (?!"loom0")/, 'no port, link or foreign bridge element');
  assert.match(s.nft, /elements = \{ "loom0" \}/);
});
