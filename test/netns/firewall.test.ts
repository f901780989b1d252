// The firewall against the real kernel, in a world of namespaces this test creates (names carry the PID):
//
//   ext (198.51.100.2, fd00:198::2) --veth-- host (198.51.100.1, fd00:198::1)
//                                              br0 172.17.0.1/16 fd00:17::1/64  c1 .2, c2 .3   icc on
//                                              br1 172.18.0.1/16                c3 .2          icc on
//                                              br2 172.19.0.1/16                c4 .2, c5 .3   icc off
//
// loom's Firewall runs in a child process started with `ip netns exec <host>` (this same file, in child
// mode), so its nft context can only ever see the host namespace of this test, never the machine's own.
// Checks: the ruleset loads, reconcile is idempotent, elements come and go incrementally, a failed
// transaction changes nothing, and real TCP/UDP traffic goes where the rules say (DNAT from outside, from
// the host and its 127.0.0.1, hairpin, ranges, IPv6, masquerade, isolation, icc=false with a link).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import type { FwChange, FwLink, FwNetwork, FwPort, FwState } from '../../src/firewall/model.ts';

const SELF = import.meta.filename;
const NODE = process.execPath;

if (process.env.LOOM_FW_CHILD === '1') {
  await childMain();
} else {
  tests();
}

/** Child mode: a Firewall in this (the test's host) namespace, driven by JSON lines on stdin. */
async function childMain(): Promise<void> {
  const { Nft } = await import('../../src/firewall/nft.ts');
  const { Firewall } = await import('../../src/firewall/firewall.ts');
  const { NfnlSocket } = await import('../../src/firewall/nfnl.ts');
  const nft = new Nft();
  // as the daemon: elements as loom's own netlink batches, whole tables through libnftables
  const fw = new Firewall(nft, new NfnlSocket());
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    const { id, op, arg } = JSON.parse(line) as { id: number; op: string; arg: unknown };
    let reply: { id: number; ok: boolean; result?: unknown; error?: string };
    try {
      let result: unknown;
      if (op === 'reconcile') fw.reconcile(arg as FwState);
      else if (op === 'apply') fw.apply(arg as FwChange);
      else if (op === 'state') result = fw.state();
      else if (op === 'run') result = nft.run(arg as string);
      else if (op === 'removeAll') fw.removeAll();
      else throw new Error(`unknown op ${op}`);
      reply = { id, ok: true, result };
    } catch (e) {
      reply = { id, ok: false, error: (e as Error).message };
    }
    process.stdout.write(JSON.stringify(reply) + '\n');
  }
  nft.close();
}

function tests(): void {
  const isRoot = process.getuid?.() === 0;
  const pid = process.pid;
  const ns = (s: string) => `loomt-fw-${pid}-${s}`;
  const NAMES = ['host', 'ext', 'c1', 'c2', 'c3', 'c4', 'c5'];

  const sh = (script: string) => {
    const r = spawnSync('sh', ['-ec', script], { encoding: 'utf8', timeout: 30_000 });
    if (r.status !== 0) throw new Error(`setup failed: ${r.stderr || r.stdout}\n${script}`);
  };

  const nets: FwNetwork[] = [
    { id: 'n0'.padEnd(64, '0'), bridge: 'br0', subnets4: ['172.17.0.0/16'], subnets6: ['fd00:17::/64'], masquerade: true, icc: true, internal: false },
    { id: 'n1'.padEnd(64, '1'), bridge: 'br1', subnets4: ['172.18.0.0/16'], subnets6: [], masquerade: true, icc: true, internal: false },
    { id: 'n2'.padEnd(64, '2'), bridge: 'br2', subnets4: ['172.19.0.0/16'], subnets6: [], masquerade: true, icc: false, internal: false },
  ];
  const p = (o: Partial<FwPort>): FwPort => ({ proto: 'tcp', hostIp: '', hostPort: 8080, hostPortEnd: 8080, containerIp: '172.17.0.2', containerPort: 80, containerPortEnd: 80, bridge: 'br0', family: 4, ...o });
  const P8080 = p({});
  const ports: FwPort[] = [
    P8080,
    p({ hostPort: 8000, hostPortEnd: 8002, containerPort: 8000, containerPortEnd: 8002 }), // -p 8000-8002:8000-8002
    p({ hostPort: 9000, hostPortEnd: 9009 }), // -p 9000-9009:80
    p({ hostIp: '127.0.0.1', hostPort: 7070, hostPortEnd: 7070 }), // -p 127.0.0.1:7070:80
    p({ proto: 'udp', hostPort: 5353, hostPortEnd: 5353, containerPort: 53, containerPortEnd: 53 }), // -p 5353:53/udp
    p({ family: 6, containerIp: 'fd00:17::2' }), // IPv6 -p 8080:80
  ];
  const LINK: FwLink = { bridge: 'br2', fromIp: '172.19.0.3', toIp: '172.19.0.2', proto: 'tcp', port: 80 };
  const STATE: FwState = { networks: nets, ports, links: [] };

  let tmp = '';
  let child: ChildProcess | null = null;
  const servers: ChildProcess[] = [];
  let seq = 0;
  const pending = new Map<number, (r: { ok: boolean; result?: unknown; error?: string }) => void>();

  /** One request to the Firewall in the host namespace; rejects with its error message. */
  function call<T = unknown>(op: string, arg?: unknown): Promise<T> {
    const id = ++seq;
    return new Promise((resolve, reject) => {
      pending.set(id, (r) => (r.ok ? resolve(r.result as T) : reject(new Error(r.error))));
      child!.stdin!.write(JSON.stringify({ id, op, arg }) + '\n');
    });
  }
  // Two calls: nft 1.0.6 filters its cache down to the last table named when one input lists several.
  const list = async () => (await call<string>('run', 'list table ip loom')) + (await call<string>('run', 'list table ip6 loom'));
  /** A listing as a sorted bag of lines: the kernel lists set elements in an order of its own. */
  const bag = (listing: string) => listing.split('\n').map((l) => l.trim().replace(/^elements = \{ /, '').replace(/ \}$|,$/g, '')).filter(Boolean).sort();

  /** TCP or UDP from a namespace: the server's answer ("name peer localport") or "FAIL ...". */
  function probe(from: string, proto: 'tcp' | 'udp', host: string, port: number, timeoutMs = 1500): string {
    const r = spawnSync('ip', ['netns', 'exec', ns(from), NODE, path.join(tmp, 'client.mjs'), proto, host, String(port), String(timeoutMs)], { encoding: 'utf8', timeout: timeoutMs + 10_000 });
    return (r.stdout || `FAIL ${r.stderr}`).trim();
  }
  const reaches = (from: string, proto: 'tcp' | 'udp', host: string, port: number) => {
    const out = probe(from, proto, host, port);
    assert.doesNotMatch(out, /^FAIL/, `${from} -> ${proto} ${host}:${port}: ${out}`);
    return out;
  };
  /** Refused or dropped: no DNAT for it (the host itself refuses), or a drop. */
  const blocked = (from: string, host: string, port: number) => {
    const out = probe(from, 'tcp', host, port, 1000);
    assert.match(out, /^FAIL/, `${from} -> ${host}:${port} should fail, got: ${out}`);
  };
  /** Silently dropped on the way, which here only loom's forward chain does. */
  const dropped = (from: string, host: string, port: number) => {
    const out = probe(from, 'tcp', host, port, 1000);
    assert.equal(out, 'FAIL timeout', `${from} -> ${host}:${port} should be dropped`);
  };

  describe('firewall in a network namespace', { skip: isRoot ? false : 'needs root: creates network namespaces and nftables tables in them' }, () => {
    before(async () => {
      for (const n of NAMES) spawnSync('ip', ['netns', 'del', ns(n)], { stdio: 'ignore' }); // leftovers of a recycled PID
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'loomt-fw-'));
      fs.writeFileSync(path.join(tmp, 'server.mjs'), SERVER);
      fs.writeFileSync(path.join(tmp, 'client.mjs'), CLIENT);

      const H = ns('host');
      let script = NAMES.map((n) => `ip netns add ${ns(n)}; ip -n ${ns(n)} link set lo up`).join('\n');
      script += `
ip -n ${H} link add up0 type veth peer name eth0 netns ${ns('ext')}
ip -n ${H} addr add 198.51.100.1/24 dev up0; ip -n ${H} addr add fd00:198::1/64 dev up0 nodad; ip -n ${H} link set up0 up
ip -n ${ns('ext')} addr add 198.51.100.2/24 dev eth0; ip -n ${ns('ext')} addr add fd00:198::2/64 dev eth0 nodad; ip -n ${ns('ext')} link set eth0 up
# the outside world may route container subnets to the host: only the firewall keeps it out
ip -n ${ns('ext')} route add 172.16.0.0/12 via 198.51.100.1
ip netns exec ${H} sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
`;
      const bridges: [string, string, string | null][] = [['br0', '172.17.0.1/16', 'fd00:17::1/64'], ['br1', '172.18.0.1/16', null], ['br2', '172.19.0.1/16', null]];
      for (const [br, a4, a6] of bridges) {
        script += `ip -n ${H} link add ${br} type bridge; ip -n ${H} addr add ${a4} dev ${br}; ip -n ${H} link set ${br} up\n`;
        if (a6) script += `ip -n ${H} addr add ${a6} dev ${br} nodad\n`;
        // what the bridge driver does: the host's 127.0.0.1 may be DNATed out of this bridge
        script += `ip netns exec ${H} sysctl -qw net.ipv4.conf.${br}.route_localnet=1\n`;
      }
      const ctrs: [string, string, string, string, string | null][] = [
        ['c1', 'br0', '172.17.0.2/16', '172.17.0.1', 'fd00:17::2/64'], ['c2', 'br0', '172.17.0.3/16', '172.17.0.1', null],
        ['c3', 'br1', '172.18.0.2/16', '172.18.0.1', null], ['c4', 'br2', '172.19.0.2/16', '172.19.0.1', null], ['c5', 'br2', '172.19.0.3/16', '172.19.0.1', null],
      ];
      for (const [c, br, a4, gw, a6] of ctrs) {
        // hairpin on the port, as the bridge driver must set it: with br_netfilter, a container's packet
        // DNATed back to itself leaves through the bridge port it came in on
        script += `ip -n ${H} link add v${c} type veth peer name eth0 netns ${ns(c)}; ip -n ${H} link set v${c} master ${br} up
ip -n ${H} link set v${c} type bridge_slave hairpin on
ip -n ${ns(c)} addr add ${a4} dev eth0; ip -n ${ns(c)} link set eth0 up; ip -n ${ns(c)} route add default via ${gw}\n`;
        if (a6) script += `ip -n ${ns(c)} addr add ${a6} dev eth0 nodad; ip -n ${ns(c)} -6 route add default via fd00:17::1\n`;
      }
      sh(script);

      const serve = async (name: string, tcp: number[], udp: number[]) => {
        const s = spawn('ip', ['netns', 'exec', ns(name), NODE, path.join(tmp, 'server.mjs'), name, tcp.join(','), udp.join(',')], { stdio: ['ignore', 'pipe', 'inherit'] });
        servers.push(s);
        await new Promise<void>((resolve, reject) => {
          s.stdout!.once('data', () => resolve());
          s.once('exit', (code) => reject(new Error(`server in ${name} exited (${code})`)));
        });
      };
      await serve('c1', [80, 8001, 5432], [53]);
      await serve('c2', [80], []);
      await serve('c3', [80], []);
      await serve('c4', [80, 5432], []);
      await serve('c5', [80], []);
      await serve('ext', [80], []);

      child = spawn('ip', ['netns', 'exec', H, NODE, '--disable-warning=ExperimentalWarning', SELF], { env: { ...process.env, LOOM_FW_CHILD: '1' }, stdio: ['pipe', 'pipe', 'inherit'] });
      readline.createInterface({ input: child.stdout! }).on('line', (l) => {
        const r = JSON.parse(l) as { id: number; ok: boolean };
        pending.get(r.id)?.(r);
        pending.delete(r.id);
      });
    });

    after(() => {
      if (child) {
        child.stdin!.end();
        child.kill();
      }
      for (const s of servers) if (s.pid) s.kill('SIGKILL');
      // Deleting the namespaces takes every bridge, veth and nftables table of this test with them.
      for (const n of NAMES) spawnSync('ip', ['netns', 'del', ns(n)], { stdio: 'ignore' });
      if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
      const left = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.includes(`loomt-fw-${pid}-`));
      assert.deepEqual(left, [], 'namespaces left behind');
    });

    test('the full ruleset loads, and a second reconcile changes nothing', async () => {
      await call('reconcile', STATE);
      const first = await list();
      assert.match(first, /table ip loom/);
      assert.match(first, /table ip6 loom/);
      assert.match(first, /map ports \{[^}]*elements = \{ tcp \. 8080 : 172\.17\.0\.2 \. 80/);
      assert.match(first, /0\.0\.0\.0\/0 \. tcp \. 8000-8002 : 172\.17\.0\.2/);
      await call('reconcile', STATE);
      assert.equal(await list(), first);
      const tables = await call<string>('run', 'list tables');
      assert.deepEqual(tables.trim().split('\n').sort(), ['table ip loom', 'table ip6 loom'], 'loom creates its two tables and nothing else');
    });

    test('published port from outside: DNAT, the client address is kept', () => {
      assert.equal(reaches('ext', 'tcp', '198.51.100.1', 8080), 'c1 198.51.100.2 80');
    });

    test('ranges: same numbers keep the port, a range to one port rewrites it; udp', () => {
      assert.equal(reaches('ext', 'tcp', '198.51.100.1', 8001), 'c1 198.51.100.2 8001');
      assert.equal(reaches('ext', 'tcp', '198.51.100.1', 9005), 'c1 198.51.100.2 80');
      assert.equal(reaches('ext', 'udp', '198.51.100.1', 5353), 'c1 198.51.100.2 53');
    });

    test('from the host itself: its own address, and 127.0.0.1 (route_localnet + masquerade)', () => {
      assert.equal(reaches('host', 'tcp', '198.51.100.1', 8080), 'c1 198.51.100.1 80');
      assert.equal(reaches('host', 'tcp', '127.0.0.1', 8080), 'c1 172.17.0.1 80');
    });

    test('a mapping bound to one host address answers only there', () => {
      assert.equal(reaches('host', 'tcp', '127.0.0.1', 7070), 'c1 172.17.0.1 80');
      blocked('ext', '198.51.100.1', 7070);
    });

    const brnf = (v?: '0' | '1') => {
      const f = '/proc/sys/net/bridge/bridge-nf-call-iptables';
      const r = v === undefined
        ? spawnSync('ip', ['netns', 'exec', ns('host'), 'cat', f], { encoding: 'utf8' })
        : spawnSync('ip', ['netns', 'exec', ns('host'), 'sh', '-c', `echo ${v} > ${f}`], { encoding: 'utf8' });
      return r.status === 0 ? r.stdout.trim() : null;
    };

    test('hairpin: containers reach published ports of their own network through the host address', () => {
      // Both packet paths: bridged back by br_netfilter (when loaded), and routed (without it).
      const initial = brnf();
      for (const mode of initial === null ? [null] : ['1', '0'] as const) {
        if (mode) brnf(mode);
        try {
          assert.equal(reaches('c2', 'tcp', '198.51.100.1', 8080), 'c1 172.17.0.1 80', `br_netfilter ${mode}`);
          assert.equal(reaches('c1', 'tcp', '198.51.100.1', 8080), 'c1 172.17.0.1 80', `br_netfilter ${mode}`);
        } finally {
          if (initial) brnf(initial as '0' | '1');
        }
      }
    });

    test('another network reaches a published port (masqueraded on the way)', () => {
      assert.equal(reaches('c3', 'tcp', '198.51.100.1', 8080), 'c1 172.17.0.1 80');
    });

    test('outbound traffic is masqueraded', () => {
      assert.equal(reaches('c1', 'tcp', '198.51.100.2', 80), 'ext 198.51.100.1 80');
      assert.equal(reaches('c4', 'tcp', '198.51.100.2', 80), 'ext 198.51.100.1 80');
    });

    test('isolation: no direct traffic between networks, nothing unpublished from outside', () => {
      dropped('c3', '172.17.0.2', 80);
      dropped('c1', '172.18.0.2', 80);
      dropped('ext', '172.17.0.2', 80);
      assert.equal(reaches('c1', 'tcp', '172.17.0.3', 80), 'c2 172.17.0.2 80', 'icc on: same bridge talks');
    });

    test('icc=false: same-bridge traffic dropped except for a link, in both directions of its connection', async () => {
      // Bridged traffic reaches the forward hook only through br_netfilter (see ruleset.ts).
      if (brnf() !== '1') return;
      dropped('c5', '172.19.0.2', 80);
      await call('apply', { addLinks: [LINK] });
      assert.equal(reaches('c5', 'tcp', '172.19.0.2', 80), 'c4 172.19.0.3 80');
      dropped('c5', '172.19.0.2', 5432); // not the linked port
      dropped('c4', '172.19.0.3', 80); // a link is one-way: the linked container cannot open connections back
      await call('apply', { removeLinks: [LINK] });
      dropped('c5', '172.19.0.2', 80);
    });

    test('IPv6: published port through ip6 loom', () => {
      assert.equal(reaches('ext', 'tcp', 'fd00:198::1', 8080), 'c1 fd00:198::2 80');
    });

    test('incremental: a port removed and added back, one element each time, the rest untouched', async () => {
      const before = await list();
      await call('apply', { removePorts: [P8080] });
      const without = await list();
      assert.doesNotMatch(without, /tcp \. 8080 : 172\.17\.0\.2/);
      assert.match(without, /tcp \. 9000-9009 : 172\.17\.0\.2 \. 80/);
      blocked('ext', '198.51.100.1', 8080);
      await call('apply', { addPorts: [P8080, p({ hostPort: 8090, hostPortEnd: 8090, containerIp: '172.17.0.3' })] });
      assert.equal(reaches('ext', 'tcp', '198.51.100.1', 8080), 'c1 198.51.100.2 80');
      assert.equal(reaches('ext', 'tcp', '198.51.100.1', 8090), 'c2 198.51.100.2 80');
      await call('apply', { removePorts: [p({ hostPort: 8090, hostPortEnd: 8090, containerIp: '172.17.0.3' })] });
      assert.deepEqual(bag(await list()), bag(before));
    });

    test('internal network: no way in or out, not even through a published port', async () => {
      await call('apply', { addNetworks: [{ ...nets[1]!, internal: true }], addPorts: [p({ hostPort: 8181, hostPortEnd: 8181, containerIp: '172.18.0.2', bridge: 'br1' })] });
      dropped('c3', '198.51.100.2', 80);
      dropped('ext', '198.51.100.1', 8181);
      dropped('c3', '198.51.100.1', 8080);
      await call('apply', { addNetworks: [nets[1]!], removePorts: [p({ hostPort: 8181, hostPortEnd: 8181, containerIp: '172.18.0.2', bridge: 'br1' })] });
      assert.equal(reaches('c3', 'tcp', '198.51.100.2', 80), 'ext 198.51.100.1 80');
    });

    test('a failing transaction applies nothing and names the failing line', async () => {
      const before = await list();
      await assert.rejects(call('run', 'add element ip loom ports_on_addr { 10.9.9.9 . tcp . 1 : 172.17.0.2 . 80 }\nadd element ip loom nosuch { 1.2.3.4 }\n'), /line 2:.*No such file or directory[\s\S]*nosuch/);
      assert.equal(await list(), before);
    });

    test('after an external flush, a change fails without corrupting the state, and reconcile restores', async () => {
      const state = await call<FwState>('state');
      await call('run', 'delete table ip loom');
      await assert.rejects(call('apply', { removePorts: [P8080] }), /remove ports: 1 \(tcp 0\.0\.0\.0:8080 -> 172\.17\.0\.2:80\) failed: delete element ip loom ports \{ tcp \. 8080 \}: No such file or directory/);
      assert.deepEqual(await call<FwState>('state'), state);
      await call('reconcile', state);
      assert.equal(reaches('ext', 'tcp', '198.51.100.1', 8080), 'c1 198.51.100.2 80');
    });

    test('removeAll leaves no loom table behind; what was dropped passes without loom (the drops were loom\'s)', async () => {
      await call('removeAll');
      assert.equal((await call<string>('run', 'list tables')).trim(), '');
      assert.equal(reaches('ext', 'tcp', '172.17.0.2', 80), 'c1 198.51.100.2 80');
      assert.equal(reaches('c3', 'tcp', '172.17.0.2', 80), 'c1 172.18.0.2 80');
      assert.equal(reaches('c4', 'tcp', '172.19.0.3', 80), 'c5 172.19.0.2 80');
    });
  });
}

// A server per namespace: answers every TCP connection and UDP datagram with "name peer localport".
const SERVER = `
import net from 'node:net';
import dgram from 'node:dgram';
const [name, tcp, udp] = process.argv.slice(2);
const peer = (a) => a.replace(/^::ffff:/, '');
const waits = [];
for (const port of tcp.split(',').filter(Boolean).map(Number)) {
  const s = net.createServer((c) => c.end(name + ' ' + peer(c.remoteAddress) + ' ' + c.localPort + '\\n'));
  waits.push(new Promise((r) => s.listen(port, '::', r)));
}
for (const port of udp.split(',').filter(Boolean).map(Number)) {
  const s = dgram.createSocket({ type: 'udp6' });
  s.on('message', (m, r) => s.send(name + ' ' + peer(r.address) + ' ' + port + '\\n', r.port, r.address));
  waits.push(new Promise((r) => s.bind(port, '::', r)));
}
await Promise.all(waits);
process.stdout.write('ready\\n');
`;

// A one-shot client: prints the server's answer, or FAIL and the reason.
const CLIENT = `
import net from 'node:net';
import dgram from 'node:dgram';
const [proto, host, port, ms] = process.argv.slice(2);
const fail = (why) => { process.stdout.write('FAIL ' + why + '\\n'); process.exit(0); };
setTimeout(() => fail('timeout'), Number(ms));
if (proto === 'tcp') {
  const c = net.connect(Number(port), host);
  let out = '';
  c.on('data', (d) => (out += d));
  c.on('end', () => { process.stdout.write(out); process.exit(0); });
  c.on('error', (e) => fail(e.code));
} else {
  const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  s.on('message', (m) => { process.stdout.write(String(m)); process.exit(0); });
  s.send('hi', Number(port), host);
}
`;
