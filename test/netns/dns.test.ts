// The embedded DNS server on the real kernel: sockets at 127.0.0.11:53 inside namespaces this test makes,
// queried from inside them (a small Node client run with `ip netns exec`, and dig when installed).
// Upstreams are fake servers on this process's own loopback: forwarding happens from the daemon's
// namespace, which is the one this test runs in. Nothing is sent to any other address.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import dgram from 'node:dgram';
import fs from 'node:fs';
import { once } from 'node:events';
import packet from 'dns-packet';
import type { Packet } from 'dns-packet';
import { EmbeddedDns, type DnsAnswerSource } from '../../src/dns/resolver.ts';

const isRoot = process.getuid?.() === 0;
const hasDig = spawnSync('dig', ['-v']).status === 0;
const node = process.execPath;
const pid = process.pid;
const NS = {
  a: `loomt-dns-${pid}`, // container "A": sees c1, web, big
  b: `loomt-dnsb-${pid}`, // container "B": attached, but none of those names are on its networks
  o: `loomt-dnso-${pid}`, // a namespace nobody attached
};
const made: string[] = [];

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}
function addNs(name: string, loUp = true): void {
  ip('netns', 'add', name);
  made.push(name);
  if (loUp) ip('netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up');
}
function delNs(name: string): void {
  spawnSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
}

class Source implements DnsAnswerSource {
  ups: string[] = [];
  lookup(asker: string, name: string, family: 4 | 6): string[] | null {
    if (!asker.startsWith('A')) return null; // "A" and "A2" see the same names
    name = name.replace(/\.mynet$/, '');
    if (name === 'c1') return family === 4 ? ['172.18.0.2'] : ['fd00:1::2'];
    if (name === 'big') return family === 4 ? Array.from({ length: 40 }, (_, i) => `172.18.1.${i + 1}`) : [];
    return null;
  }
  reverse(asker: string, addr: string): string | null {
    return asker === 'A' && addr === '172.18.0.2' ? 'c1.mynet' : null;
  }
  upstreams(asker: string): string[] {
    return asker === 'A' ? this.ups : [];
  }
}

// A DNS client run inside a namespace: sends the hex-encoded queries to 127.0.0.11:53 over udp or tcp
// (tcp: all of them on one connection) and prints each answer as hex, or TIMEOUT / ERROR <code>.
const CLIENT = `
const [mode, ...qs] = process.argv.slice(1);
const queries = qs.map((h) => Buffer.from(h, 'hex'));
const done = (s) => { console.log(s); process.exit(0); };
setTimeout(() => done('TIMEOUT'), 1500);
if (mode === 'udp') {
  const s = require('node:dgram').createSocket('udp4');
  s.on('error', (e) => done('ERROR ' + e.code));
  s.on('message', (m) => done(m.toString('hex')));
  s.connect(53, '127.0.0.11', () => s.send(queries[0])); // connected: a closed port is ECONNREFUSED at once
} else {
  const c = require('node:net').connect(53, '127.0.0.11');
  c.on('error', (e) => done('ERROR ' + e.code));
  c.on('connect', () => { for (const q of queries) { const l = Buffer.alloc(2); l.writeUInt16BE(q.length); c.write(Buffer.concat([l, q])); } });
  let b = Buffer.alloc(0); const out = [];
  c.on('data', (d) => {
    b = Buffer.concat([b, d]);
    while (b.length >= 2 && b.length >= b.readUInt16BE(0) + 2) { out.push(b.subarray(2, b.readUInt16BE(0) + 2).toString('hex')); b = b.subarray(b.readUInt16BE(0) + 2); }
    if (out.length === queries.length) done(out.join('\\n'));
  });
}`;

let nextId = 1;
function q(name: string, type = 'A'): Buffer {
  return packet.encode({ type: 'query', id: nextId++, flags: packet.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }] });
}

/** Answers (decoded) to `queries` asked from inside `ns`; null when there was no answer at all. */
// (asynchronous: the server answering runs in this very process)
const run = promisify(execFile);
async function askIn(ns: string | null, mode: 'udp' | 'tcp', ...queries: Buffer[]): Promise<Packet[] | null> {
  const args = [node, '-e', CLIENT, mode, ...queries.map((b) => b.toString('hex'))];
  const { stdout } = ns === null ? await run(args[0], args.slice(1)) : await run('ip', ['netns', 'exec', ns, ...args]);
  const out = stdout.trim();
  if (out === 'TIMEOUT' || out.startsWith('ERROR')) return null;
  return out.split('\n').map((h) => packet.decode(Buffer.from(h, 'hex')));
}

async function dig(ns: string, ...args: string[]): Promise<string> {
  return (await run('ip', ['netns', 'exec', ns, 'dig', '@127.0.0.11', '+time=2', '+tries=1', ...args])).stdout.trim();
}

/** Is anything bound to 127.0.0.11:53 in the namespace this process runs in? (the kernel's socket tables) */
function boundHere(): boolean {
  const tables = ['/proc/net/udp', '/proc/net/tcp'].map((f) => fs.readFileSync(f, 'utf8')).join('');
  return / 0B00007F:0035 /.test(tables);
}

for (const udpBatch of [true, false]) describe(`embedded DNS in network namespaces (udp via ${udpBatch ? 'recvmmsg/sendmmsg' : 'dgram'})`, { skip: !isRoot && 'needs root (network namespaces)' }, () => {
  const src = new Source();
  const log = { debug() {}, info() {}, warn() {}, error() {} };
  let dns: EmbeddedDns;
  let upstream: dgram.Socket;
  let boundBefore = false;

  before(async () => {
    boundBefore = boundHere();
    addNs(NS.a);
    addNs(NS.b);
    addNs(NS.o);
    dns = new EmbeddedDns(src, log, { forwardTimeoutMs: 500, udpBatch });
    // The upstream: on this process's loopback, which a container can't reach itself.
    upstream = dgram.createSocket('udp4');
    upstream.on('message', (m, r) => {
      const p = packet.decode(m);
      const name = p.questions![0].name;
      upstream.send(packet.encode({
        type: 'response', id: p.id, flags: packet.RECURSION_AVAILABLE, questions: p.questions,
        answers: name === 'example.test' ? [{ type: 'A', name, ttl: 30, data: '192.0.2.1' }] : [],
      }), r.port, r.address);
    });
    upstream.bind(0, '127.0.0.1');
    await once(upstream, 'listening');
    src.ups = [`127.0.0.1:${upstream.address().port}`];
    await dns.attach('A', `/run/netns/${NS.a}`);
    await dns.attach('B', `/run/netns/${NS.b}`);
  });

  after(async () => {
    try { await dns?.close(); } finally {
      upstream?.close();
      for (const n of made.splice(0)) delNs(n);
    }
  });

  test('answers container names over UDP and TCP, several queries on one TCP connection', async () => {
    const [u] = (await askIn(NS.a, 'udp', q('c1')))!;
    assert.deepEqual(u.answers!.map((a) => [a.data, a.ttl]), [['172.18.0.2', 600]]);
    const t = (await askIn(NS.a, 'tcp', q('c1'), q('C1.MYNET.', 'AAAA'), q('2.0.18.172.in-addr.arpa', 'PTR')))!;
    assert.deepEqual(t.map((p) => p.answers!.map((a) => a.data)), [['172.18.0.2'], ['fd00:1::2'], ['c1.mynet']]);
  });

  test('dig, over UDP and TCP; a big answer comes truncated over UDP and whole over TCP', { skip: !hasDig && 'dig not installed (apt-get install dnsutils)' }, async () => {
    assert.equal(await dig(NS.a, 'c1', '+short'), '172.18.0.2');
    assert.equal(await dig(NS.a, 'c1', '+tcp', '+short'), '172.18.0.2');
    assert.equal(await dig(NS.a, '-x', '172.18.0.2', '+short'), 'c1.mynet.');
    assert.match(await dig(NS.a, 'big', '+ignore', '+noedns'), /flags: qr tc rd ra;/);
    assert.equal((await dig(NS.a, 'big', '+short', '+noedns')).split('\n').length, 40); // dig retries over TCP
  });

  test('unknown names are forwarded from the daemon\'s namespace', async () => {
    const [p] = (await askIn(NS.a, 'udp', q('example.test')))!;
    assert.equal(p.rcode, 'NOERROR');
    assert.deepEqual(p.answers!.map((a) => a.data), ['192.0.2.1']);
  });

  test('each socket answers for its own container only', async () => {
    const [p] = (await askIn(NS.b, 'udp', q('c1')))!;
    assert.equal(p.rcode, 'SERVFAIL'); // not B's name, and B has no upstreams (internal)
    assert.equal(p.answers!.length, 0);
  });

  test('127.0.0.11 does not answer outside the containers\' namespaces', async () => {
    assert.equal(boundHere(), boundBefore, 'nothing bound to 127.0.0.11:53 in the daemon\'s namespace');
    if (!boundBefore) assert.equal(await askIn(null, 'udp', q('c1')), null);
    assert.equal(await askIn(NS.o, 'udp', q('c1')), null);
    assert.equal(await askIn(NS.o, 'tcp', q('c1')), null);
  });

  test('attach is idempotent; a namespace recreated at the same path gets new sockets', async () => {
    await dns.attach('A', `/run/netns/${NS.a}`);
    assert.deepEqual(dns.attached().sort(), ['A', 'B']);
    assert.ok(await askIn(NS.a, 'udp', q('c1')));
    delNs(NS.a);
    addNs(NS.a);
    assert.equal(await askIn(NS.a, 'udp', q('c1')), null);
    await dns.attach('A', `/run/netns/${NS.a}`);
    assert.deepEqual((await askIn(NS.a, 'udp', q('c1')))![0].answers!.map((a) => a.data), ['172.18.0.2']);
  });

  test('attach works before lo is up', async () => {
    const late = `loomt-dnsl-${pid}`;
    addNs(late, false);
    try {
      await dns.attach('A2', `/run/netns/${late}`);
      ip('netns', 'exec', late, 'ip', 'link', 'set', 'lo', 'up');
      assert.deepEqual((await askIn(late, 'tcp', q('c1.mynet')))![0].answers!.map((a) => a.data), ['172.18.0.2']);
    } finally {
      await dns.detach('A2');
    }
  });

  test('detach closes the sockets; detaching again is fine', async () => {
    await dns.detach('B');
    await dns.detach('B');
    assert.equal(await askIn(NS.b, 'udp', q('c1')), null);
    assert.equal(await askIn(NS.b, 'tcp', q('c1')), null);
    assert.deepEqual(dns.attached(), ['A']);
  });
});

