// Golden rulesets over the option matrix: icc × masquerade × internal, each with the port shapes
// (single, same-number range, range to one port, host address, udp, sctp, shifted range, IPv6) and a link.
// The files under golden/firewall/ are what `nft list table ip loom` is built from; a change to the
// rules shows up as a diff there. Regenerate with UPDATE_GOLDEN=1.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  FwInputError, normSubnet, normPorts, renderAddLinks, renderAddPorts, renderDeleteLinks, renderDeletePorts, renderRuleset,
} from '../../src/firewall/ruleset.ts';
import type { FwLink, FwNetwork, FwPort, FwState } from '../../src/firewall/model.ts';

const GOLDEN = path.join(import.meta.dirname, 'golden', 'firewall');
const update = process.env.UPDATE_GOLDEN === '1';

function golden(name: string, actual: string): void {
  const file = path.join(GOLDEN, `${name}.nft`);
  if (update) {
    fs.mkdirSync(GOLDEN, { recursive: true });
    fs.writeFileSync(file, actual);
    return;
  }
  assert.ok(fs.existsSync(file), `golden file ${file} missing: run with UPDATE_GOLDEN=1`);
  assert.equal(actual, fs.readFileSync(file, 'utf8'), `${name}: output differs from ${file} (UPDATE_GOLDEN=1 to accept)`);
}

const ID = (c: string) => c.repeat(64);

function network(over: Partial<FwNetwork> = {}): FwNetwork {
  return { id: ID('a'), bridge: 'docker0', subnets4: ['172.17.0.0/16'], subnets6: [], gateways4: ['172.17.0.1'], masquerade: true, icc: true, internal: false, ...over };
}

function port(over: Partial<FwPort> = {}): FwPort {
  return { proto: 'tcp', hostIp: '', hostPort: 8080, hostPortEnd: 8080, containerIp: '172.17.0.2', containerPort: 80, containerPortEnd: 80, bridge: 'docker0', family: 4, ...over };
}

const link = (over: Partial<FwLink> = {}): FwLink => ({ bridge: 'docker0', fromIp: '172.17.0.3', toIp: '172.17.0.2', proto: 'tcp', port: 80, ...over });

/** Every port shape the controller can hand over, on one network. */
function allPortShapes(bridge: string, c: string, c6: string): FwPort[] {
  return [
    port({ bridge, containerIp: c }), // -p 8080:80
    port({ bridge, containerIp: c, hostPort: 8000, hostPortEnd: 8010, containerPort: 8000, containerPortEnd: 8010 }), // -p 8000-8010:8000-8010
    port({ bridge, containerIp: c, hostPort: 9000, hostPortEnd: 9009, containerPort: 80, containerPortEnd: 80 }), // -p 9000-9009:80
    port({ bridge, containerIp: c, hostIp: '127.0.0.1', hostPort: 5432, hostPortEnd: 5432, containerPort: 5432, containerPortEnd: 5432 }), // -p 127.0.0.1:5432:5432
    port({ bridge, containerIp: c, proto: 'udp', hostPort: 53, hostPortEnd: 53, containerPort: 53, containerPortEnd: 53 }), // -p 53:53/udp
    port({ bridge, containerIp: c, proto: 'sctp', hostPort: 3868, hostPortEnd: 3868, containerPort: 3868, containerPortEnd: 3868 }),
    port({ bridge, containerIp: c, hostPort: 7000, hostPortEnd: 7002, containerPort: 9000, containerPortEnd: 9002 }), // shifted: per port
    port({ bridge, containerIp: c6, family: 6, hostPort: 8080, hostPortEnd: 8080 }), // IPv6
    port({ bridge, containerIp: c6, family: 6, hostIp: '::1', hostPort: 8443, hostPortEnd: 8443, containerPort: 443, containerPortEnd: 443 }),
  ];
}

describe('firewall ruleset: golden files', () => {
  test('empty state: the tables and chains, nothing else', () => {
    golden('empty', renderRuleset({ networks: [], ports: [], links: [] }));
  });

  test('one default network with one published port', () => {
    golden('one-network-one-port', renderRuleset({ networks: [network()], ports: [port()], links: [] }));
  });

  for (const icc of [true, false]) {
    for (const masquerade of [true, false]) {
      for (const internal of [false, true]) {
        const name = `matrix-icc-${icc ? 'on' : 'off'}-masq-${masquerade ? 'on' : 'off'}${internal ? '-internal' : ''}`;
        test(name, () => {
          const state: FwState = {
            networks: [network({ id: ID('b'), bridge: 'br-test', subnets4: ['10.10.0.0/24'], subnets6: ['fd00:10::/64'], gateways4: ['10.10.0.1'], gateways6: ['fd00:10::1'], icc, masquerade, internal })],
            // The controller publishes nothing on internal networks, but the rules must not care.
            ports: internal ? [] : allPortShapes('br-test', '10.10.0.2', 'fd00:10::2'),
            links: [link({ bridge: 'br-test', fromIp: '10.10.0.3', toIp: '10.10.0.2', port: 5432 }), link({ bridge: 'br-test', fromIp: '10.10.0.3', toIp: '10.10.0.2', proto: 'udp', port: 53 })],
          };
          golden(name, renderRuleset(state));
        });
      }
    }
  }

  test('several networks: isolation, per-network masquerade and icc, an internal one', () => {
    golden('several-networks', renderRuleset({
      networks: [
        network(),
        network({ id: ID('c'), bridge: 'br-c0ffee', subnets4: ['172.18.0.0/16'], subnets6: ['fd00:18::/64'], gateways4: ['172.18.0.1'], gateways6: ['fd00:18::1'], icc: false }),
        network({ id: ID('d'), bridge: 'br-internal', subnets4: ['172.19.0.0/16'], gateways4: ['172.19.0.1'], internal: true }),
        network({ id: ID('e'), bridge: 'br-nomasq', subnets4: ['172.20.0.0/16', '172.21.0.0/16'], gateways4: ['172.20.0.1', '172.21.0.1'], masquerade: false }),
      ],
      ports: [port(), port({ hostPort: 8081, hostPortEnd: 8081, containerIp: '172.18.0.2', bridge: 'br-c0ffee' })],
      links: [link({ bridge: 'br-c0ffee', fromIp: '172.18.0.3', toIp: '172.18.0.2' })],
    }));
  });

  test('incremental element commands', () => {
    const ports = allPortShapes('docker0', '172.17.0.2', 'fd00::2');
    const links = [link(), link({ fromIp: 'fd00::3', toIp: 'fd00::2' })];
    golden('incremental', [
      '# renderAddPorts', renderAddPorts(ports),
      '# renderDeletePorts', renderDeletePorts(ports),
      '# renderAddLinks', renderAddLinks(links),
      '# renderDeleteLinks', renderDeleteLinks(links),
    ].join('\n'));
  });
});

describe('firewall ruleset: properties', () => {
  test('a full render replaces only loom tables, idempotently: create, delete, define', () => {
    const text = renderRuleset({ networks: [network()], ports: [], links: [] });
    const tableLines = text.split('\n').filter((l) => /^(table|delete table)/.test(l));
    assert.deepEqual(tableLines, ['table ip loom', 'delete table ip loom', 'table ip loom {', 'table ip6 loom', 'delete table ip6 loom', 'table ip6 loom {']);
    assert.doesNotMatch(text, /flush ruleset|table (inet|ip|ip6) (?!loom)/);
  });

  test('the output is independent of input order', () => {
    const a = network(), b = network({ id: ID('c'), bridge: 'br-c', subnets4: ['172.18.0.0/16'] });
    const p1 = port(), p2 = port({ hostPort: 8081, hostPortEnd: 8081 });
    assert.equal(renderRuleset({ networks: [a, b], ports: [p1, p2], links: [] }), renderRuleset({ networks: [b, a], ports: [p2, p1], links: [] }));
  });

  test('one element per published port or range: the packet path does not grow with ports', () => {
    const many = Array.from({ length: 50 }, (_, i) => port({ hostPort: 10000 + i, hostPortEnd: 10000 + i, containerIp: `172.17.0.${i + 2}` }));
    const text = renderRuleset({ networks: [network()], ports: many, links: [] });
    assert.equal(text.split('\n').filter((l) => /dnat ip6? to/.test(l)).length, 8, 'four DNAT rules per family, whatever the number of ports');
    assert.equal(text.split('\n').filter((l) => l.includes('jump published')).length, 4);
    assert.equal(renderAddPorts([port({ hostPort: 8000, hostPortEnd: 8999, containerPort: 8000, containerPortEnd: 8999 })]).trim().split('\n').length, 1);
  });

  test('port ranges: same numbers keep the port, N:1 rewrites, shifted ranges go per port', () => {
    assert.equal(renderAddPorts([port({ hostPort: 8000, hostPortEnd: 8010, containerPort: 8000, containerPortEnd: 8010 })]),
      'add element ip loom port_ranges_same { 0.0.0.0/0 . tcp . 8000-8010 : 172.17.0.2 }\n');
    assert.equal(renderAddPorts([port({ hostPort: 9000, hostPortEnd: 9009 })]), 'add element ip loom port_ranges { 0.0.0.0/0 . tcp . 9000-9009 : 172.17.0.2 . 80 }\n');
    assert.equal(renderAddPorts([port({ hostIp: '10.0.0.1', hostPort: 9000, hostPortEnd: 9009 })]), 'add element ip loom port_ranges { 10.0.0.1 . tcp . 9000-9009 : 172.17.0.2 . 80 }\n');
    assert.equal(normPorts(port({ hostPort: 7000, hostPortEnd: 7002, containerPort: 9000, containerPortEnd: 9002 })).length, 3);
    assert.throws(() => normPorts(port({ hostPort: 7000, hostPortEnd: 7002, containerPort: 9000, containerPortEnd: 9001 })), FwInputError);
  });

  test('host addresses: specific, every address (empty, 0.0.0.0, ::), canonical IPv6', () => {
    assert.equal(renderAddPorts([port({ hostIp: '0.0.0.0' })]), 'add element ip loom ports { tcp . 8080 : 172.17.0.2 . 80 }\n');
    assert.equal(renderAddPorts([port({ hostIp: '10.1.2.3' })]), 'add element ip loom ports_on_addr { 10.1.2.3 . tcp . 8080 : 172.17.0.2 . 80 }\n');
    assert.equal(renderAddPorts([port({ family: 6, hostIp: '::', containerIp: 'FD00:0::02' })]), 'add element ip6 loom ports { tcp . 8080 : fd00::2 . 80 }\n');
    assert.equal(renderDeletePorts([port({ family: 6, hostIp: '::1', containerIp: 'fd00::2' })]), 'delete element ip6 loom ports_on_addr { ::1 . tcp . 8080 }\n');
    assert.throws(() => renderAddPorts([port({ hostIp: '::1' })]), /invalid IPv4 address: "::1"/);
    assert.equal(normSubnet('172.17.0.1/16', 4), '172.17.0.0/16');
    assert.equal(normSubnet('FD00:1::5/64', 6), 'fd00:1::/64');
  });

  test('values that would break out of nft syntax are refused, naming the value', () => {
    assert.throws(() => renderRuleset({ networks: [network({ bridge: 'br" accept\nadd rule' })], ports: [], links: [] }), /invalid bridge name/);
    assert.throws(() => renderRuleset({ networks: [network({ bridge: 'a-name-longer-than-15' })], ports: [], links: [] }), /invalid bridge name/);
    assert.throws(() => renderRuleset({ networks: [network({ subnets4: ['172.17.0.0/16; drop'] })], ports: [], links: [] }), /invalid IPv4 subnet/);
    assert.throws(() => renderAddPorts([port({ containerIp: '010.1.1.1' })]), /invalid IPv4 address/);
    assert.throws(() => renderAddPorts([port({ proto: 'icmp' as 'tcp' })]), /invalid protocol/);
    assert.throws(() => renderAddPorts([port({ hostPort: 0 })]), /invalid host port/);
    assert.throws(() => renderAddLinks([link({ port: 70000 })]), /invalid link port/);
  });

  test('isolation covers the other networks\' gateway addresses (input hook), not the own one', () => {
    const text = renderRuleset({ networks: [network(), network({ id: ID('c'), bridge: 'br-c', subnets4: ['172.18.0.0/16'], gateways4: ['172.18.0.1'] })], ports: [], links: [] });
    assert.match(text, /chain input \{\n\t\ttype filter hook input priority filter; policy accept;\n(\t\tip daddr .*\n){2}\t\}/);
    assert.match(text, /ip daddr 172\.17\.0\.1 iifname @bridges iifname != "docker0" drop/);
    assert.match(text, /ip daddr 172\.18\.0\.1 iifname @bridges iifname != "br-c" drop/);
    assert.throws(() => renderRuleset({ networks: [network({ gateways4: ['172.17.0.1; accept'] })], ports: [], links: [] }), /invalid IPv4 address/);
  });

  test('internal networks get no masquerade and no hairpin, and are sealed in the forward chain', () => {
    const text = renderRuleset({ networks: [network({ internal: true })], ports: [], links: [] });
    assert.doesNotMatch(text, /oifname != "docker0" masquerade/);
    assert.doesNotMatch(text, /hairpin/);
    assert.match(text, /iifname "docker0" oifname != "docker0" drop/);
    assert.match(text, /oifname "docker0" iifname != "docker0" drop/);
  });
});
