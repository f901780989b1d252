// What must hold of a daemon's state after any crash and restart (issue 12), shared by the failpoint walk
// (test/e2e/crash.test.ts) and the stress script (scripts/stress):
//   - every container either runs with complete networking (its namespace, an address on each of its
//     networks, its gateway reachable) or is stopped with none (no namespace, no address);
//   - no address is used twice;
//   - kernelCounts() gives what a leak would grow, to compare with an earlier reading.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type { Sandbox } from './sandbox.ts';
import { ok } from './assert.ts';

const RETIRED = /^lmdel[0-9a-f]{10}$/;

async function hostLinkNames(sb: Sandbox): Promise<string[]> {
  return (await ok(sb.hostExec(['ip', '-o', 'link', 'show']))).split('\n').filter(Boolean).map((l) => l.split(': ')[1]!.split('@')[0]!);
}

export async function kernelCounts(sb: Sandbox): Promise<Record<string, number>> {
  // links that network rm / disconnect took out of use (renamed lmdel…) are deleted in the background: not counted
  // here; settlesTo waits for them to be gone
  const links = (await hostLinkNames(sb)).filter((l) => !RETIRED.test(l)).length;
  const netns = (await sb.hostExec(['ip', 'netns', 'list'])).stdout.split('\n').filter((l) => l.startsWith(sb.netnsPrefix)).length;
  const nft = (await ok(sb.hostExec(['nft', 'list', 'table', 'ip', 'loom']))).split('\n').length;
  const mounts = fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').filter((l) => l.includes(sb.dir)).length;
  const runc = (await sb.hostExec(['runc', '--root', path.join(sb.dir, 'run', 'runc'), 'list', '-q'])).stdout.split('\n').filter(Boolean).length;
  const db = new DatabaseSync(path.join(sb.dir, 'data', 'loom.db'), { readOnly: true });
  const ipam = (db.prepare('SELECT count(*) AS n FROM ip_allocations').get() as { n: number }).n;
  db.close();
  return { links, netns, nft, mounts, runc, ipam };
}

/** Polls kernelCounts until it equals `base` (endpoint deletion finishes in the background) or gives up. */
export async function settlesTo(sb: Sandbox, base: Record<string, number>, tries = 50): Promise<Record<string, number>> {
  const retired = async () => (await hostLinkNames(sb)).filter((l) => RETIRED.test(l)).length;
  let now = await kernelCounts(sb);
  let left = await retired();
  for (let i = 0; i < tries && (left || JSON.stringify(now) !== JSON.stringify(base)); i++) {
    await new Promise((r) => setTimeout(r, 100));
    now = await kernelCounts(sb);
    left = await retired();
  }
  return left ? { ...now, retired: left } : now; // retired links never deleted show as a difference
}

/** Each container running with complete networking, or stopped with none; no address used twice. */
export async function assertConsistent(sb: Sandbox): Promise<void> {
  const names = (await ok(sb.loom('ps', '-a', '--format', '{{.Names}}'))).split('\n').filter(Boolean);
  const netnsList = (await sb.hostExec(['ip', 'netns', 'list'])).stdout;
  const addrs: string[] = [];
  for (const n of names) {
    const st = JSON.parse(await ok(sb.loom('inspect', '-f', '{{json .State.Running}}', n)));
    const nets = JSON.parse(await ok(sb.loom('inspect', '-f', '{{json .NetworkSettings.Networks}}', n))) as Record<string, { IPAddress: string; Gateway: string }>;
    if (st) {
      assert.match(netnsList, new RegExp(`${sb.netnsPrefix}${n}\\b`), `${n} runs: its namespace is there`);
      for (const [net, e] of Object.entries(nets)) {
        assert.match(e.IPAddress, /^\d+\.\d+\.\d+\.\d+$/, `${n} runs: an address on ${net}`);
        addrs.push(e.IPAddress);
        const ping = await sb.loom('exec', n, 'ping', '-c1', '-W2', e.Gateway);
        if (ping.code !== 0) {
          const diag = await Promise.all([
            sb.hostExec(['ip', 'netns', 'exec', `${sb.netnsPrefix}${n}`, 'ip', 'addr']), sb.hostExec(['ip', 'link']), sb.hostExec(['bridge', 'link']),
          ]);
          assert.fail(`${n} does not reach the gateway ${e.Gateway} of ${net}:\n${diag.map((d) => d.stdout + d.stderr).join('\n')}`);
        }
      }
    } else {
      assert.doesNotMatch(netnsList, new RegExp(`${sb.netnsPrefix}${n}\\b`), `${n} is stopped: no namespace`);
      for (const [net, e] of Object.entries(nets)) assert.equal(e.IPAddress, '', `${n} is stopped: no address on ${net}`);
    }
  }
  assert.equal(new Set(addrs).size, addrs.length, `an address is used twice: ${addrs}`);
}
