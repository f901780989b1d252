import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseResolvConf, renderHosts, renderResolvConf } from '../../src/core/etcfiles.ts';

test('hosts file has localhost, ip6 names, links and the container itself', () => {
  const h = renderHosts({ self: [{ ip: '172.17.0.5', names: ['178d290d873c'] }], links: [{ ip: '172.17.0.4', names: ['c1', '3b7b15fa7e20'] }] });
  const lines = h.trim().split('\n');
  assert.equal(lines[0], '127.0.0.1\tlocalhost');
  assert.ok(lines.includes('::1\tlocalhost ip6-localhost ip6-loopback'));
  assert.ok(lines.includes('172.17.0.4\tc1 3b7b15fa7e20'));
  assert.equal(lines.at(-1), '172.17.0.5\t178d290d873c');
});

test('resolv.conf drops loopback resolvers and falls back to defaults', () => {
  const host = parseResolvConf('# x\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch example.org\noptions edns0\n');
  const out = renderResolvConf(host, {});
  assert.match(out, /^nameserver 10\.0\.0\.2$/m);
  assert.doesNotMatch(out, /127\.0\.0\.53/);
  assert.match(out, /^search example\.org$/m);
  const only = renderResolvConf(parseResolvConf('nameserver 127.0.0.1\n'), {});
  assert.match(only, /nameserver 8\.8\.8\.8/);
});

test('resolv.conf honours --dns, --dns-search, --dns-option and the internal resolver', () => {
  const host = parseResolvConf('nameserver 10.0.0.2\n');
  const out = renderResolvConf(host, { dns: ['198.51.100.2'], search: ['a.test'], options: ['ndots:2'] });
  assert.match(out, /^nameserver 198\.51\.100\.2$/m);
  assert.doesNotMatch(out, /10\.0\.0\.2/);
  assert.match(out, /^search a\.test$/m);
  assert.match(out, /^options ndots:2$/m);
  const internal = renderResolvConf(host, { internalResolver: '127.0.0.11' });
  assert.match(internal, /^nameserver 127\.0\.0\.11$/m);
  assert.match(internal, /^options ndots:0$/m);
  assert.match(internal, /ExtServers: \[10\.0\.0\.2\]/);
});
