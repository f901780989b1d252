// The embedded resolver's packet handling, without sockets in namespaces: the handler is called directly,
// answers are decoded with dns-packet (an independent codec), and upstreams are servers on 127.0.0.1.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { once } from 'node:events';
import packet from 'dns-packet';
import type { Packet } from 'dns-packet';
import { EmbeddedDns, type DnsAnswerSource } from '../../src/dns/resolver.ts';
import { reverseNameToIp, parseIPv6, formatIPv6, parseQuery } from '../../src/dns/wire.ts';
import { parseUpstream } from '../../src/dns/forward.ts';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

/** Container "A" sees network "mynet"; container "B" sees nothing of ours. */
class FakeSource implements DnsAnswerSource {
  names = new Map<string, { v4: string[]; v6: string[] }>([
    ['c1', { v4: ['172.18.0.2'], v6: ['fd00:1::2'] }],
    ['web', { v4: ['172.18.0.3', '172.18.0.4'], v6: [] }],
    ['big', { v4: Array.from({ length: 40 }, (_, i) => `172.18.1.${i + 1}`), v6: [] }],
  ]);
  ups: Record<string, string[]> = { A: [], B: [] };
  lookup(asker: string, name: string, family: 4 | 6): string[] | null {
    if (asker !== 'A') return null;
    const e = this.names.get(name) ?? this.names.get(name.replace(/\.mynet$/, ''));
    if (!e) return null;
    return family === 4 ? e.v4 : e.v6;
  }
  reverse(asker: string, ip: string): string | null {
    if (asker !== 'A') return null;
    if (ip === '172.18.0.2' || ip === 'fd00:1::2') return 'c1.mynet';
    return null;
  }
  upstreams(asker: string): string[] {
    return this.ups[asker] ?? [];
  }
}

let nextId = 1;
function query(name: string, type: string, opts: { edns?: number; id?: number } = {}): Buffer {
  const p: Packet = {
    type: 'query', id: opts.id ?? nextId++, flags: packet.RECURSION_DESIRED,
    questions: [{ type, name, class: 'IN' }],
  };
  if (opts.edns) p.additionals = [{ type: 'OPT', name: '.', udpPayloadSize: opts.edns, flags: 0, options: [] }];
  return packet.encode(p);
}

async function ask(dns: EmbeddedDns, asker: string, buf: Buffer, transport: 'udp' | 'tcp' = 'udp'): Promise<{ raw: Buffer; p: Packet }> {
  const raw = await dns.handleQuery(asker, buf, transport);
  assert.ok(raw, 'an answer');
  return { raw, p: packet.decode(raw) };
}

const src = new FakeSource();
const dns = new EmbeddedDns(src, quiet, { forwardTimeoutMs: 300 });

describe('embedded DNS: our names', () => {
  test('A record with TTL 600, id, RD echoed, RA set, question kept', async () => {
    const { p } = await ask(dns, 'A', query('c1', 'A', { id: 4242 }));
    assert.equal(p.id, 4242);
    assert.equal(p.type, 'response');
    assert.equal(p.rcode, 'NOERROR');
    assert.equal(p.flag_rd, true);
    assert.equal(p.flag_ra, true);
    assert.equal(p.flag_tc, false);
    assert.deepEqual(p.questions, [{ name: 'c1', type: 'A', class: 'IN' }]);
    assert.equal(p.answers!.length, 1);
    assert.deepEqual(p.answers![0], { name: 'c1', type: 'A', class: 'IN', ttl: 600, flush: false, data: '172.18.0.2' });
  });

  test('AAAA record', async () => {
    const { p } = await ask(dns, 'A', query('c1', 'AAAA'));
    assert.equal(p.rcode, 'NOERROR');
    assert.deepEqual(p.answers!.map((a) => [a.type, a.ttl, a.data]), [['AAAA', 600, 'fd00:1::2']]);
  });

  test('case-insensitive, trailing dot, network-name suffix; the asker\'s spelling is kept', async () => {
    for (const name of ['C1', 'c1.', 'C1.MyNet', 'c1.mynet.']) {
      const { p } = await ask(dns, 'A', query(name, 'A'));
      assert.deepEqual(p.answers!.map((a) => a.data), ['172.18.0.2'], name);
      assert.equal(p.answers![0].name, name.replace(/\.$/, ''), name);
    }
  });

  test('several containers behind one name: all addresses', async () => {
    const { p } = await ask(dns, 'A', query('web', 'A'));
    assert.deepEqual(p.answers!.map((a) => a.data).sort(), ['172.18.0.3', '172.18.0.4']);
  });

  test('a name of ours without an address of the family: NOERROR without answers (NODATA)', async () => {
    const { p } = await ask(dns, 'A', query('web', 'AAAA'));
    assert.equal(p.rcode, 'NOERROR');
    assert.equal(p.answers!.length, 0);
  });

  test('other types for our names: NODATA, never forwarded', async () => {
    src.ups.A = ['127.0.0.1:9']; // would time out if used
    try {
      for (const t of ['MX', 'TXT', 'SRV']) {
        const { p } = await ask(dns, 'A', query('c1', t));
        assert.equal(p.rcode, 'NOERROR', t);
        assert.equal(p.answers!.length, 0, t);
      }
    } finally { src.ups.A = []; }
  });

  test('ANY: both families', async () => {
    const { p } = await ask(dns, 'A', query('c1', 'ANY'));
    assert.deepEqual(p.answers!.map((a) => a.type).sort(), ['A', 'AAAA']);
  });

  test('PTR for IPv4 and IPv6 container addresses', async () => {
    const v4 = await ask(dns, 'A', query('2.0.18.172.in-addr.arpa', 'PTR'));
    assert.deepEqual(v4.p.answers!.map((a) => [a.type, a.ttl, a.data]), [['PTR', 600, 'c1.mynet']]);
    const nib = '2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.0.0.d.f.ip6.arpa';
    const v6 = await ask(dns, 'A', query(nib.toUpperCase(), 'PTR'));
    assert.deepEqual(v6.p.answers!.map((a) => a.data), ['c1.mynet']);
  });

  test('names are scoped to the asker: another container gets no answer of ours', async () => {
    const { p } = await ask(dns, 'B', query('c1', 'A'));
    assert.equal(p.rcode, 'SERVFAIL'); // not ours for B, and B has no upstreams
    assert.equal(p.answers!.length, 0);
  });

  test('EDNS: the answer carries an OPT record; version 1 gets BADVERS', async () => {
    const { p } = await ask(dns, 'A', query('c1', 'A', { edns: 1232 }));
    assert.equal(p.additionals!.length, 1);
    assert.equal(p.additionals![0].type, 'OPT');
    const bad = query('c1', 'A', { edns: 1232 });
    bad[bad.length - 5] = 1; // OPT version byte
    const r = await dns.handleQuery('A', bad, 'udp');
    assert.equal(r![3] & 0x0f, 0);
    assert.equal(packet.decode(r!).additionals![0].extendedRcode, 1); // BADVERS = 16 = 1 << 4
  });
});

describe('embedded DNS: size limits', () => {
  test('over UDP without EDNS: at most 512 bytes, whole records, TC set', async () => {
    const { raw, p } = await ask(dns, 'A', query('big', 'A'));
    assert.ok(raw.length <= 512, `${raw.length} bytes`);
    assert.equal(p.flag_tc, true);
    assert.ok(p.answers!.length > 0 && p.answers!.length < 40);
    for (const a of p.answers!) assert.match(a.data as string, /^172\.18\.1\./);
  });

  test('over UDP with a big enough EDNS size, and over TCP: everything, no TC', async () => {
    for (const [buf, tr] of [[query('big', 'A', { edns: 4096 }), 'udp'], [query('big', 'A'), 'tcp']] as const) {
      const { raw, p } = await ask(dns, 'A', buf, tr);
      assert.ok(raw.length > 512);
      assert.equal(p.flag_tc, false);
      assert.equal(p.answers!.length, 40);
    }
  });
});

describe('embedded DNS: malformed input', () => {
  test('short packets and responses are dropped; two questions get FORMERR; other opcodes NOTIMP', async () => {
    assert.equal(await dns.handleQuery('A', Buffer.alloc(5), 'udp'), null);
    const resp = query('c1', 'A');
    resp[2] |= 0x80;
    assert.equal(await dns.handleQuery('A', resp, 'udp'), null);
    const two = packet.encode({ type: 'query', id: 7, questions: [{ type: 'A', name: 'a' }, { type: 'A', name: 'b' }] });
    const f = await dns.handleQuery('A', two, 'udp');
    assert.equal(f!.readUInt16BE(0), 7);
    assert.equal(f![3] & 0x0f, 1);
    const upd = query('c1', 'A');
    upd[2] = (upd[2] & 0x87) | (5 << 3); // opcode UPDATE
    const n = await dns.handleQuery('A', upd, 'udp');
    assert.equal(n![3] & 0x0f, 4);
    const bad = query('c1', 'A');
    bad[12] = 0xc0; // a compression pointer in the question
    assert.equal((await dns.handleQuery('A', bad, 'udp'))![3] & 0x0f, 1);
  });
});

describe('embedded DNS: forwarding', () => {
  // Fake upstreams on 127.0.0.1: answer every A query with 192.0.2.1 (or many records for "many.test"),
  // a silent one that never answers, and one that always says SERVFAIL.
  let good: dgram.Socket, silent: dgram.Socket, failing: dgram.Socket, tcpUp: net.Server;
  let seen: Packet[] = [];
  const answerFor = (q: Packet): Buffer => {
    const name = q.questions![0].name;
    const n = name === 'many.test' ? 60 : 1;
    return packet.encode({
      type: 'response', id: q.id, flags: packet.RECURSION_AVAILABLE, questions: q.questions,
      answers: Array.from({ length: n }, (_, i) => ({ type: 'A', name, ttl: 30, data: `192.0.2.${i + 1}` })),
    });
  };
  const addr = (s: dgram.Socket | net.Server) => `127.0.0.1:${(s.address() as net.AddressInfo).port}`;

  before(async () => {
    good = dgram.createSocket('udp4');
    good.on('message', (m, r) => {
      const q = packet.decode(m);
      seen.push(q);
      good.send(answerFor(q), r.port, r.address);
    });
    silent = dgram.createSocket('udp4');
    failing = dgram.createSocket('udp4');
    failing.on('message', (m, r) => {
      const q = packet.decode(m);
      failing.send(packet.encode({ type: 'response', id: q.id, flags: 2 /* rcode SERVFAIL */, questions: q.questions }), r.port, r.address);
    });
    tcpUp = net.createServer((c) => {
      let b = Buffer.alloc(0);
      c.on('data', (d) => {
        b = Buffer.concat([b, d]);
        while (b.length >= 2 && b.length >= b.readUInt16BE(0) + 2) {
          const q = packet.decode(b.subarray(2, b.readUInt16BE(0) + 2));
          b = b.subarray(b.readUInt16BE(0) + 2);
          seen.push(q);
          const a = answerFor(q);
          const len = Buffer.alloc(2);
          len.writeUInt16BE(a.length);
          c.write(Buffer.concat([len, a]));
        }
      });
    });
    for (const s of [good, silent, failing]) { s.bind(0, '127.0.0.1'); await once(s, 'listening'); }
    tcpUp.listen(0, '127.0.0.1');
    await once(tcpUp, 'listening');
  });
  after(() => {
    for (const s of [good, silent, failing]) s.close();
    tcpUp.close();
  });

  test('unknown names go to the upstream; its answer comes back with the client\'s id', async () => {
    src.ups.A = [addr(good)];
    seen = [];
    const { p } = await ask(dns, 'A', query('example.test', 'A', { id: 999 }));
    assert.equal(p.id, 999);
    assert.deepEqual(p.answers!.map((a) => a.data), ['192.0.2.1']);
    assert.equal(seen.length, 1);
    assert.equal(seen[0].questions![0].name, 'example.test');
  });

  test('PTR of a non-container address and other types for unknown names are forwarded too', async () => {
    src.ups.A = [addr(good)];
    seen = [];
    await ask(dns, 'A', query('9.9.18.172.in-addr.arpa', 'PTR'));
    await ask(dns, 'A', query('example.test', 'MX'));
    assert.deepEqual(seen.map((q) => q.questions![0].type), ['PTR', 'MX']);
  });

  test('an upstream that never answers: SERVFAIL after the timeout, no hang', async () => {
    src.ups.A = [addr(silent)];
    const t0 = Date.now();
    const { p } = await ask(dns, 'A', query('example.test', 'A', { id: 77 }));
    assert.equal(p.id, 77);
    assert.equal(p.rcode, 'SERVFAIL');
    assert.ok(Date.now() - t0 < 2000);
  });

  test('a dead first upstream or one answering SERVFAIL: the next one answers', async () => {
    for (const first of [silent, failing]) {
      src.ups.A = [addr(first), addr(good)];
      const { p } = await ask(dns, 'A', query('example.test', 'A'));
      assert.equal(p.rcode, 'NOERROR');
      assert.deepEqual(p.answers!.map((a) => a.data), ['192.0.2.1']);
    }
  });

  test('every upstream fails, or there are none (internal networks): SERVFAIL', async () => {
    src.ups.A = [addr(failing)];
    assert.equal((await ask(dns, 'A', query('example.test', 'A'))).p.rcode, 'SERVFAIL');
    src.ups.A = [];
    assert.equal((await ask(dns, 'A', query('example.test', 'A'))).p.rcode, 'SERVFAIL');
  });

  test('an upstream answer too big for the UDP client is cut with TC; over TCP it goes via TCP whole', async () => {
    src.ups.A = [addr(good)];
    const { raw, p } = await ask(dns, 'A', query('many.test', 'A'));
    assert.ok(raw.length <= 512);
    assert.equal(p.flag_tc, true);
    src.ups.A = [addr(tcpUp)];
    seen = [];
    const t = await ask(dns, 'A', query('many.test', 'A', { id: 31 }), 'tcp');
    assert.equal(t.p.id, 31);
    assert.equal(t.p.flag_tc, false);
    assert.equal(t.p.answers!.length, 60);
    assert.equal(seen.length, 1);
  });

  test('answers from elsewhere, with another id or another question are ignored', async () => {
    // An upstream that first sends a forged answer (wrong id), then one for another name, then the real one.
    const tricky = dgram.createSocket('udp4');
    tricky.on('message', (m, r) => {
      const q = packet.decode(m);
      const forged = packet.decode(answerFor(q));
      tricky.send(packet.encode({ ...forged, id: (q.id! + 1) & 0xffff }), r.port, r.address);
      tricky.send(packet.encode({ ...forged, questions: [{ type: 'A', name: 'other.test', class: 'IN' }] }), r.port, r.address);
      setTimeout(() => tricky.send(answerFor(q), r.port, r.address), 20);
    });
    tricky.bind(0, '127.0.0.1');
    await once(tricky, 'listening');
    try {
      src.ups.A = [addr(tricky)];
      const { p } = await ask(dns, 'A', query('example.test', 'A'));
      assert.deepEqual(p.questions!.map((q) => q.name), ['example.test']);
      assert.deepEqual(p.answers!.map((a) => a.data), ['192.0.2.1']);
    } finally {
      tricky.close();
    }
  });
});

describe('dns wire helpers', () => {
  test('reverse names', () => {
    assert.equal(reverseNameToIp('4.3.2.1.in-addr.arpa'), '1.2.3.4');
    assert.equal(reverseNameToIp('3.2.1.in-addr.arpa'), null);
    assert.equal(reverseNameToIp('256.3.2.1.in-addr.arpa'), null);
    assert.equal(reverseNameToIp('1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa'), '::1');
    assert.equal(reverseNameToIp('example.test'), null);
  });

  test('IPv6 text both ways (RFC 5952)', () => {
    for (const [i, o] of [['fd00:1:0:0:0:0:0:2', 'fd00:1::2'], ['::', '::'], ['2001:db8::1:0:0:1', '2001:db8::1:0:0:1'], ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], ['::ffff:1.2.3.4', '::ffff:102:304'], ['FE80::1', 'fe80::1']]) {
      assert.equal(formatIPv6(parseIPv6(i)!), o, i);
    }
    assert.equal(parseIPv6('1::2::3'), null);
    assert.equal(parseIPv6('1:2:3'), null);
  });

  test('upstream addresses', () => {
    assert.deepEqual(parseUpstream('192.0.2.53'), { host: '192.0.2.53', port: 53, family: 4 });
    assert.deepEqual(parseUpstream('192.0.2.53:5353'), { host: '192.0.2.53', port: 5353, family: 4 });
    assert.deepEqual(parseUpstream('2001:db8::53'), { host: '2001:db8::53', port: 53, family: 6 });
    assert.deepEqual(parseUpstream('[2001:db8::53]:5353'), { host: '2001:db8::53', port: 5353, family: 6 });
    assert.equal(parseUpstream('dns.example'), null);
    assert.equal(parseUpstream('192.0.2.53:0'), null);
  });

  test('a query name with a dot inside a label is never ours', () => {
    const b = packet.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: 'c1', class: 'IN' }] });
    const weird = Buffer.concat([b.subarray(0, 12), Buffer.from([3, 0x63, 0x2e, 0x31, 0]), b.subarray(16)]);
    assert.equal(parseQuery(weird)!.name, null);
    assert.equal(parseQuery(b)!.name, 'c1');
  });
});

describe('embedded DNS: forwarding limits', () => {
  test('a container with too many forwarded queries in flight gets SERVFAIL at once', async () => {
    const silent = dgram.createSocket('udp4');
    silent.bind(0, '127.0.0.1');
    await once(silent, 'listening');
    const s = new FakeSource();
    s.ups.A = [`127.0.0.1:${silent.address().port}`];
    const limited = new EmbeddedDns(s, quiet, { forwardTimeoutMs: 300, maxForwardsPerContainer: 1 });
    try {
      const first = limited.handleQuery('A', query('example.test', 'A'), 'udp');
      const t0 = Date.now();
      const second = packet.decode((await limited.handleQuery('A', query('example.test', 'A'), 'udp'))!);
      assert.equal(second.rcode, 'SERVFAIL');
      assert.ok(Date.now() - t0 < 250, 'refused without waiting for the upstream');
      assert.equal(packet.decode((await first)!).rcode, 'SERVFAIL'); // the silent upstream times out
    } finally {
      silent.close();
    }
  });
});
