// iperf3 (Debian's) between namespaces: the server runs in a container's namespace (nsenter --net: the
// data path is the network's, whichever filesystem the binary comes from), the client where the path
// starts. Throughput is the receiver's figure of a TCP run.
import type { ChildProcess } from 'node:child_process';
import { run, sleep } from './proc.ts';
import type { World } from './world.ts';

export function iperfServer(w: World, nsPath: string, port: number, log = 'iperf3-server.log'): ChildProcess {
  return w.spawnBg(w.inNs(nsPath, ['iperf3', '-s', '-p', String(port)]), log);
}

/** One TCP run: Gbit/s received, and CPU seconds per GB moved (client + server, iperf3's own accounting). */
export interface IperfResult { gbps: number; cpuPerGB: number }

/** One TCP run of `secs` seconds from the namespace `fromNs` to host:port; Gbit/s received. */
export async function iperfRun(w: World, fromNs: string, host: string, port: number, secs: number): Promise<number> {
  return (await iperfRunDetail(w, fromNs, host, port, secs)).gbps;
}

/**
 * As iperfRun, with the CPU each byte cost. On a shared, loaded machine the rate moves with whatever else
 * runs; the CPU time per byte (user + system of both ends, which includes the softirq work done in their
 * context: the veth and bridge path runs there) moves much less, so it resolves differences of a few %.
 */
export async function iperfRunDetail(w: World, fromNs: string, host: string, port: number, secs: number): Promise<IperfResult> {
  let last = '';
  for (let attempt = 0; attempt < 20; attempt++) {
    const r = await run(w.inNs(fromNs, ['iperf3', '-c', host, '-p', String(port), '-t', String(secs), '-J']), { timeoutMs: (secs + 20) * 1000 });
    try {
      const j = JSON.parse(r.stdout) as {
        error?: string;
        end?: { sum_received?: { bits_per_second: number; bytes: number; seconds: number }; cpu_utilization_percent?: { host_total: number; remote_total: number } };
      };
      const recv = j.end?.sum_received, cpu = j.end?.cpu_utilization_percent;
      if (r.code === 0 && recv?.bits_per_second) {
        const cpuPerGB = cpu && recv.bytes ? ((cpu.host_total + cpu.remote_total) / 100) * recv.seconds / (recv.bytes / 1e9) : NaN;
        return { gbps: recv.bits_per_second / 1e9, cpuPerGB };
      }
      last = j.error ?? r.stderr;
    } catch {
      last = r.stderr || r.stdout;
    }
    // the server may not listen yet, or is still busy with the previous test
    await sleep(200);
  }
  throw new Error(`iperf3 ${host}:${port} from ${fromNs}: ${last.trim().slice(0, 300)}`);
}
