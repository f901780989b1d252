// The byte layout of loom's nf_tables element batches (src/firewall/nfnl.ts), pure. That the kernel reads
// them as nft's own `add element` is checked on the real kernel by test/netns/nfnl.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeBatch, linkOp, portOp } from '../../src/firewall/nfnl.ts';
import type { FwPort } from '../../src/firewall/model.ts';

const p = (o: Partial<FwPort>): FwPort => ({ proto: 'tcp', hostIp: '', hostPort: 8080, hostPortEnd: 8080, containerIp: '172.17.0.2', containerPort: 80, containerPortEnd: 80, bridge: 'br0', family: 4, ...o });
const hex = (b?: Buffer) => b?.toString('hex');

test('port elements: each field of a concatenation padded to 4 bytes, network byte order', () => {
  let op = portOp('add', p({}), '');
  assert.equal(op.set, 'ports');
  assert.equal(hex(op.key), '06000000' + '1f900000'); // tcp . 8080
  assert.equal(hex(op.data), 'ac110002' + '00500000'); // 172.17.0.2 . 80
  assert.equal(op.keyEnd, undefined);
  op = portOp('add', p({ hostIp: '127.0.0.1', proto: 'udp' }), '');
  assert.equal(op.set, 'ports_on_addr');
  assert.equal(hex(op.key), '7f000001' + '11000000' + '1f900000');
  // a range on every address: the interval map's first and last key
  op = portOp('add', p({ hostPort: 9000, hostPortEnd: 9009 }), '');
  assert.equal(op.set, 'port_ranges');
  assert.equal(hex(op.key), '00000000' + '06000000' + '23280000');
  assert.equal(hex(op.keyEnd), 'ffffffff' + '06000000' + '23310000');
  op = portOp('add', p({ hostPort: 8000, hostPortEnd: 8002, containerPort: 8000, containerPortEnd: 8002 }), '');
  assert.equal(op.set, 'port_ranges_same');
  assert.equal(hex(op.data), 'ac110002', 'the container address alone: DNAT keeps the port');
  // IPv6; a deletion carries no value
  op = portOp('delete', p({ family: 6, hostIp: 'fd00::1', containerIp: 'fd00::2' }), '');
  assert.equal(op.family, 6);
  assert.equal(hex(op.key), 'fd000000000000000000000000000001' + '06000000' + '1f900000');
  assert.equal(op.data, undefined);
});

test('link elements: the bridge name as 16 bytes, then addresses, protocol and port', () => {
  const op = linkOp('add', { bridge: 'br2', fromIp: '172.19.0.2', toIp: '172.19.0.3', proto: 'sctp', port: 80 }, '');
  assert.equal(op.set, 'links');
  assert.equal(hex(op.key), Buffer.from('br2').toString('hex').padEnd(32, '0') + 'ac130002' + 'ac130003' + '84000000' + '00500000');
});

test('the batch: begin, one acknowledged message per element, end', () => {
  const ops = [portOp('delete', p({}), ''), portOp('add', p({ hostPort: 81, hostPortEnd: 81 }), '')];
  const { buf, seqs } = encodeBatch(ops, 100);
  assert.deepEqual(seqs, [101, 102]);
  const msgs: { type: number; flags: number; seq: number; family: number; resId: number; len: number }[] = [];
  for (let at = 0; at < buf.length;) {
    const len = buf.readUInt32LE(at);
    msgs.push({ type: buf.readUInt16LE(at + 4), flags: buf.readUInt16LE(at + 6), seq: buf.readUInt32LE(at + 8), family: buf[at + 16]!, resId: buf.readUInt16BE(at + 18), len });
    assert.equal(len % 4, 0);
    at += len;
  }
  assert.deepEqual(msgs.map((m) => [m.type, m.seq]), [[0x10, 100], [(10 << 8) | 14, 101], [(10 << 8) | 12, 102], [0x11, 103]]);
  assert.equal(msgs[0]!.resId, 10, 'batch begin names the nf_tables subsystem');
  assert.equal(msgs[1]!.flags, 0x1 | 0x4, 'delete: request + ack');
  assert.equal(msgs[2]!.flags, 0x1 | 0x4 | 0x400, 'add: request + ack + create (no EXCL: adding the same element again is fine)');
  assert.equal(msgs[1]!.family, 2);
  // the table and set names are NUL-terminated attributes of the element message
  assert.ok(buf.includes(Buffer.from('loom\0')) && buf.includes(Buffer.from('ports\0')));
});
