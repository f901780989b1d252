// The OVSDB client's framing and protocol against a scripted server on a unix socket: JSON texts back to
// back and split anywhere (strings holding braces included), the server's echo answered, a monitor's
// update notifications delivered, an operation's error failing the transaction.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Ovsdb } from '../../src/kernel/ovsdb.ts';

async function withServer(handle: (msg: any, send: (o: unknown) => void, sock: net.Socket) => void, body: (db: Ovsdb, sock: () => net.Socket) => Promise<void>): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ovsdb-unit-'));
  const file = path.join(dir, 'db.sock');
  let client: net.Socket | null = null;
  const srv = net.createServer((s) => {
    client = s;
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      buf += d;
      // the client writes one JSON text per write; tests keep requests whole
      for (;;) {
        let depth = 0, end = -1, inStr = false, esc = false;
        for (let i = 0; i < buf.length && end < 0; i++) {
          const c = buf[i];
          if (inStr) { if (esc) esc = false; else if (c === '\\') esc = true; else if (c === '"') inStr = false; } else if (c === '"') inStr = true;
          else if (c === '{') depth++;
          else if (c === '}' && --depth === 0) end = i;
        }
        if (end < 0) break;
        const m = JSON.parse(buf.slice(0, end + 1));
        buf = buf.slice(end + 1);
        handle(m, (o) => s.write(JSON.stringify(o)), s);
      }
    });
  });
  await new Promise<void>((r) => srv.listen(file, r));
  const db = await Ovsdb.connect(file);
  try {
    await body(db, () => client!);
  } finally {
    db.close();
    srv.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('replies split into pieces and sent back to back are matched to their requests', async () => {
  let echoed: unknown = null;
  await withServer((m, _send, s) => {
    if (m.method !== 'transact') {
      echoed = m;
      return;
    }
    // two replies in one write, then split mid-string (a string with braces and an escaped quote)
    const r1 = JSON.stringify({ id: m.id, result: [{ rows: [{ name: 'br-{x}"' }] }], error: null });
    const r2 = JSON.stringify({ id: null, method: 'echo', params: ['ping'] });
    const all = r2 + r1;
    s.write(all.slice(0, 7));
    setTimeout(() => s.write(all.slice(7, all.length - 5)), 5);
    setTimeout(() => s.write(all.slice(all.length - 5)), 10);
  }, async (db) => {
    const [res] = await db.transact([{ op: 'select', table: 'Bridge', where: [] }]);
    assert.deepEqual(res.rows, [{ name: 'br-{x}"' }]);
    for (let i = 0; i < 50 && !echoed; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(echoed, { id: null, result: ['ping'], error: null });
  });
});

test('the server\'s echo is answered; a monitor returns the rows and delivers updates', async () => {
  let echoed: unknown = null;
  await withServer((m, send) => {
    if (m.method === 'monitor') {
      send({ id: m.id, result: { Open_vSwitch: { u1: { new: { cur_cfg: 3 } } } }, error: null });
      send({ id: 'e1', method: 'echo', params: [] });
      send({ id: null, method: 'update', params: [null, { Open_vSwitch: { u1: { new: { cur_cfg: 4 } } } }] });
    } else if (m.id === 'e1') echoed = m;
  }, async (db) => {
    const seen: number[] = [];
    db.onUpdate = (u) => seen.push(u.Open_vSwitch!.u1!.new!.cur_cfg as number);
    const first = await db.monitor({ Open_vSwitch: ['cur_cfg'] });
    assert.equal(first.Open_vSwitch!.u1!.new!.cur_cfg, 3);
    for (let i = 0; i < 50 && (!seen.length || !echoed); i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(seen, [4]);
    assert.deepEqual(echoed, { id: 'e1', result: [], error: null });
  });
});

test('an operation\'s error fails the transaction naming it; a closed connection fails what waits', async () => {
  await withServer((m, send, s) => {
    if (m.params[1].op === 'insert') send({ id: m.id, result: [{ error: 'constraint violation', details: 'duplicate name' }], error: null });
    else s.destroy();
  }, async (db) => {
    await assert.rejects(db.transact([{ op: 'insert', table: 'Bridge', row: {} }]), /ovsdb transaction failed: constraint violation \(duplicate name\)/);
    await assert.rejects(db.transact([{ op: 'select', table: 'Bridge', where: [] }]), /ovsdb-server: connection closed/);
    assert.equal(db.isClosed, true);
  });
});
