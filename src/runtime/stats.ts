// `docker stats`: one sample of a container's resource use, in the Engine API's shape (the subset the
// docker CLI reads: CPU, memory, PIDs, network per interface, block I/O). Read from the container's
// cgroup (v1 controllers, or the unified v2 tree) and from the network namespace of its init (/proc/PID/net/dev).
import fs from 'node:fs';
import os from 'node:os';

const read = (p: string): string | null => {
  try {
    return fs.readFileSync(p, 'utf8');
  } catch {
    return null;
  }
};
const num = (s: string | null): number | undefined => (s === null || !/^\d+/.test(s.trim()) ? undefined : Number(s.trim().split(/\s+/)[0]));

/** Seconds of all CPUs since boot, in nanoseconds, as moby's getSystemCPUUsage (/proc/stat, USER_HZ = 100). */
function systemCpuNs(): number {
  const line = (read('/proc/stat') ?? '').split('\n').find((l) => l.startsWith('cpu '));
  if (!line) return 0;
  const ticks = line.trim().split(/\s+/).slice(1, 8).reduce((t, v) => t + Number(v), 0);
  return ticks * 1e7;
}

/** Bytes and packets per interface of the namespace the process lives in (lo left out, as Docker). */
function networks(pid: number): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const line of (read(`/proc/${pid}/net/dev`) ?? '').split('\n').slice(2)) {
    const m = /^\s*([^:]+):\s*(.*)$/.exec(line);
    if (!m || m[1] === 'lo') continue;
    const v = m[2]!.trim().split(/\s+/).map(Number);
    out[m[1]!] = { rx_bytes: v[0]!, rx_packets: v[1]!, rx_errors: v[2]!, rx_dropped: v[3]!, tx_bytes: v[8]!, tx_packets: v[9]!, tx_errors: v[10]!, tx_dropped: v[11]! };
  }
  return out;
}

function memoryStats(cg: string): { usage?: number; limit?: number; stats: Record<string, number> } {
  const stats: Record<string, number> = {};
  const v1 = read(`/sys/fs/cgroup/memory${cg}/memory.stat`);
  const v2 = v1 === null ? read(`/sys/fs/cgroup/unified${cg}/memory.stat`) ?? read(`/sys/fs/cgroup${cg}/memory.stat`) : null;
  for (const l of (v1 ?? v2 ?? '').split('\n')) {
    const [k, v] = l.split(' ');
    if (k && v !== undefined) stats[k] = Number(v);
  }
  // no limit (v1 reports ~2^63): the machine's memory, as moby reports it
  const cap = (l: number | undefined) => (l === undefined || l > os.totalmem() ? os.totalmem() : l);
  if (v1 !== null) {
    return { usage: num(read(`/sys/fs/cgroup/memory${cg}/memory.usage_in_bytes`)), limit: cap(num(read(`/sys/fs/cgroup/memory${cg}/memory.limit_in_bytes`))), stats };
  }
  const base = fs.existsSync(`/sys/fs/cgroup/unified${cg}`) ? `/sys/fs/cgroup/unified${cg}` : `/sys/fs/cgroup${cg}`;
  const max = read(`${base}/memory.max`)?.trim();
  return { usage: num(read(`${base}/memory.current`)), limit: cap(max && max !== 'max' ? Number(max) : undefined), stats };
}

function cpuUsage(cg: string): { total_usage: number; usage_in_kernelmode: number; usage_in_usermode: number; percpu_usage?: number[] } {
  const total = num(read(`/sys/fs/cgroup/cpuacct${cg}/cpuacct.usage`));
  if (total !== undefined) {
    const st = read(`/sys/fs/cgroup/cpuacct${cg}/cpuacct.stat`) ?? '';
    const tick = (k: string) => Number(new RegExp(`^${k} (\\d+)`, 'm').exec(st)?.[1] ?? 0) * 1e7;
    const percpu = (read(`/sys/fs/cgroup/cpuacct${cg}/cpuacct.usage_percpu`) ?? '').trim().split(/\s+/).filter(Boolean).map(Number);
    return { total_usage: total, usage_in_kernelmode: tick('system'), usage_in_usermode: tick('user'), ...(percpu.length ? { percpu_usage: percpu } : {}) };
  }
  const base = fs.existsSync(`/sys/fs/cgroup/unified${cg}`) ? `/sys/fs/cgroup/unified${cg}` : `/sys/fs/cgroup${cg}`;
  const st = read(`${base}/cpu.stat`) ?? '';
  const usec = (k: string) => Number(new RegExp(`^${k} (\\d+)`, 'm').exec(st)?.[1] ?? 0) * 1000;
  return { total_usage: usec('usage_usec'), usage_in_kernelmode: usec('system_usec'), usage_in_usermode: usec('user_usec') };
}

function blkio(cg: string): { io_service_bytes_recursive: { major: number; minor: number; op: string; value: number }[] | null } {
  const text = read(`/sys/fs/cgroup/blkio${cg}/blkio.throttle.io_service_bytes_recursive`);
  if (text === null) return { io_service_bytes_recursive: null };
  const rows = [];
  for (const l of text.split('\n')) {
    const m = /^(\d+):(\d+) (\w+) (\d+)$/.exec(l.trim());
    if (m) rows.push({ major: Number(m[1]), minor: Number(m[2]), op: m[3]!.toLowerCase(), value: Number(m[4]) });
  }
  return { io_service_bytes_recursive: rows };
}

export interface CpuStats {
  cpu_usage: { total_usage: number; usage_in_kernelmode: number; usage_in_usermode: number; percpu_usage?: number[] };
  system_cpu_usage?: number;
  online_cpus?: number;
  throttling_data: { periods: number; throttled_periods: number; throttled_time: number };
}

const NO_CPU: CpuStats = { cpu_usage: { total_usage: 0, usage_in_kernelmode: 0, usage_in_usermode: 0 }, throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 } };

/** One sample; `pid` 0 (not running) gives Docker's empty sample. `pre` is the previous sample's CPU figures. */
export function sample(id: string, name: string, cgroup: string, pid: number, pre?: { read: string; cpu_stats: CpuStats }) {
  const now = new Date().toISOString();
  const running = pid > 0;
  const cpu: CpuStats = running
    ? { cpu_usage: cpuUsage(cgroup), system_cpu_usage: systemCpuNs(), online_cpus: os.cpus().length, throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 } }
    : NO_CPU;
  const mem = running ? memoryStats(cgroup) : { stats: {} };
  return {
    name: `/${name}`,
    id,
    read: running ? now : '0001-01-01T00:00:00Z',
    preread: pre?.read ?? '0001-01-01T00:00:00Z',
    pids_stats: running ? { current: num(read(`/sys/fs/cgroup/pids${cgroup}/pids.current`)) ?? 0 } : {},
    blkio_stats: running ? blkio(cgroup) : { io_service_bytes_recursive: null },
    num_procs: 0,
    storage_stats: {},
    cpu_stats: cpu,
    precpu_stats: pre?.cpu_stats ?? NO_CPU,
    memory_stats: running ? { ...(mem.usage !== undefined ? { usage: mem.usage } : {}), stats: mem.stats, ...(mem.limit !== undefined ? { limit: mem.limit } : {}) } : {},
    ...(running ? { networks: networks(pid) } : {}),
  };
}
