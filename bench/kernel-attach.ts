// Container attach/detach cost at the kernel layer, the way the bridge driver does it:
//   attach = createNetns + createVeth (peer born in the container namespace, host end on the bridge, up)
//            + configureInterface (lo up, eth0 up, address, default route)
//   detach = deleteLink (host end; the peer goes with it) + deleteNetns
// Usage: node bench/kernel-attach.ts [N=1000] [--reap]   (root)
//   --reap: detach = deleteNetns only; the kernel destroys the veth pair with the namespace, in the
//           background (the time until every host end is gone is printed too). deleteLink pays an RCU
//           wait inside the kernel per link (~15-30 ms here) that namespace teardown pays once per batch.
// Everything happens inside namespaces this run creates under /run/loomt-kb-<pid>/ and removes again,
// also on failure or Ctrl-C.
import fs from 'node:fs';
import { createNetns, deleteNetns, removeNetnsDir } from '../src/kernel/netns.ts';
import { Rtnl, configureInterface } from '../src/kernel/rtnl.ts';

const args = process.argv.slice(2);
const reap = args.includes('--reap');
const N = Number(args.find((a) => !a.startsWith('--')) ?? 1000);
// A Linux bridge takes at most 1023 ports (EXFULL after that), Docker's networks alike.
if (!Number.isInteger(N) || N < 1 || N > 1023) {
  console.error('usage: node bench/kernel-attach.ts [N (1..1023: ports one bridge takes)] [--reap]');
  process.exit(2);
}
if (process.getuid?.() !== 0) {
  console.error('kernel-attach: needs root (creates network namespaces)');
  process.exit(2);
}

const dir = `/run/loomt-kb-${process.pid}`;
const hostNs = `${dir}/host`;
const ctr = (i: number) => `${dir}/c${i}`;
const hex = (i: number, n: number) => i.toString(16).padStart(n, '0');

// Synchronous, so it can also run from a signal handler: deleting the host namespace takes the bridge and
// every host-side veth with it (and so their peers); then the containers' namespaces and the directory.
function cleanup(): void {
  for (let i = 0; i < N; i++) deleteNetns(ctr(i));
  deleteNetns(hostNs);
  removeNetnsDir(dir);
}
process.on('SIGINT', () => { cleanup(); process.exit(130); });
process.on('SIGTERM', () => { cleanup(); process.exit(143); });

function stats(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (f: number) => s[Math.min(s.length - 1, Math.floor(f * s.length))];
  const avg = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  const k = Math.min(10, xs.length);
  return { median: q(0.5), p95: q(0.95), ratio: avg(xs.slice(-k)) / avg(xs.slice(0, k)) };
}
const ms = (x: number) => `${x.toFixed(3)} ms`;

try {
  createNetns(hostNs);
  const rt = Rtnl.open(hostNs);
  try {
    const br = await rt.createBridge('loomkb0', { up: true });
    await rt.addAddress(br, '10.88.0.1/16', { nodad: true });
    const attach: number[] = [];
    for (let i = 0; i < N; i++) {
      const ns = ctr(i);
      const host = i + 2; // 10.88.0.2 ...
      const t0 = performance.now();
      createNetns(ns);
      await rt.createVeth({ name: `veth${hex(i, 7)}`, peerName: 'eth0', peerNetnsPath: ns, peerMac: `02:42:0a:58:${hex(host >> 8, 2)}:${hex(host & 255, 2)}`, master: br, up: true });
      await configureInterface(ns, { ifname: 'eth0', addresses: [`10.88.${host >> 8}.${host & 255}/16`], gateway4: '10.88.0.1', loUp: true });
      attach.push(performance.now() - t0);
    }
    const links = (await rt.listLinks()).length;
    const detach: number[] = [];
    for (let i = 0; i < N; i++) {
      const t0 = performance.now();
      if (!reap) await rt.deleteLink(`veth${hex(i, 7)}`);
      deleteNetns(ctr(i));
      detach.push(performance.now() - t0);
    }
    let reaped = '';
    if (reap) {
      const t0 = performance.now();
      while ((await rt.listLinks()).length > 2) await new Promise((r) => setTimeout(r, 5));
      reaped = `  (kernel gone through all ${N} pairs ${((performance.now() - t0) / 1000).toFixed(2)} s after the last)`;
    }
    const a = stats(attach), d = stats(detach);
    console.log(`kernel attach/detach, N=${N} containers on one bridge (${links} links in the host namespace at the peak)`);
    console.log(`attach  median ${ms(a.median)}  p95 ${ms(a.p95)}  last10/first10 ${a.ratio.toFixed(2)}`);
    console.log(`detach${reap ? ' (netns only)' : ''}  median ${ms(d.median)}  p95 ${ms(d.p95)}  last10/first10 ${d.ratio.toFixed(2)}${reaped}`);
  } finally {
    rt.close();
  }
} finally {
  cleanup();
  if (fs.existsSync(dir)) console.error(`kernel-attach: ${dir} still exists`);
}
