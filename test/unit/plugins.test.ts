// The legacy plugin protocol: discovery (sockets before spec files), the HTTP client (Docker's headers,
// bodies and error texts, retry while a socket is not listening yet), activation, the remote network
// driver's requests and the remote IPAM's pool/address flow — against plugins served by this test on
// unix sockets in a temporary directory.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { findPlugin, scanPlugins, readSpec } from '../../src/plugins/discovery.ts';
import { PluginClient, PluginCallError, PluginUnreachableError, VERSION_MIMETYPE } from '../../src/plugins/client.ts';
import { Plugins } from '../../src/plugins/registry.ts';
import { RemoteDriverApi, ipamData, createNetworkOptions } from '../../src/drivers/remote.ts';
import { RemoteIpam } from '../../src/plugins/ipam.ts';
import type { NetworkRecord, EndpointRecord } from '../../src/core/types.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loom-plugins-'));
const servers: http.Server[] = [];
after(() => {
  for (const s of servers) s.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

interface Seen { method: string; headers: http.IncomingHttpHeaders; body: string }
type Handler = (method: string, body: any) => [number, unknown] | unknown;

/** A plugin on `sock` answering with `h`; every request is recorded in the returned list. */
async function serve(sock: string, h: Handler): Promise<Seen[]> {
  const seen: Seen[] = [];
  const s = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const method = req.url!.slice(1);
      seen.push({ method, headers: req.headers, body });
      const out = h(method, body ? JSON.parse(body) : null);
      const [status, json] = Array.isArray(out) && typeof out[0] === 'number' ? out as [number, unknown] : [200, out];
      res.writeHead(status);
      res.end(typeof json === 'string' ? json : JSON.stringify(json));
    });
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(sock, () => r()));
  return seen;
}

const silent = { debug() {}, info() {}, warn() {}, error() {}, child() { return silent; } };

test('discovery: NAME.sock and NAME/NAME.sock first, then .spec and .json; names cannot leave the directory', async () => {
  const a = path.join(dir, 'disc-a'), b = path.join(dir, 'disc-b');
  fs.mkdirSync(path.join(a, 'nested'), { recursive: true });
  fs.mkdirSync(b);
  await serve(path.join(a, 'nested', 'nested.sock'), () => ({}));
  await serve(path.join(b, 'both.sock'), () => ({}));
  fs.writeFileSync(path.join(a, 'both.spec'), 'tcp://127.0.0.1:1\n');
  fs.writeFileSync(path.join(a, 'tcpone.spec'), ' tcp://127.0.0.1:9999 \n');
  fs.writeFileSync(path.join(b, 'web.json'), JSON.stringify({ Name: 'web', Addr: 'https://127.0.0.1:8443', TLSConfig: { CertFile: '/x' } }));
  fs.writeFileSync(path.join(a, 'noproto.spec'), '/run/x.sock');
  fs.writeFileSync(path.join(a, 'notasocket.sock'), '');
  assert.equal(findPlugin('nested', [a, b])!.addr, `unix://${path.join(a, 'nested', 'nested.sock')}`);
  // a socket anywhere wins over a spec file
  assert.equal(findPlugin('both', [a, b])!.addr, `unix://${path.join(b, 'both.sock')}`);
  assert.equal(findPlugin('tcpone', [a, b])!.addr, 'tcp://127.0.0.1:9999');
  const web = findPlugin('web', [a, b])!;
  assert.equal(web.addr, 'https://127.0.0.1:8443');
  assert.equal(web.tls!.InsecureSkipVerify, true, 'TLS without a CA file skips verification, as Docker');
  assert.throws(() => findPlugin('noproto', [a, b]), /Unknown protocol/);
  assert.equal(findPlugin('notasocket', [a, b]), null);
  assert.equal(findPlugin('absent', [a, b]), null);
  assert.equal(findPlugin('../disc-b/both', [a, b]), null);
  assert.deepEqual(scanPlugins([a, b, path.join(dir, 'nope')]), ['both', 'nested', 'noproto', 'tcpone', 'web']);
  assert.throws(() => readSpec('x', path.join(a, 'missing.spec')), /ENOENT/);
});

test('client: POST /Method with Docker\'s Accept header and a JSON body; answers decoded', async () => {
  const sock = path.join(dir, 'c1.sock');
  const seen = await serve(sock, (m, b) => (m === 'Empty' ? '' : { Echo: b, Method: m }));
  const c = new PluginClient({ name: 'c1', addr: `unix://${sock}`, source: sock });
  assert.deepEqual(await c.call('NetworkDriver.Join', { NetworkID: 'n', EndpointID: 'e' }), { Echo: { NetworkID: 'n', EndpointID: 'e' }, Method: 'NetworkDriver.Join' });
  assert.equal(seen[0]!.headers.accept, VERSION_MIMETYPE);
  assert.equal(seen[0]!.headers.host, 'plugin.moby.localhost');
  assert.equal(seen[0]!.body, '{"NetworkID":"n","EndpointID":"e"}\n');
  // no arguments: no body (Docker's GetCapabilities, Plugin.Activate)
  await c.call('NetworkDriver.GetCapabilities');
  assert.equal(seen[1]!.body, '');
  assert.deepEqual(await c.call('Empty'), {});
});

test('client: a non-200 answer is "<Method>: <Err>" (or its text); a missing plugin is unreachable after the retries', async () => {
  const sock = path.join(dir, 'c2.sock');
  await serve(sock, (m) => (m === 'Json' ? [500, { Err: 'it broke' }] : m === 'Text' ? [404, '404 page not found\n'] : [200, 'not json']));
  const c = new PluginClient({ name: 'c2', addr: `unix://${sock}`, source: sock });
  const e1 = await c.call('Json').catch((e) => e);
  assert.ok(e1 instanceof PluginCallError);
  assert.equal(e1.message, 'Json: it broke');
  assert.equal(e1.status, 500);
  const e2 = await c.call('Text').catch((e) => e);
  assert.equal(e2.message, 'Text: 404 page not found');
  assert.equal(e2.status, 404);
  assert.match((await c.call('Bad').catch((e) => e)).message, /^Bad: error reading plugin resp/);
  const gone = new PluginClient({ name: 'gone', addr: `unix://${path.join(dir, 'gone.sock')}`, source: '' }, { retryMs: 300 });
  const e3 = await gone.call('Plugin.Activate').catch((e) => e);
  assert.ok(e3 instanceof PluginUnreachableError);
  assert.match(e3.message, /^Plugin\.Activate: plugin gone is not reachable at unix:\/\/.*gone\.sock: .*ENOENT/);
});

test('client: a socket that starts listening during the retries is reached', async () => {
  const sock = path.join(dir, 'late.sock');
  const c = new PluginClient({ name: 'late', addr: `unix://${sock}`, source: sock }, { retryMs: 5000 });
  const p = c.call('Plugin.Activate');
  await new Promise((r) => setTimeout(r, 250));
  await serve(sock, () => ({ Implements: ['NetworkDriver'] }));
  assert.deepEqual(await p, { Implements: ['NetworkDriver'] });
});

test('registry: activation once, implementation checked, Docker\'s not-found error', async () => {
  const pdir = path.join(dir, 'reg');
  fs.mkdirSync(pdir);
  const seen = await serve(path.join(pdir, 'net.sock'), (m) => (m === 'Plugin.Activate' ? { Implements: ['NetworkDriver'] } : {}));
  const reg = new Plugins([pdir], silent);
  const a = await reg.get('net', 'NetworkDriver');
  assert.deepEqual(a.implements, ['NetworkDriver']);
  await reg.get('net', 'NetworkDriver');
  assert.equal(seen.filter((s) => s.method === 'Plugin.Activate').length, 1);
  await assert.rejects(reg.get('net', 'IpamDriver'), (e: any) => e.status === 400 && e.message === 'Plugin does not implement the requested driver: plugin="net", requested implementation="IpamDriver"');
  await assert.rejects(reg.get('nothere', 'NetworkDriver'), (e: any) => e.status === 404 && e.message === 'plugin "nothere" not found');
});

const NET: NetworkRecord = {
  id: 'a'.repeat(64), name: 'n', driver: 'p', scope: 'local', created: '', enableIPv6: true, internal: true, attachable: false,
  ipam: { driver: 'default', options: {}, config: [{ Subnet: '10.9.0.0/24', Gateway: '10.9.0.1', AuxiliaryAddresses: { r: '10.9.0.5' } }, { Subnet: 'fd00:9::/64', Gateway: 'fd00:9::1' }] },
  options: { foo: 'bar' }, labels: {},
};

test('remote driver requests: IPAMData and generic options as libnetwork sends them; errors as Docker words them', async () => {
  assert.deepEqual(ipamData(NET, 4), [{ AddressSpace: 'LocalDefault', Pool: '10.9.0.0/24', Gateway: '10.9.0.1/24', AuxAddresses: { r: '10.9.0.5/24' } }]);
  assert.deepEqual(ipamData(NET, 6), [{ AddressSpace: 'LocalDefault', Pool: 'fd00:9::/64', Gateway: 'fd00:9::1/64' }]);
  assert.deepEqual(createNetworkOptions(NET), {
    'com.docker.network.enable_ipv4': true, 'com.docker.network.enable_ipv6': true, 'com.docker.network.generic': { foo: 'bar' }, 'com.docker.network.internal': true,
  });
  const sock = path.join(dir, 'drv.sock');
  await serve(sock, (m) => {
    if (m === 'NetworkDriver.GetCapabilities') return { Scope: 'global' };
    if (m === 'NetworkDriver.CreateNetwork') return { Err: 'polite no' };
    if (m === 'NetworkDriver.DeleteNetwork') return [500, { Err: 'rude no' }];
    if (m === 'NetworkDriver.EndpointOperInfo') return { Value: { k: 'v' } };
    return {};
  });
  const api = new RemoteDriverApi('drv', new PluginClient({ name: 'drv', addr: `unix://${sock}`, source: sock }));
  assert.deepEqual(await api.capabilities(), { scope: 'global', connectivityScope: 'global' });
  await assert.rejects(api.call('CreateNetwork', {}), (e: any) => e.status === 500 && e.message === 'remote: polite no (network plugin drv)');
  await assert.rejects(api.call('DeleteNetwork', {}), (e: any) => e.message === 'NetworkDriver.DeleteNetwork: rude no (network plugin drv)' && e.pluginStatus === 500);
  assert.deepEqual(await api.endpointOperInfo('n', 'e'), { k: 'v' });
  const bad = path.join(dir, 'badcap.sock');
  await serve(bad, () => ({ Scope: 'planet' }));
  await assert.rejects(new RemoteDriverApi('badcap', new PluginClient({ name: 'badcap', addr: `unix://${bad}`, source: bad })).capabilities(),
    /invalid capability: expecting 'local' or 'global', got planet/);
});

test('remote IPAM: pools per family, the gateway from the pool\'s data or requested, endpoints\' addresses, rollback', async () => {
  const sock = path.join(dir, 'ipam.sock');
  let n = 10;
  const seen = await serve(sock, (m, b) => {
    switch (m) {
      case 'IpamDriver.GetCapabilities': return { RequiresMACAddress: true };
      case 'IpamDriver.GetDefaultAddressSpaces': return { LocalDefaultAddressSpace: 'L', GlobalDefaultAddressSpace: 'G' };
      case 'IpamDriver.RequestPool':
        if (b.Pool === '10.99.0.0/24') return { Error: 'pool taken' };
        return b.V6 ? { PoolID: 'p6', Pool: 'fd99::/64', Data: { 'com.docker.network.gateway': 'fd99::1/64' } } : { PoolID: 'p4', Pool: b.Pool || '10.8.0.0/24' };
      case 'IpamDriver.RequestAddress': return { Address: `${b.Address || `10.8.0.${n++}`}/24` };
      default: return {};
    }
  });
  const ipam = new RemoteIpam('ip', new PluginClient({ name: 'ip', addr: `unix://${sock}`, source: sock }));
  const got = await ipam.allocateNetwork([{ Subnet: '10.8.0.0/24', Gateway: '10.8.0.254', AuxiliaryAddresses: { a: '10.8.0.9' } }], true, { o: '1' }, 'local');
  assert.deepEqual(got.config, [{ Subnet: '10.8.0.0/24', Gateway: '10.8.0.254', AuxiliaryAddresses: { a: '10.8.0.9' } }, { Subnet: 'fd99::/64', Gateway: 'fd99::1' }]);
  assert.deepEqual(got.auto, ['fd99::/64']);
  assert.deepEqual(got.pools, [{ poolId: 'p4', subnet: '10.8.0.0/24', reserved: ['10.8.0.254', '10.8.0.9'] }, { poolId: 'p6', subnet: 'fd99::/64', reserved: [] }]);
  const pool4 = JSON.parse(seen.find((s) => s.method === 'IpamDriver.RequestPool')!.body);
  assert.deepEqual(pool4, { AddressSpace: 'L', Pool: '10.8.0.0/24', SubPool: '', Options: { o: '1' }, V6: false });
  const gw = JSON.parse(seen.find((s) => s.method === 'IpamDriver.RequestAddress')!.body);
  assert.deepEqual(gw, { PoolID: 'p4', Address: '10.8.0.254', Options: { RequestAddressType: 'com.docker.network.gateway' } });

  const net: NetworkRecord = { ...NET, enableIPv6: false, ipam: { driver: 'ip', options: {}, config: [got.config[0]!] }, ipamPools: [got.pools[0]!] };
  const ep = { id: 'e', mac: '02:42:0a:08:00:0a' } as EndpointRecord;
  await ipam.allocateEndpoint(net, ep);
  assert.equal(ep.ipv4, '10.8.0.10');
  assert.equal(ep.prefix4, 24);
  assert.equal(ep.gateway4, '10.8.0.254');
  const req = JSON.parse(seen.filter((s) => s.method === 'IpamDriver.RequestAddress').at(-1)!.body);
  assert.deepEqual(req.Options, { 'com.docker.network.endpoint.macaddress': '02:42:0a:08:00:0a' }, 'RequiresMACAddress: the MAC goes along');
  await ipam.releaseEndpoint(net, ep);
  assert.deepEqual(JSON.parse(seen.at(-1)!.body), { PoolID: 'p4', Address: '10.8.0.10' });
  assert.equal(ep.ipv4, undefined);

  // a pool refused after others were given: everything given is released
  const before = seen.length;
  await assert.rejects(ipam.allocateNetwork([{ Subnet: '10.8.0.0/24' }, { Subnet: '10.99.0.0/24' }], false, {}, 'local'), /remote: pool taken \(IPAM plugin ip\)/);
  const after = seen.slice(before).map((s) => `${s.method} ${s.body.trim()}`);
  assert.ok(after.includes('IpamDriver.ReleaseAddress {"PoolID":"p4","Address":"10.8.0.11"}'), after.join('\n'));
  assert.ok(after.includes('IpamDriver.ReleasePool {"PoolID":"p4"}'));
});
