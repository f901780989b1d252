// iperf3 (Debian's) between namespaces: the server runs in a container's namespace (nsenter --net: the
// data path is the network's, whichever filesystem the binary comes from), the client where the path
// starts. Throughput is the receiver's figure of a TCP run.
import type { ChildProcess } from 'node:child_process';
import { run, sleep } from './proc.ts';
import type { World } from './world.ts';

export function iperfServer(w: World, nsPath: string, port: number, log = 'iperf3-server.log'): ChildProcess {
  return w.spawnBg(w.inNs(nsPath, ['iperf3', '-s', '-p', String(port)]), log);
}

/** One TCP run of `secs` seconds from the namespace `fromNs` to host:port; Gbit/s received. */
export async function iperfRun(w: World, fromNs: string, host: string, port: number, secs: number): Promise<number> {
  let last = '';
  for (let attempt = 0; attempt < 20; attempt++) {
    const r = await run(w.inNs(fromNs, ['iperf3', '-c', host, '-p', String(port), '-t', String(secs), '-J']), { timeoutMs: (secs + 20) * 1000 });
    try {
      const j = JSON.parse(r.stdout) as { error?: string; end?: { sum_received?: { bits_per_second: number } } };
      const bps = j.end?.sum_received?.bits_per_second;
      if (r.code === 0 && bps) return bps / 1e9;
      last = j.error ?? r.stderr;
    } catch {
      last = r.stderr || r.stdout;
    }
    // the server may not listen yet, or is still busy with the previous test
    await sleep(200);
  }
  throw new Error(`iperf3 ${host}:${port} from ${fromNs}: ${last.trim().slice(0, 300)}`);
}
