// Property-based hostile input (issue 12), with fast-check against a real daemon in a sandbox: random
// shapes and values for container create, network create/connect, exec, update, rename, filters and ids
// in paths. Whatever comes in, the answer is below 500 and, when a refusal, JSON with a message; the
// daemon answers _ping after every case; whatever a case created it removes, and afterwards the daemon's
// containers and networks and the sandbox host's links and namespaces are what they were. Fixed seed and
// a bounded number of runs, so a failure replays and the file stays short.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fc from 'fast-check';
import { createSandbox, type Sandbox } from '../helpers/sandbox.ts';
import { ok } from '../helpers/assert.ts';

let sb: Sandbox;
const skip = process.getuid?.() !== 0 ? 'needs root (network namespaces, runc)' : false;
// fixed in CI; LOOM_PROPS_SEED / LOOM_PROPS_RUNS explore further by hand
const SEED = Number(process.env.LOOM_PROPS_SEED ?? 20261207);
const RUNS = Number(process.env.LOOM_PROPS_RUNS ?? 40);

before(async () => {
  if (skip) return;
  sb = await createSandbox({ tag: 'props' });
  await sb.startDaemon();
  await sb.image('box');
  await ok(sb.loom('network', 'create', '--subnet', '10.66.0.0/24', 'fxnet'));
  await ok(sb.loom('run', '-d', '--name', 'fx', 'box', 'sleep', '3600'));
}, { timeout: 120_000 });

after(async () => {
  if (process.env.LOOM_PROPS_STATS) console.log([...seen].sort().map(([k, n]) => `${k}: ${n}`).join('\n'));
  if (sb) await sb.cleanup();
});

interface Reply { status: number; text: string; json: any }

/** A request over the socket: `body` as JSON, or raw bytes as they are (still labelled JSON). */
function send(method: string, path: string, body?: unknown): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
    const req = http.request({ socketPath: sb.socket, method, path, headers: data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json: any;
        try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
        resolve({ status: res.statusCode ?? 0, text, json });
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

/** The contract every answer keeps, and the daemon still there. */
const seen = new Map<string, number>();
async function check(what: string, r: Reply): Promise<void> {
  const k = `${what.split(' ')[0]} ${r.status}`;
  seen.set(k, (seen.get(k) ?? 0) + 1);
  assert.ok(r.status > 0 && r.status < 500, `${what}: ${r.status} ${r.text.slice(0, 500)}`);
  if (r.status >= 400) assert.equal(typeof r.json?.message, 'string', `${what}: no JSON message: ${r.text.slice(0, 200)}`);
  const ping = await send('GET', '/_ping');
  assert.equal(ping.status, 200, `after ${what}`);
}

async function state(): Promise<unknown> {
  const cs = await send('GET', '/containers/json?all=1');
  const ns = await send('GET', '/networks');
  // veth names are random: a container connected again has a new one
  const links = (await ok(sb.hostExec(['ip', '-o', 'link', 'show']))).split('\n').map((l) => l.split(': ')[1]!.split('@')[0]!.replace(/^veth[0-9a-f]{7}$/, 'veth*')).filter((l) => !l.startsWith('lmdel')).sort(); // retired links go in the background
  const netns = (await ok(sb.hostExec(['ip', 'netns', 'list']))).split('\n').filter((l) => l.startsWith(sb.netnsPrefix)).length;
  return {
    containers: cs.json.map((c: any) => `${c.Id} ${c.Names[0]} ${c.State}`).sort(),
    networks: ns.json.map((n: any) => `${n.Id} ${n.Name}`).sort(),
    links, netns,
  };
}

// ---- values that have broken engines: separators, traversal, control characters, huge and odd strings
const nasty = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('', '/', '..', '../../etc/passwd', 'a/b', 'a\u0000b', 'a\nb', 'a b', '%2e%2e', '-rf', '*', '$(id)', '`id`',
    '\uD800', '\uFFFF', 'x'.repeat(100_000), 'é'.repeat(300), 'fx', 'fxnet', 'bridge', 'host', 'none', 'container:fx', 'default', '0', '-1') },
  { weight: 2, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
);
/** a value of the right type or any JSON at all */
const orAny = <T>(arb: fc.Arbitrary<T>) => fc.oneof({ weight: 30, arbitrary: arb }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) });
const port = fc.oneof(fc.integer({ min: -5, max: 70_000 }).map(String), fc.constantFrom('', '80-70', '1-65535', '0', '8080-8079', 'abc', '65536'));
const ipv4 = fc.oneof(
  fc.tuple(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 256 })).map((a) => a.join('.')),
  fc.constantFrom('10.66.0.0', '10.66.0.255', '10.66.0.1', '10.66.0.7', '::1', 'fe80::1%eth0', '1.2.3', '01.2.3.4', '0.0.0.0'),
);
const cidr = fc.oneof(fc.tuple(ipv4, fc.integer({ min: -1, max: 130 })).map(([a, p]) => `${a}/${p}`), fc.constantFrom('10.0.0.0/8', '10.66.0.0/24', '10.99.0.0/33', 'fd00::/64', '/24', '10.0.0.0'), nasty);
const strList = fc.array(nasty, { maxLength: 4 });
const strMap = fc.dictionary(nasty, nasty, { maxKeys: 3 });
/** Percent-encodes every byte but the unreserved ones (a lone surrogate becomes U+FFFD's bytes, as on the wire). */
const q = (s: string) => [...Buffer.from(s)].map((c) => (/[A-Za-z0-9_.~-]/.test(String.fromCharCode(c)) ? String.fromCharCode(c) : `%${c.toString(16).toUpperCase().padStart(2, '0')}`)).join('');

test('container create: random configs are created and removed, or refused with a message', { skip }, async () => {
  const before = await state();
  const portKey = fc.tuple(port, fc.constantFrom('tcp', 'udp', 'sctp', 'xyz', '')).map(([p, t]) => (t ? `${p}/${t}` : p));
  const body = fc.record({
    Image: orAny(fc.constantFrom('box', 'nope', '', 'box:latest', 'sha256:zz', 'x'.repeat(300))),
    Cmd: orAny(fc.oneof(strList, nasty)),
    Env: orAny(strList),
    Labels: orAny(strMap),
    Hostname: orAny(nasty),
    User: orAny(nasty),
    WorkingDir: orAny(nasty),
    ExposedPorts: orAny(fc.dictionary(portKey, fc.constant({}), { maxKeys: 2 })),
    StopSignal: orAny(nasty),
    HostConfig: orAny(fc.record({
      NetworkMode: orAny(nasty),
      PortBindings: orAny(fc.dictionary(portKey, fc.array(fc.record({ HostIp: orAny(ipv4), HostPort: orAny(port) }, { requiredKeys: [] }), { maxLength: 2 }), { maxKeys: 2 })),
      Links: orAny(strList),
      RestartPolicy: orAny(fc.record({ Name: orAny(fc.constantFrom('no', 'always', 'on-failure', 'unless-stopped', 'sometimes')), MaximumRetryCount: orAny(fc.integer({ min: -3, max: 5 })) }, { requiredKeys: [] })),
      ExtraHosts: orAny(strList),
      Dns: orAny(fc.array(ipv4, { maxLength: 2 })),
    }, { requiredKeys: [] })),
    NetworkingConfig: orAny(fc.record({
      EndpointsConfig: orAny(fc.dictionary(nasty, fc.record({ Aliases: orAny(strList), IPAMConfig: orAny(fc.record({ IPv4Address: orAny(ipv4) }, { requiredKeys: [] })) }, { requiredKeys: [] }), { maxKeys: 2 })),
    }, { requiredKeys: [] })),
  }, { requiredKeys: [] });
  await fc.assert(fc.asyncProperty(body, fc.option(nasty), async (b, name) => {
    const r = await send('POST', `/containers/create${name !== null ? `?name=${q(name)}` : ''}`, b);
    await check(`create ${JSON.stringify(b).slice(0, 300)} name=${JSON.stringify(name)?.slice(0, 50)}`, r);
    if (r.status === 201) {
      const rm = await send('DELETE', `/containers/${r.json.Id}?force=1`);
      assert.equal(rm.status, 204, rm.text);
    }
  }), { seed: SEED, numRuns: RUNS * 2, endOnFailure: true });
  assert.deepEqual(await state(), before);
});

test('container create: a valid config with one hostile field, then started and removed', { skip }, async () => {
  const before = await state();
  const portKey = fc.tuple(port, fc.constantFrom('tcp', 'udp', '')).map(([p, t]) => (t ? `${p}/${t}` : p));
  const field = fc.oneof(
    fc.record({ Hostname: nasty }), fc.record({ Domainname: nasty }), fc.record({ User: nasty }), fc.record({ WorkingDir: nasty }),
    fc.record({ Env: strList }), fc.record({ Labels: strMap }), fc.record({ StopSignal: nasty }), fc.record({ MacAddress: nasty }),
    fc.record({ ExposedPorts: fc.dictionary(portKey, fc.constant({}), { maxKeys: 2 }) }),
    fc.record({ HostConfig: fc.oneof(
      fc.record({ PortBindings: fc.dictionary(portKey, fc.array(fc.record({ HostIp: fc.oneof(ipv4, fc.constant('')), HostPort: port }), { maxLength: 2 }), { maxKeys: 2 }) }),
      fc.record({ NetworkMode: fc.oneof(nasty, fc.constantFrom('fxnet', 'none', 'host', 'bridge', 'container:fx')) }),
      fc.record({ Links: fc.array(fc.oneof(nasty, fc.constantFrom('fx', 'fx:alias', 'fx:a:b', ':x')), { maxLength: 2 }) }),
      fc.record({ ExtraHosts: fc.array(fc.oneof(nasty, fc.tuple(nasty, ipv4).map(([h, i]) => `${h}:${i}`)), { maxLength: 2 }) }),
      fc.record({ Dns: fc.array(fc.oneof(ipv4, nasty), { maxLength: 2 }) }), fc.record({ DnsSearch: strList }), fc.record({ DnsOptions: strList }),
      fc.record({ RestartPolicy: fc.record({ Name: fc.constantFrom('no', 'always', 'on-failure', 'unless-stopped', 'x', ''), MaximumRetryCount: fc.integer({ min: -3, max: 3 }) }) }),
    ) }),
    fc.record({ NetworkingConfig: fc.record({ EndpointsConfig: fc.dictionary(fc.constantFrom('fxnet', 'bridge', 'nope', 'host'), fc.record({ Aliases: strList, IPAMConfig: fc.record({ IPv4Address: ipv4 }) }, { requiredKeys: [] }), { maxKeys: 2 }) }) }),
  );
  await fc.assert(fc.asyncProperty(field, async (f) => {
    const b = { Image: 'box', Cmd: ['true'], ...f };
    const r = await send('POST', '/containers/create', b);
    await check(`create1 ${JSON.stringify(b).slice(0, 300)}`, r);
    if (r.status !== 201) return;
    const st = await send('POST', `/containers/${r.json.Id}/start`);
    await check(`start ${JSON.stringify(b).slice(0, 300)}`, st);
    const rm = await send('DELETE', `/containers/${r.json.Id}?force=1`);
    assert.equal(rm.status, 204, rm.text);
  }), { seed: SEED, numRuns: RUNS, endOnFailure: true });
  assert.deepEqual(await state(), before);
});

test('network create: random names, drivers, subnets and options', { skip }, async () => {
  const before = await state();
  const body = fc.record({
    Name: orAny(nasty),
    // macvlan/ipvlan without a parent need a dummy link, which this kernel lacks (a 500 the underlay tests cover)
    Driver: orAny(fc.constantFrom('bridge', 'overlay', 'null', 'host', 'nope', '', '../x', 'Bridge')),
    Internal: orAny(fc.boolean()),
    EnableIPv6: orAny(fc.boolean()),
    Options: orAny(fc.oneof(strMap, fc.constantFrom({ 'com.docker.network.driver.mtu': '-1' }, { 'com.docker.network.bridge.name': 'x'.repeat(40) }, { parent: '../../lo' }, { 'com.docker.network.driver.mtu': '99999999' }))),
    Labels: orAny(strMap),
    IPAM: orAny(fc.record({
      Driver: orAny(fc.constantFrom('default', 'nope', '')),
      Config: orAny(fc.array(fc.record({ Subnet: orAny(cidr), Gateway: orAny(ipv4), IPRange: orAny(cidr), AuxiliaryAddresses: orAny(fc.dictionary(nasty, ipv4, { maxKeys: 2 })) }, { requiredKeys: [] }), { maxLength: 2 })),
    }, { requiredKeys: [] })),
  }, { requiredKeys: [] });
  await fc.assert(fc.asyncProperty(body, async (b) => {
    const r = await send('POST', '/networks/create', b);
    await check(`network create ${JSON.stringify(b).slice(0, 300)}`, r);
    if (r.status === 201) {
      const rm = await send('DELETE', `/networks/${r.json.Id}`);
      assert.equal(rm.status, 204, rm.text);
    }
  }), { seed: SEED, numRuns: RUNS * 2, endOnFailure: true });
  assert.deepEqual(await state(), before);
});

test('connect and disconnect: random containers, networks, addresses and aliases', { skip }, async () => {
  const before = await state();
  const netRef = fc.oneof({ weight: 3, arbitrary: fc.constant('fxnet') }, { weight: 1, arbitrary: nasty });
  const body = fc.record({
    Container: orAny(fc.oneof({ weight: 3, arbitrary: fc.constant('fx') }, { weight: 1, arbitrary: nasty })),
    EndpointConfig: orAny(fc.record({ Aliases: orAny(strList), IPAMConfig: orAny(fc.record({ IPv4Address: orAny(ipv4), IPv6Address: orAny(nasty) }, { requiredKeys: [] })), MacAddress: orAny(nasty) }, { requiredKeys: [] })),
  }, { requiredKeys: [] });
  await fc.assert(fc.asyncProperty(netRef, body, fc.boolean(), async (n, b, force) => {
    const r = await send('POST', `/networks/${q(n)}/connect`, b);
    await check(`connect ${n.slice(0, 50)} ${JSON.stringify(b).slice(0, 300)}`, r);
    if (r.status === 200) {
      const d = await send('POST', `/networks/${q(n)}/disconnect`, { Container: b.Container, Force: force });
      assert.equal(d.status, 200, d.text);
    }
    const d = await send('POST', `/networks/${q(n)}/disconnect`, { ...b, Force: force });
    await check('disconnect', d);
    // a case that took the fixture off its own network (bridge, by name or id prefix) puts it back
    if (d.status === 200 && !(await send('GET', '/containers/fx/json')).json.NetworkSettings.Networks.bridge) {
      assert.equal((await send('POST', '/networks/bridge/connect', { Container: 'fx' })).status, 200);
    }
  }), { seed: SEED, numRuns: RUNS, endOnFailure: true });
  assert.deepEqual(await state(), before);
});

test('exec create/inspect, update, rename on a running container', { skip }, async () => {
  const before = await state();
  const exec = fc.record({ Cmd: orAny(strList), Env: orAny(strList), User: orAny(nasty), WorkingDir: orAny(nasty), Tty: orAny(fc.boolean()), Privileged: orAny(fc.boolean()) }, { requiredKeys: [] });
  await fc.assert(fc.asyncProperty(exec, fc.oneof(fc.constant('fx'), nasty), async (b, who) => {
    const r = await send('POST', `/containers/${q(who)}/exec`, b);
    await check(`exec ${JSON.stringify(b).slice(0, 300)}`, r);
    if (r.status === 201) await check('exec inspect', await send('GET', `/exec/${r.json.Id}/json`));
  }), { seed: SEED, numRuns: RUNS, endOnFailure: true });
  const update = fc.record({ RestartPolicy: orAny(fc.record({ Name: orAny(fc.constantFrom('no', 'always', 'on-failure', 'unless-stopped', 'x', '')), MaximumRetryCount: orAny(fc.integer({ min: -5, max: 5 })) }, { requiredKeys: [] })), Memory: orAny(fc.integer()), CpuShares: orAny(fc.integer()) }, { requiredKeys: [] });
  await fc.assert(fc.asyncProperty(update, async (b) => {
    await check(`update ${JSON.stringify(b).slice(0, 300)}`, await send('POST', '/containers/fx/update', b));
  }), { seed: SEED, numRuns: RUNS, endOnFailure: true });
  await check('reset policy', await send('POST', '/containers/fx/update', { RestartPolicy: { Name: 'no' } }));
  await fc.assert(fc.asyncProperty(nasty, async (name) => {
    const r = await send('POST', `/containers/fx/rename?name=${q(name)}`);
    await check(`rename ${JSON.stringify(name).slice(0, 80)}`, r);
    if (r.status === 204) assert.equal((await send('POST', `/containers/${q(name)}/rename?name=fx`)).status, 204);
  }), { seed: SEED, numRuns: RUNS, endOnFailure: true });
  assert.equal((await send('GET', '/containers/fx/json')).json.State.Running, true);
  assert.deepEqual(await state(), before);
});

test('filters, query values and ids in paths', { skip }, async () => {
  const before = await state();
  const filters = fc.oneof(
    fc.dictionary(fc.constantFrom('name', 'id', 'status', 'label', 'network', 'ancestor', 'before', 'since', 'publish', 'expose', 'exited', 'driver', 'scope', 'type', 'dangling', 'nope'), fc.array(nasty, { maxLength: 3 }), { maxKeys: 3 }).map((f) => JSON.stringify(f)),
    fc.constantFrom('{', '[]', '{"name":"x"}', '{"name":{"x":true}}', '{"id":["^([0-9a-f]+)+g$"]}', 'null', '5', '{"name":null}', '{"name":[5]}', '{"name":{"x":"y"}}', '"x"', '{"label":[null]}'),
    fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
    nasty,
  );
  const qv = fc.oneof(nasty, fc.integer().map(String), fc.constantFrom('1', 'true', '-1', '1e3', '0x10', '99999999999999999999'));
  await fc.assert(fc.asyncProperty(filters, qv, async (f, v) => {
    await check(`ps ${f.slice(0, 100)}`, await send('GET', `/containers/json?all=1&filters=${q(f)}`));
    await check(`ps-limit ${v.slice(0, 40)}`, await send('GET', `/containers/json?limit=${q(v)}`));
    await check(`network ls ${f.slice(0, 100)}`, await send('GET', `/networks?filters=${q(f)}`));
    await check(`events ${f.slice(0, 100)}`, await send('GET', `/events?filters=${q(f)}&since=0&until=${Math.floor(Date.now() / 1000)}`));
    await check(`events since ${v.slice(0, 40)}`, await send('GET', `/events?since=${q(v)}&until=1`));
    await check(`images ${f.slice(0, 100)}`, await send('GET', `/images/json?filters=${q(f)}`));
  }), { seed: SEED, numRuns: RUNS, endOnFailure: true });
  const id = fc.oneof(nasty, fc.constantFrom('..', '%2e%2e', '../networks', 'fx/../fx', '%00', '%FF'));
  await fc.assert(fc.asyncProperty(id, async (x) => {
    // a raw path as written (the client may send what it likes) and an escaped one
    for (const p of [x, q(x)]) {
      if (!/^[\x21-\x7e]*$/.test(p)) continue; // node's client refuses such paths itself
      const c = await send('GET', `/containers/${p}/json`);
      await check(`inspect ${p.slice(0, 60)}`, c);
      const n = await send('GET', `/networks/${p}`);
      await check(`network inspect ${p.slice(0, 60)}`, n);
      await check(`image inspect ${p.slice(0, 60)}`, await send('GET', `/images/${p}/json`));
      await check(`logs ${p.slice(0, 60)}`, await send('GET', `/containers/${p}/logs?stdout=1`));
      // what names the fixtures (their names, a prefix of their ids) is only looked at
      if (c.status === 404) await check(`stop ${p.slice(0, 60)}`, await send('POST', `/containers/${p}/stop?t=0`));
      if (n.status === 404) await check(`network rm ${p.slice(0, 60)}`, await send('DELETE', `/networks/${p}`));
    }
  }), { seed: SEED, numRuns: RUNS, endOnFailure: true });
  assert.deepEqual(await state(), before);
});

test('raw bodies: random bytes, broken and deep JSON, invalid UTF-8 on every JSON endpoint', { skip }, async () => {
  const before = await state();
  const endpoints = fc.constantFrom('/containers/create', '/networks/create', '/networks/fxnet/connect', '/networks/fxnet/disconnect', '/containers/fx/exec', '/containers/fx/update');
  const valid = fc.constantFrom('{"Image":"box","Cmd":["true"]}', '{"Name":"rb"}', '{"Container":"nope"}', '{"Cmd":["true"]}', '{"RestartPolicy":{"Name":"no"}}');
  const mutated = fc.tuple(valid, fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 4 })).map(([v, at, bytes]) => {
    const b = Buffer.from(v);
    const i = at % (b.length + 1);
    return Buffer.concat([b.subarray(0, i), Buffer.from(bytes), b.subarray(i)]);
  });
  const deep = fc.tuple(fc.integer({ min: 9_990, max: 10_010 }), fc.constantFrom('[', '{"a":')).map(([n, open]) =>
    Buffer.from(`{"Name":"deep","X":${open.repeat(n)}1${(open === '[' ? ']' : '}').repeat(n)}}`));
  const body = fc.oneof(fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)), mutated, deep);
  await fc.assert(fc.asyncProperty(endpoints, body, async (p, b) => {
    const r = await send('POST', p, b);
    await check(`raw ${p} ${JSON.stringify(b.toString('latin1').slice(0, 80))}`, r);
    if (p === '/containers/create' && r.status === 201) assert.equal((await send('DELETE', `/containers/${r.json.Id}?force=1`)).status, 204);
    if (p === '/networks/create' && r.status === 201) assert.equal((await send('DELETE', `/networks/${r.json.Id}`)).status, 204);
    if (p.endsWith('/connect') && r.status === 200) assert.equal((await send('POST', '/networks/fxnet/disconnect', { Container: 'fx', Force: true })).status, 200);
  }), { seed: SEED, numRuns: RUNS * 2, endOnFailure: true });
  await check('reset policy', await send('POST', '/containers/fx/update', { RestartPolicy: { Name: 'no' } }));
  assert.deepEqual(await state(), before);
});
