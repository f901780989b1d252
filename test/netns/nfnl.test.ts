// The nf_tables netlink batches of src/firewall/nfnl.ts against what nft itself does, on the real kernel,
// inside a namespace this test creates (named with its PID): the same element changes are applied once
// through libnftables' text (Firewall without an element writer) and once as loom's own batch, and both
// tables are compared as `nft -j list table` shows them. Also: a refused batch applies nothing and names
// the element, and the transaction's NEWGEN notification carries the daemon's pid (watch.ts's test for
// "loom's own change").
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import type { FwChange, FwLink, FwNetwork, FwPort, FwState } from '../../src/firewall/model.ts';

const SELF = import.meta.filename;

const nets: FwNetwork[] = [
  { id: 'n0'.padEnd(64, '0'), bridge: 'br0', subnets4: ['172.17.0.0/16'], subnets6: ['fd00:17::/64'], masquerade: true, icc: true, internal: false },
  { id: 'n2'.padEnd(64, '2'), bridge: 'br2', subnets4: ['172.19.0.0/16'], subnets6: [], masquerade: true, icc: false, internal: false },
];
const p = (o: Partial<FwPort>): FwPort => ({ proto: 'tcp', hostIp: '', hostPort: 8080, hostPortEnd: 8080, containerIp: '172.17.0.2', containerPort: 80, containerPortEnd: 80, bridge: 'br0', family: 4, ...o });
const ports: FwPort[] = [
  p({}),
  p({ proto: 'udp', hostPort: 5353, hostPortEnd: 5353, containerPort: 53, containerPortEnd: 53 }),
  p({ proto: 'sctp', hostPort: 3868, hostPortEnd: 3868, containerPort: 3868, containerPortEnd: 3868 }),
  p({ hostIp: '127.0.0.1', hostPort: 7070, hostPortEnd: 7070 }),
  p({ hostPort: 8000, hostPortEnd: 8002, containerPort: 8000, containerPortEnd: 8002 }), // same numbers: interval map
  p({ hostPort: 9000, hostPortEnd: 9009 }), // N:1 range
  p({ hostIp: '198.51.100.1', hostPort: 20000, hostPortEnd: 29999, containerPort: 20000, containerPortEnd: 29999 }),
  p({ family: 6, containerIp: 'fd00:17::2', hostPort: 8080, hostPortEnd: 8080 }),
  p({ family: 6, hostIp: 'fd00:198::1', containerIp: 'fd00:17::2', hostPort: 8081, hostPortEnd: 8081 }),
  p({ family: 6, containerIp: 'fd00:17::2', hostPort: 6000, hostPortEnd: 6005 }),
  p({ family: 6, containerIp: 'fd00:17::2', hostPort: 6100, hostPortEnd: 6105, containerPort: 6100, containerPortEnd: 6105 }),
];
const links: FwLink[] = [
  { bridge: 'br2', fromIp: '172.19.0.2', toIp: '172.19.0.3', proto: 'tcp', port: 80 },
  { bridge: 'br2', fromIp: '172.19.0.3', toIp: '172.19.0.2', proto: 'udp', port: 53 },
  { bridge: 'br0', fromIp: 'fd00:17::2', toIp: 'fd00:17::3', proto: 'tcp', port: 443 },
];
/** steps applied in order; each one's tables are compared */
const steps: FwChange[] = [
  { addPorts: ports, addLinks: links },
  { removePorts: [ports[0]!, ports[4]!, ports[7]!, ports[9]!], removeLinks: [links[0]!] },
  { removePorts: ports.slice(1), removeLinks: links.slice(1), addPorts: [ports[0]!] },
];

if (process.env.LOOM_NFNL_CHILD === '1') await child();
else tests();

/** Child mode (inside the test's namespace): prints one JSON line of results. */
async function child(): Promise<void> {
  const { Nft } = await import('../../src/firewall/nft.ts');
  const { Firewall } = await import('../../src/firewall/firewall.ts');
  const { NfnlSocket, portOp } = await import('../../src/firewall/nfnl.ts');
  const { parseNotices } = await import('../../src/firewall/watch.ts');
  const { RawNetlinkSocket } = await import('netlink');
  const nft = new Nft();
  const listing = () => {
    const r = spawnSync('nft', ['-j', 'list', 'ruleset'], { encoding: 'utf8' });
    // handles differ between two loads of the same ruleset: compare without them
    return JSON.stringify(JSON.parse(r.stdout), (k, v) => (k === 'handle' ? undefined : v));
  };
  const base: FwState = { networks: nets, ports: [], links: [] };
  const run = (writer: boolean): string[] => {
    const fw = new Firewall(nft, writer ? new NfnlSocket() : undefined);
    fw.reconcile(base);
    const out: string[] = [];
    for (const s of steps) {
      fw.apply(s);
      out.push(listing());
    }
    return out;
  };
  const text = run(false);
  const batch = run(true);

  // a refused batch: a good element, then the deletion of one that is not there; nothing is applied
  const fw = new Firewall(nft);
  fw.reconcile(base);
  const sock = new NfnlSocket();
  let refused = '';
  try {
    sock.apply([portOp('add', ports[0]!, 'good'), portOp('delete', ports[1]!, 'tcp . 5353 (missing)')]);
  } catch (e) {
    refused = (e as Error).message;
  }
  const afterRefused = listing();

  // the NEWGEN of loom's batch names this process
  const watch = new RawNetlinkSocket(12, {} as never);
  watch.addMembership(7);
  const pids: number[] = [];
  watch.on('message', (m: Buffer) => {
    for (const n of parseNotices(m)) if (n.msg === 15 && n.pid !== undefined) pids.push(n.pid);
  });
  await new Promise((r) => setTimeout(r, 50));
  sock.apply([portOp('add', ports[0]!, 'x')]);
  await new Promise((r) => setTimeout(r, 200));
  watch.close();
  sock.close();
  process.stdout.write(JSON.stringify({ text, batch, refused, afterRefused, empty: listing() === afterRefused, baseListing: (fw.reconcile(base), listing()), pids, pid: process.pid }) + '\n');
  nft.close();
}

function tests(): void {
  const ns = `loomt-nfnl-${process.pid}`;
  const skip = process.getuid?.() !== 0 ? 'needs root' : false;
  let out: { text: string[]; batch: string[]; refused: string; afterRefused: string; baseListing: string; pids: number[]; pid: number } | null = null;

  before(() => {
    if (skip) return;
    spawnSync('ip', ['netns', 'add', ns]);
    const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '--disable-warning=ExperimentalWarning', SELF], {
      encoding: 'utf8', env: { ...process.env, LOOM_NFNL_CHILD: '1' }, timeout: 60_000,
    });
    if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`);
    out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  });
  after(() => {
    if (!skip) spawnSync('ip', ['netns', 'del', ns]);
  });

  test('loom\'s netlink batch leaves the tables as nft\'s own `add/delete element` does', { skip }, () => {
    assert.equal(out!.batch.length, steps.length);
    for (let i = 0; i < steps.length; i++) assert.equal(out!.batch[i], out!.text[i], `step ${i}`);
    // not vacuous: the elements are there
    assert.match(out!.text[0]!, /"elem"/);
    assert.match(out!.text[0]!, /20000/);
  });

  test('a refused batch applies nothing and names the element', { skip }, () => {
    assert.match(out!.refused, /delete element ip loom ports \{ tcp \. 5353 \(missing\) \}: No such file or directory/);
    assert.equal(out!.afterRefused, out!.baseListing);
  });

  test('the transaction\'s NEWGEN names the daemon\'s pid (watch.ts treats it as loom\'s own)', { skip }, () => {
    assert.ok(out!.pids.includes(out!.pid), `NEWGEN pids ${out!.pids} should include ${out!.pid}`);
  });
}
