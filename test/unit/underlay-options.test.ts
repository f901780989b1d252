// The macvlan and ipvlan drivers' option checks, as Docker's parseNetworkOptions and parseVlan word them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMacvlanOptions } from '../../src/drivers/macvlan.ts';
import { parseIpvlanOptions } from '../../src/drivers/ipvlan.ts';
import { parseVlan, missingKind, KERNEL_SUPPORT } from '../../src/drivers/underlay.ts';
import { macvlanData, ipvlanData, vlanData } from '../../src/kernel/rtnl.ts';

const status = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return { status: (e as { status?: number }).status, message: (e as Error).message };
  }
  return null;
};

test('macvlan options: bridge by default, the four modes, parent lo refused, no parent is internal', () => {
  assert.deepEqual(parseMacvlanOptions({ parent: 'eth0' }, false), { parent: 'eth0', mode: 'bridge', internal: false });
  for (const m of ['bridge', 'private', 'vepa', 'passthru']) assert.equal(parseMacvlanOptions({ parent: 'eth0', macvlan_mode: m }, false).mode, m);
  assert.equal(parseMacvlanOptions({ parent: 'eth0', macvlan_mode: '' }, false).mode, 'bridge');
  assert.deepEqual(status(() => parseMacvlanOptions({ parent: 'eth0', macvlan_mode: 'Bridge' }, false)),
    { status: 400, message: "requested macvlan mode 'Bridge' is not valid, 'bridge' mode is the macvlan driver default" });
  assert.deepEqual(status(() => parseMacvlanOptions({ parent: 'lo' }, false)), { status: 400, message: 'loopback interface is not a valid macvlan parent link' });
  assert.equal(parseMacvlanOptions({}, false).internal, true);
  assert.equal(parseMacvlanOptions({ parent: 'eth0' }, true).internal, true);
  // Docker ignores options it does not know
  assert.equal(parseMacvlanOptions({ parent: 'eth0', 'com.example.x': '1' }, false).mode, 'bridge');
});

test('ipvlan options: l2/bridge by default, modes and flags checked with Docker\'s messages', () => {
  assert.deepEqual(parseIpvlanOptions({ parent: 'eth0' }, false), { parent: 'eth0', mode: 'l2', flag: 'bridge', internal: false });
  for (const m of ['l2', 'l3', 'l3s']) assert.equal(parseIpvlanOptions({ parent: 'eth0', ipvlan_mode: m }, false).mode, m);
  for (const f of ['bridge', 'private', 'vepa']) assert.equal(parseIpvlanOptions({ parent: 'eth0', ipvlan_flag: f }, false).flag, f);
  assert.equal(status(() => parseIpvlanOptions({ ipvlan_mode: 'l4' }, false))!.message, "requested ipvlan mode 'l4' is not valid, 'l2' mode is the ipvlan driver default");
  assert.equal(status(() => parseIpvlanOptions({ ipvlan_flag: 'x' }, false))!.message, "requested ipvlan flag 'x' is not valid, 'bridge' is the ipvlan driver default");
  assert.equal(status(() => parseIpvlanOptions({ parent: 'lo' }, false))!.message, 'loopback interface is not a valid ipvlan parent link');
});

test('parent=name.vid: Docker\'s parseVlan checks, in its order', async () => {
  const exists = async (n: string) => n === 'eth0';
  assert.deepEqual(await parseVlan('eth0.10', exists), { parent: 'eth0', vid: 10 });
  assert.deepEqual(await parseVlan('eth0.4094', exists), { parent: 'eth0', vid: 4094 });
  const err = async (name: string) => (await parseVlan(name, exists).then(() => null, (e: Error) => e.message));
  assert.equal(await err('eth0.1.2'), 'required interface name format is: name.vlan_id, ex. eth0.10 for vlan 10, instead received eth0.1.2');
  assert.equal(await err('eth0.ten'), 'unable to parse a valid vlan id from: ten (ex. eth0.10 for vlan 10)');
  assert.equal(await err('eth1.10'), '-o parent interface was not found on the host: eth1');
  assert.equal(await err('eth0.0'), 'vlan id must be between 1-4094, received: 0');
  assert.equal(await err('eth0.4095'), 'vlan id must be between 1-4094, received: 4095');
});

test('link kind data: macvlan mode u32, ipvlan mode and flags u16, vlan id u16 (linux/if_link.h)', () => {
  assert.deepEqual(macvlanData('bridge'), [{ type: 1, value: Uint8Array.from([4, 0, 0, 0]) }]);
  assert.deepEqual(macvlanData('passthru'), [{ type: 1, value: Uint8Array.from([8, 0, 0, 0]) }]);
  assert.deepEqual(ipvlanData('l3s', 'vepa'), [{ type: 1, value: Uint8Array.from([2, 0]) }, { type: 2, value: Uint8Array.from([2, 0]) }]);
  assert.deepEqual(vlanData(300), [{ type: 1, value: Uint8Array.from([44, 1]) }]);
});

test('a missing kernel kind is EOPNOTSUPP, and each kind names what it needs', () => {
  assert.equal(missingKind({ errno: 95 }), true);
  assert.equal(missingKind({ errno: 17 }), false);
  assert.match(KERNEL_SUPPORT.ipvlan!, /ipvlan/);
  assert.match(KERNEL_SUPPORT.vlan!, /8021q/);
  assert.match(KERNEL_SUPPORT.dummy!, /dummy/);
});
