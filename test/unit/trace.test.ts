// Pure parts of network trace: NFT_MSG_TRACE parsing, rule listings with handles, meanings in Docker's terms.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import ipaddr from 'ipaddr.js';
import { parsePacket, parseTraceEvents } from '../../src/trace/nftrace.ts';
import { markedBy, tunnelMatches } from '../../src/trace/remote.ts';
import { parseHandles } from '../../src/trace/tracer.ts';
import { meaningOf, type MeaningContext } from '../../src/trace/meaning.ts';
import { routeFor } from '../../src/trace/routes.ts';

function attr(type: number, v: Buffer): Buffer {
  const b = Buffer.alloc((4 + v.length + 3) & ~3);
  b.writeUInt16LE(4 + v.length, 0);
  b.writeUInt16LE(type, 2);
  v.copy(b, 4);
  return b;
}
const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };
const s = (x: string) => Buffer.from(`${x}\0`);

function traceMsg(): Buffer {
  const ip = Buffer.alloc(20);
  ip[0] = 0x45; ip[9] = 6;
  [172, 17, 0, 2].forEach((o, i) => (ip[12 + i] = o));
  [172, 17, 0, 3].forEach((o, i) => (ip[16 + i] = o));
  const th = Buffer.alloc(8);
  th.writeUInt16BE(40000, 0); th.writeUInt16BE(80, 2);
  const handle = Buffer.alloc(8); handle.writeBigUInt64BE(12n);
  const verdict = attr(1, u32(0));
  const body = Buffer.concat([attr(1, s('loom')), attr(2, s('forward')), attr(3, handle), attr(4, u32(3)), attr(5 | 0x8000, verdict), attr(6, u32(77)), attr(8, ip), attr(9, th), attr(10, u32(4)), attr(12, u32(4))]);
  const hdr = Buffer.alloc(20);
  hdr.writeUInt32LE(20 + body.length, 0);
  hdr.writeUInt16LE((10 << 8) | 17, 4);
  hdr[16] = 2; // NFPROTO_IPV4
  return Buffer.concat([hdr, body]);
}

test('trace: NFT_MSG_TRACE parsed into table, chain, handle, verdict, packet', () => {
  const [e] = parseTraceEvents(Buffer.concat([traceMsg(), traceMsg()]));
  assert.deepEqual(e, {
    id: 77, family: 'ip', table: 'loom', chain: 'forward', type: 'rule', handle: 12, verdict: 'drop', iif: 4, oif: 4,
    packet: { proto: 'tcp', saddr: '172.17.0.2', daddr: '172.17.0.3', sport: 40000, dport: 80 },
  });
  assert.equal(parseTraceEvents(Buffer.concat([traceMsg(), traceMsg()])).length, 2);
});

test('trace: rules by handle from a listing', () => {
  const listing = 'table ip loom { # handle 3\n\tchain forward { # handle 9\n\t\ttype filter hook forward priority filter; policy accept;\n\t\tiifname "br-1" oifname "br-1" drop comment "no icc in abcdefabcdef" # handle 12\n\t}\n}\n';
  assert.deepEqual([...parseHandles(listing, 'ip')], [['ip loom forward 12', 'iifname "br-1" oifname "br-1" drop comment "no icc in abcdefabcdef"']]);
});

test('trace: meanings in Docker terms', () => {
  const ctx: MeaningContext = {
    bridgeNet: new Map([['br-1', 'quiet'], ['loom0', 'bridge']]), idNet: new Map([['abcdefabcdef', 'quiet']]),
    ifname: new Map([[4, 'br-1'], [5, 'loom0']]), published: new Map([['tcp 8080', 'web:80']]),
    original: { daddr: '198.51.100.1', dport: 8080, proto: 'tcp' },
  };
  const ev = (chain: string, iif?: number, oif?: number) => ({ id: 1, family: 'ip', table: 'loom', chain, type: 'rule' as const, verdict: 'drop', iif, oif });
  assert.match(meaningOf(ev('forward', 4, 4), 'drop comment "no icc in abcdefabcdef"', ctx), /^--icc=false on network quiet/);
  assert.equal(meaningOf(ev('forward', 4, 5), 'iifname @bridges oifname @bridges drop comment "isolation between networks"', ctx), 'isolation between networks quiet and bridge: containers of different networks may not talk to each other');
  assert.equal(meaningOf(ev('forward', 4, 2), 'drop comment "internal abcdefabcdef: no way out"', ctx), 'internal network quiet: no way out');
  assert.match(meaningOf({ ...ev('forward', 2, 5), packet: { proto: 'tcp', saddr: '198.51.100.2', daddr: '172.17.0.3', sport: 1, dport: 80 } }, 'oifname @bridges ct status dnat accept comment "published ports"', ctx), /^published port 8080\/tcp → web:80: translated \(DNAT\) to 172\.17\.0\.3:80, so it may enter network bridge$/);
  assert.match(meaningOf(ev('forward', 5, 2), 'iifname @bridges accept comment "containers reach out"', ctx, true), /the reply leaves network bridge/);
});

test('trace: longest-prefix route', () => {
  const routes = [{ dst: 'default', gateway: '10.0.0.1', index: 2, table: 254, family: 4 as const }, { dst: '172.17.0.0/16', index: 3, table: 254, family: 4 as const }, { dst: '172.17.5.0/24', index: 4, table: 254, family: 4 as const }];
  assert.equal(routeFor(routes, '172.17.5.9')!.index, 4);
  assert.equal(routeFor(routes, '172.17.6.9')!.index, 3);
  assert.equal(routeFor(routes, '8.8.8.8')!.dst, 'default');
  assert.equal(routeFor(routes.slice(1), '8.8.8.8'), undefined);
});

test('trace: IPv6 routes, IPv6 packets, the tunnel matches of an overlay trace', () => {
  const routes = [
    { dst: 'fd00:13::/64', index: 2, table: 254, family: 6 as const },
    { dst: 'default', gateway: 'fd00:13::1', index: 2, table: 254, family: 6 as const },
    { dst: 'default', index: 3, table: 254, family: 4 as const },
  ];
  assert.equal(routeFor(routes, 'fd00:13::5')!.dst, 'fd00:13::/64');
  assert.equal(routeFor(routes, '2001:db8::1')!.gateway, 'fd00:13::1');
  assert.equal(routeFor(routes, '10.0.0.1')!.index, 3);
  const v6 = Buffer.alloc(40);
  v6[0] = 0x60;
  v6[6] = 58;
  Buffer.from(ipaddr.parse('fd00:13::2').toByteArray()).copy(v6, 8);
  Buffer.from(ipaddr.parse('fd00:13::3').toByteArray()).copy(v6, 24);
  assert.deepEqual(parsePacket(v6, Buffer.from([128, 0, 0, 0, 0x9c, 0x40, 0, 1])), { proto: 'icmpv6', saddr: 'fd00:13::2', daddr: 'fd00:13::3', icmpType: 128, icmpId: 40000 });
  assert.deepEqual(tunnelMatches('tcp', 40000), ['udp dport 4789 @th,312,8 6 @th,400,16 40000', 'udp dport 4789 @th,312,8 6 @th,416,16 40000']);
  assert.deepEqual(tunnelMatches('icmp', 7), ['udp dport 4789 @th,312,8 1 @th,432,16 7']);
  // events of the packet a marking chain marked are kept by trace id, others not
  const keep = markedBy('trace3');
  const outer = { proto: 'udp', saddr: '203.0.113.1', daddr: '203.0.113.2', sport: 5555, dport: 4789 };
  assert.equal(keep({ id: 9, family: 'ip', table: 'loom', chain: 'trace3_out', type: 'rule', packet: outer }), true);
  assert.equal(keep({ id: 9, family: 'ip', table: 'loom', chain: 'postrouting', type: 'policy', verdict: 'accept', packet: outer }), true);
  assert.equal(keep({ id: 10, family: 'ip', table: 'loom', chain: 'postrouting', type: 'policy', verdict: 'accept', packet: outer }), false);
});
