// Issue 12, crash safety proven at every step: for each failpoint (src/util/failpoint.ts) the daemon is
// started with LOOM_FAILPOINTS=<it>, an operation that passes that step is run (the daemon SIGKILLs itself
// there), the daemon is started again, and then:
//   - every container is either running with complete networking (its namespace, an address on each of
//     its networks, its gateway reachable) or stopped with none (no namespace, no address);
//   - the operation can be repeated, and no address is handed out twice;
//   - once the step's containers and networks are gone, the kernel is as before the step: links,
//     namespaces, loom's nftables lines, IPAM reservations, runc containers, mounts below the data root.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createSandbox, type Sandbox } from '../helpers/sandbox.ts';
import { ok } from '../helpers/assert.ts';
import { assertConsistent, kernelCounts, settlesTo } from '../helpers/invariants.ts';
import { FAILPOINTS, type Failpoint } from '../../src/util/failpoint.ts';

const skip = process.getuid?.() !== 0 ? 'needs root (network namespaces, nftables, runc)' : false;
let sb: Sandbox;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits for the killed daemon's exit to be seen, then starts it again without failpoints. */
async function restart(): Promise<void> {
  for (let i = 0; i < 100 && sb.daemon; i++) await sleep(100);
  if (sb.daemon) await sb.stopDaemon('SIGKILL');
  delete process.env.LOOM_FAILPOINTS;
  await sb.startDaemon();
}

const RUN = ['run', '-d', '--name', 'victim', '--network', 'walk', '-p', '8085:80', 'box', 'sleep', '1d'];

/** The operation that passes each failpoint, what makes it possible, and how to repeat it afterwards. */
const plan: Record<Failpoint, { setup?: string[][]; op: string[]; repeat: string[][] }> = {
  'start.netns': { op: RUN, repeat: [['rm', '-f', 'victim'], RUN] },
  'endpoint.allocated': { op: RUN, repeat: [['rm', '-f', 'victim'], RUN] },
  'endpoint.joined': { op: RUN, repeat: [['rm', '-f', 'victim'], RUN] },
  'start.published': { op: RUN, repeat: [['rm', '-f', 'victim'], RUN] },
  'start.dns': { op: RUN, repeat: [['rm', '-f', 'victim'], RUN] },
  'start.runc': { op: RUN, repeat: [['rm', '-f', 'victim'], RUN] },
  'exit.released': { setup: [RUN], op: ['stop', '-t', '0', 'victim'], repeat: [['start', 'victim'], ['stop', '-t', '0', 'victim']] },
  'remove.released': { setup: [RUN], op: ['rm', '-f', 'victim'], repeat: [['rm', '-f', 'victim'], RUN] },
  'remove.runtime': { setup: [RUN], op: ['rm', '-f', 'victim'], repeat: [['rm', '-f', 'victim'], RUN] },
  'disconnect.left': { setup: [RUN, ['network', 'connect', 'bridge', 'victim']], op: ['network', 'disconnect', 'bridge', 'victim'], repeat: [['network', 'connect', 'bridge', 'victim'], ['network', 'disconnect', 'bridge', 'victim']] },
  'network.create.kernel': { op: ['network', 'create', '--subnet', '10.77.0.0/24', 'walk2'], repeat: [['network', 'create', '--subnet', '10.77.0.0/24', 'walk2']] },
  // killed before the record went: the network is still there (the request was never answered), whole
  'network.rm.kernel': { setup: [['network', 'create', '--subnet', '10.77.0.0/24', 'walk2']], op: ['network', 'rm', 'walk2'], repeat: [['network', 'rm', 'walk2'], ['network', 'create', '--subnet', '10.77.0.0/24', 'walk2']] },
};

before(async () => {
  if (skip) return;
  sb = await createSandbox({ tag: 'crash' });
  await sb.startDaemon();
  await sb.image('box');
  await ok(sb.loom('network', 'create', '--subnet', '10.66.0.0/24', 'walk'));
  // a bystander on the same network: it must come through every crash untouched
  await ok(sb.loom('run', '-d', '--name', 'bystander', '--network', 'walk', 'box', 'sleep', '1d'));
}, { timeout: 120_000 });

after(async () => {
  delete process.env.LOOM_FAILPOINTS;
  await sb?.cleanup();
});

describe('crash at every step', { skip }, () => {
  for (const fp of FAILPOINTS.filter((f) => !process.env.CRASH_ONLY || process.env.CRASH_ONLY.split(',').includes(f))) {
    test(`killed at ${fp}: consistent after restart, repeatable, nothing leaked`, { timeout: 120_000 }, async () => {
      const p = plan[fp];
      // whatever an earlier failed step left: this step starts from the same state as every other
      await sb.loom('rm', '-f', 'victim');
      await sb.loom('network', 'rm', 'walk2');
      const base = await kernelCounts(sb);
      for (const s of p.setup ?? []) await ok(sb.loom(...s), s.join(' '));
      // the daemon comes up with the failpoint armed, then the operation kills it
      await sb.stopDaemon('SIGTERM');
      process.env.LOOM_FAILPOINTS = fp;
      await sb.startDaemon();
      delete process.env.LOOM_FAILPOINTS;
      const r = await sb.loom(...p.op);
      assert.notEqual(r.code, 0, `${p.op.join(' ')} should have met the failpoint`);
      for (let i = 0; i < 50 && sb.daemon; i++) await sleep(100);
      assert.equal(sb.daemon, null, 'the daemon died at the failpoint');
      assert.match(sb.daemonLog, new RegExp(`failpoint ${fp.replace('.', '\\.')}`));
      await restart();
      await assertConsistent(sb);
      for (const s of p.repeat) await ok(sb.loom(...s), `repeat: ${s.join(' ')}`);
      await assertConsistent(sb);
      // back to the step's start: its containers and networks gone, the kernel as it was
      await sb.loom('rm', '-f', 'victim');
      await sb.loom('network', 'rm', 'walk2');
      assert.deepEqual(await settlesTo(sb, base), base, 'leaked after the crash and its repair');
      assert.equal(await ok(sb.loom('inspect', '-f', '{{.State.Running}}', 'bystander')), 'true');
    });
  }
});
