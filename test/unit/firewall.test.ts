// The Firewall's bookkeeping against a recording stand-in for nft: one transaction per call, incremental
// elements for ports and links, a full rewrite for networks, state untouched by a failed transaction,
// idempotent adds and removes, conflicts named. The real kernel is exercised in test/netns/firewall.test.ts.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Firewall, type NftRunner } from '../../src/firewall/firewall.ts';
import type { FwLink, FwNetwork, FwPort } from '../../src/firewall/model.ts';
import { LoomError } from '../../src/util/errors.ts';

class FakeNft implements NftRunner {
  readonly calls: string[] = [];
  failWith: string | null = null;
  run(commands: string): string {
    if (this.failWith) throw new Error(this.failWith);
    this.calls.push(commands);
    return '';
  }
  close(): void {}
}

const net = (over: Partial<FwNetwork> = {}): FwNetwork => ({ id: 'n1', bridge: 'docker0', subnets4: ['172.17.0.0/16'], subnets6: [], masquerade: true, icc: true, internal: false, ...over });
const port = (over: Partial<FwPort> = {}): FwPort => ({ proto: 'tcp', hostIp: '', hostPort: 8080, hostPortEnd: 8080, containerIp: '172.17.0.2', containerPort: 80, containerPortEnd: 80, bridge: 'docker0', family: 4, ...over });
const link = (over: Partial<FwLink> = {}): FwLink => ({ bridge: 'docker0', fromIp: '172.17.0.3', toIp: '172.17.0.2', proto: 'tcp', port: 80, ...over });

function setup() {
  const nft = new FakeNft();
  const fw = new Firewall(nft);
  fw.reconcile({ networks: [net()], ports: [], links: [] });
  nft.calls.length = 0;
  return { nft, fw };
}

describe('Firewall', () => {
  test('reconcile is one full rewrite of both tables', () => {
    const nft = new FakeNft();
    const fw = new Firewall(nft);
    fw.reconcile({ networks: [net()], ports: [port()], links: [link()] });
    assert.equal(nft.calls.length, 1);
    assert.match(nft.calls[0]!, /^table ip loom\ndelete table ip loom\n/);
    assert.match(nft.calls[0]!, /elements = \{ tcp \. 8080 : 172\.17\.0\.2 \. 80 \}/);
    assert.equal(fw.state().ports.length, 1);
  });

  test('a container start: ports and links as elements in one transaction', () => {
    const { nft, fw } = setup();
    fw.apply({ addPorts: [port(), port({ proto: 'udp' })], addLinks: [link()] });
    assert.equal(nft.calls.length, 1);
    assert.equal(nft.calls[0], [
      'add element ip loom ports { tcp . 8080 : 172.17.0.2 . 80 }',
      'add element ip loom ports { udp . 8080 : 172.17.0.2 . 80 }',
      'add element ip loom links { "docker0" . 172.17.0.3 . 172.17.0.2 . tcp . 80 }',
      '',
    ].join('\n'));
  });

  test('a container stop: removal of everything it added in one transaction; repeating it is a no-op', () => {
    const { nft, fw } = setup();
    fw.apply({ addPorts: [port()], addLinks: [link()] });
    fw.apply({ removePorts: [port()], removeLinks: [link()] });
    assert.equal(nft.calls.length, 2);
    assert.equal(nft.calls[1], 'delete element ip loom ports { tcp . 8080 }\ndelete element ip loom links { "docker0" . 172.17.0.3 . 172.17.0.2 . tcp . 80 }\n');
    fw.apply({ removePorts: [port()], removeLinks: [link()] });
    assert.equal(nft.calls.length, 2, 'nothing left to remove: no transaction');
    assert.deepEqual(fw.state().ports, []);
  });

  test('adding the same mapping twice is a no-op; a different mapping on the same host port is a conflict', () => {
    const { nft, fw } = setup();
    fw.addPorts([port()]);
    fw.addPorts([port()]);
    assert.equal(nft.calls.length, 1);
    assert.throws(() => fw.addPorts([port({ containerIp: '172.17.0.9' })]), (e: unknown) => e instanceof LoomError && e.status === 409 && /tcp 0\.0\.0\.0:8080 -> 172\.17\.0\.9:80: overlaps tcp 0\.0\.0\.0:8080 -> 172\.17\.0\.2:80/.test(e.message));
    assert.throws(() => fw.addPorts([port({ hostIp: '10.0.0.1', hostPort: 8000, hostPortEnd: 8100, containerPort: 8000, containerPortEnd: 8100 })]), /overlaps/);
    fw.addPorts([port({ proto: 'udp' }), port({ family: 6, containerIp: 'fd00::2' })]); // other protocol, other family: fine
    assert.equal(fw.state().ports.length, 3);
  });

  test('removing a mapping by key with other data leaves the current owner alone', () => {
    const { nft, fw } = setup();
    fw.addPorts([port()]);
    fw.removePorts([port({ containerIp: '172.17.0.99' })]);
    assert.equal(nft.calls.length, 1);
    assert.equal(fw.state().ports.length, 1);
  });

  test('a failed transaction leaves the state as it was and says what failed', () => {
    const { nft, fw } = setup();
    fw.addPorts([port()]);
    const before = fw.state();
    nft.failWith = 'nft: line 1:25-55: Error: Could not process rule: File exists';
    assert.throws(() => fw.apply({ addPorts: [port({ hostPort: 9090, hostPortEnd: 9090 })], removePorts: [port()] }),
      (e: unknown) => e instanceof LoomError && e.status === 500 && /add ports: 1, remove ports: 1/.test(e.message) && /File exists/.test(e.message));
    assert.deepEqual(fw.state(), before);
    assert.throws(() => fw.addNetwork(net({ id: 'n2', bridge: 'br-2' })), /add networks: 1/);
    assert.deepEqual(fw.state(), before);
    nft.failWith = null;
    assert.throws(() => fw.addPorts([port({ bridge: 'bad"name' })]), (e: unknown) => e instanceof LoomError && e.status === 400 && /invalid bridge name/.test(e.message));
    assert.deepEqual(fw.state(), before);
  });

  test('network changes rewrite the table from the full state, ports and links included', () => {
    const { nft, fw } = setup();
    fw.apply({ addPorts: [port()], addLinks: [link()] });
    fw.addNetwork(net({ id: 'n2', bridge: 'br-2', subnets4: ['172.18.0.0/16'] }));
    const text = nft.calls[1]!;
    assert.match(text, /^table ip loom\ndelete table ip loom\n/);
    assert.match(text, /"br-2"/);
    assert.match(text, /tcp \. 8080 : 172\.17\.0\.2 \. 80/);
    assert.match(text, /"docker0" \. 172\.17\.0\.3 \. 172\.17\.0\.2 \. tcp \. 80/);
    fw.addNetwork(net({ id: 'n2', bridge: 'br-2', subnets4: ['172.18.0.0/16'] }));
    assert.equal(nft.calls.length, 2, 'the same network again: nothing to do');
    fw.addNetwork(net({ id: 'n2', bridge: 'br-2', subnets4: ['172.18.0.0/16'], icc: false }));
    assert.match(nft.calls[2]!, /iifname "br-2" oifname "br-2" drop/);
    fw.removeNetwork('n2');
    assert.doesNotMatch(nft.calls[3]!, /br-2/);
    fw.apply({ removeNetworks: [net()] }); // by object, as the controller passes it
    assert.deepEqual(fw.state().networks, []);
    fw.addNetwork(net({ id: 'other', bridge: 'br-x' }));
    assert.throws(() => fw.addNetwork(net({ id: 'again', bridge: 'br-x' })), /already belongs to network other/);
  });

  test('removing and adding back the same element in one change costs nothing in the kernel', () => {
    const { nft, fw } = setup();
    fw.addPorts([port()]);
    fw.apply({ removePorts: [port()], addPorts: [port(), port({ hostPort: 9000, hostPortEnd: 9000 })] });
    assert.equal(nft.calls[1], 'add element ip loom ports { tcp . 9000 : 172.17.0.2 . 80 }\n');
  });

  test('state() is a copy in canonical form', () => {
    const { fw } = setup();
    fw.addPorts([port({ family: 6, containerIp: 'FD00:0:0::2', hostIp: '::' })]);
    const s = fw.state();
    assert.equal(s.ports[0]!.containerIp, 'fd00::2');
    assert.equal(s.ports[0]!.hostIp, '');
    s.ports.length = 0;
    assert.equal(fw.state().ports.length, 1);
  });
});
