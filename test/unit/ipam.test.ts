import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allocate, cidrString, contains, DOCKER_DEFAULT_POOLS, exhausted, firstHost, isStrictIp, macFromIpv4, nextFreePool, overlaps, parseCidr, parseCidrStrict, parsePoolFlag, ulaPool, within } from '../../src/ipam/ipam.ts';

test('parseCidr normalizes the network and keeps the written address', () => {
  const c = parseCidr('172.17.0.1/16');
  assert.equal(cidrString(c), '172.17.0.0/16');
  assert.equal(c.address, '172.17.0.1');
  assert.equal(firstHost(c), '172.17.0.1');
  assert.equal(cidrString(parseCidr('fd00:1::5/64')), 'fd00:1::/64');
});

test('parseCidr names the bad value', () => {
  for (const bad of ['300.1.1.1/16', '10.0.0.0/33', '10.0.0.0', 'abc/8', '10.0.0.0/-1']) {
    assert.throws(() => parseCidr(bad), (e: Error & { status?: number }) => e.message.includes(bad) && e.status === 400);
  }
});

test('contains, overlaps, within', () => {
  const a = parseCidr('192.168.0.0/16');
  assert.ok(contains(a, '192.168.3.4'));
  assert.ok(!contains(a, '192.169.0.1'));
  assert.ok(overlaps(a, parseCidr('192.168.10.0/24')));
  assert.ok(!overlaps(a, parseCidr('10.0.0.0/8')));
  assert.ok(within(parseCidr('192.168.10.0/24'), a));
  assert.ok(!within(a, parseCidr('192.168.10.0/24')));
});

test('allocate skips network, broadcast and taken addresses, and goes round-robin', () => {
  const s = parseCidr('10.0.0.0/29'); // .1-.6 usable
  const taken = new Set(['10.0.0.1']);
  assert.equal(allocate(s, taken), '10.0.0.2');
  assert.equal(allocate(s, taken, { after: '10.0.0.2' }), '10.0.0.3');
  // released .2 is not handed out again right away
  assert.equal(allocate(s, new Set(['10.0.0.1', '10.0.0.3']), { after: '10.0.0.3' }), '10.0.0.4');
  // wrap around
  assert.equal(allocate(s, new Set(['10.0.0.1']), { after: '10.0.0.6' }), '10.0.0.2');
  const full = new Set(['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
  assert.equal(allocate(s, full), null);
});

test('allocate honours an ip-range', () => {
  const s = parseCidr('172.20.0.0/16');
  assert.equal(allocate(s, new Set(), { range: parseCidr('172.20.5.0/24') }), '172.20.5.0');
  assert.equal(allocate(s, new Set(['172.20.5.0']), { range: parseCidr('172.20.5.0/24') }), '172.20.5.1');
});

test('default pools: 172.17/16 first, next one skips used subnets and host routes', () => {
  assert.equal(cidrString(nextFreePool(DOCKER_DEFAULT_POOLS, [])!), '172.17.0.0/16');
  assert.equal(cidrString(nextFreePool(DOCKER_DEFAULT_POOLS, [parseCidr('172.17.0.0/16'), parseCidr('172.18.5.0/24')])!), '172.19.0.0/16');
  const all172 = Array.from({ length: 15 }, (_, i) => parseCidr(`172.${17 + i}.0.0/16`));
  assert.equal(cidrString(nextFreePool(DOCKER_DEFAULT_POOLS, all172)!), '192.168.0.0/20');
  assert.equal(cidrString(nextFreePool([parsePoolFlag('base=10.10.0.0/16,size=24')], [parseCidr('10.10.0.0/24')])!), '10.10.1.0/24');
  assert.throws(() => parsePoolFlag('base=10.0.0.0/16,size=8'), /invalid default address pool/);
});

test('MAC from IPv4 as Docker derives it', () => {
  assert.equal(macFromIpv4('172.17.0.2'), '02:42:ac:11:00:02');
  assert.equal(macFromIpv4('172.18.0.3'), '02:42:ac:12:00:03');
});

test('parseCidrStrict takes what Go\'s netip.ParsePrefix takes, nothing more', () => {
  for (const good of ['10.0.0.0/8', '192.168.1.5/24', '0.0.0.0/0', 'fd00:1::/64', '::/0', '2001:db8::1/128']) {
    assert.ok(parseCidrStrict(good), good);
  }
  for (const bad of ['10.0.0.0/33', 'fd00::/129', '10.0.0.0', '10.1/8', '010.0.0.0/8', '10.0.0.0/08', 'fe80::1%eth0/64', ' 10.0.0.0/8', 'notacidr', '']) {
    assert.equal(parseCidrStrict(bad), null, bad);
  }
  assert.equal(parseCidrStrict('192.168.1.5/24')!.address, '192.168.1.5', 'the written address is kept (for "it should be")');
  assert.ok(isStrictIp('10.1.2.3') && isStrictIp('fd00::1') && !isStrictIp('10.1.2') && !isStrictIp('1.2.3.04') && !isStrictIp('nope'));
});

test('the default ULA pool: a /48 under fd00::/8 from the daemon id, cut in /64s', () => {
  const p = ulaPool('some-daemon-id');
  assert.equal(p.size, 64);
  assert.match(p.base, /^fd[0-9a-f:]*\/48$/);
  assert.deepEqual(ulaPool('some-daemon-id'), p, 'stable for one daemon');
  assert.notDeepEqual(ulaPool('another-daemon'), p);
  const first = nextFreePool([p], [])!;
  assert.equal(first.prefix, 64);
  assert.ok(contains(parseCidr(p.base), first.network));
  const second = nextFreePool([p], [first])!;
  assert.notEqual(cidrString(second), cidrString(first));
});

test('pool exhaustion names the network and the family', () => {
  assert.equal(exhausted('front', 'abc', 6).message, "no available IPv6 addresses on this network's address pools: front (abc)");
});
