// Removing everything a benchmark run made, by what it owns rather than by what it remembers: namespaces
// named with the run's prefix, every process living in one of those namespaces (or in a namespace
// bind-mounted below the run's directory, as dockerd does) or naming that directory on its command
// line, processes in the run's cgroups, mounts below the directory, the directory itself.
// Synchronous, so that it also works from a signal handler and after a crash.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface Owned {
  /** network namespaces /run/netns/<nsPrefix>* */
  nsPrefix: string;
  /** working directory (mounts below it, processes naming it) */
  dir: string;
  /** top-level cgroup directories named <cgroupPrefix>* in each hierarchy */
  cgroupPrefix: string;
}

const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

function mounts(): { fstype: string; mp: string }[] {
  return fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').filter(Boolean).map((l) => {
    const f = l.split(' ');
    return { fstype: f[2] ?? '', mp: (f[1] ?? '').replace(/\\040/g, ' ') };
  });
}

function ownedNetnsInodes(o: Owned): Set<number> {
  const inodes = new Set<number>();
  const mine = (mp: string) => mp.startsWith(`/run/netns/${o.nsPrefix}`) || mp.startsWith(o.dir + '/');
  for (const m of mounts()) {
    if (m.fstype !== 'nsfs' || !mine(m.mp)) continue;
    try { inodes.add(fs.statSync(m.mp).ino); } catch { /* gone */ }
  }
  return inodes;
}

function cgroupDirs(o: Owned): string[] {
  const out: string[] = [];
  const base = '/sys/fs/cgroup';
  const walk = (d: string) => {
    out.push(d);
    try {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(path.join(d, e.name));
    } catch { /* gone */ }
  };
  let tops: string[] = [];
  try { tops = [base, ...fs.readdirSync(base).map((c) => path.join(base, c))]; } catch { return out; }
  for (const top of tops) {
    let entries: string[] = [];
    try { entries = fs.readdirSync(top); } catch { continue; }
    for (const e of entries) if (e.startsWith(o.cgroupPrefix)) walk(path.join(top, e));
  }
  return out;
}

/** Pids to spare: this process and its ancestors (the orchestrator runs in the machine's namespace anyway). */
function spared(): Set<number> {
  const s = new Set<number>();
  let pid = process.pid;
  for (let i = 0; i < 64 && pid > 1; i++) {
    s.add(pid);
    try {
      pid = Number(/PPid:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
    } catch { break; }
  }
  return s;
}

/** Processes that belong to the run. */
export function ownedPids(o: Owned): number[] {
  const inodes = ownedNetnsInodes(o);
  const skip = spared();
  const pids = new Set<number>();
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (skip.has(pid)) continue;
    try {
      const link = fs.readlinkSync(`/proc/${pid}/ns/net`);
      const ino = Number(/\[(\d+)\]/.exec(link)?.[1] ?? 0);
      if (inodes.has(ino)) { pids.add(pid); continue; }
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes(o.dir + '/') || cmd.includes(`/run/netns/${o.nsPrefix}`)) pids.add(pid);
    } catch { /* gone, or a kernel thread */ }
  }
  for (const d of cgroupDirs(o)) {
    try {
      for (const p of fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n')) if (p && !skip.has(Number(p))) pids.add(Number(p));
    } catch { /* none */ }
  }
  return [...pids];
}

/** Tears down everything the run owns; returns a description of what it had to remove (empty: nothing). */
export function sweep(o: Owned): string[] {
  const did: string[] = [];
  for (let round = 0; round < 5; round++) {
    const pids = ownedPids(o);
    if (!pids.length) break;
    for (const p of pids) try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
    if (round === 0) did.push(`killed ${pids.length} process(es)`);
    sleepSync(100);
  }
  const under = mounts().map((m) => m.mp).filter((mp) => mp.startsWith(o.dir + '/')).sort((a, b) => b.length - a.length);
  for (const mp of under) spawnSync('umount', ['-l', mp], { stdio: 'ignore' });
  if (under.length) did.push(`unmounted ${under.length} mount(s)`);
  let ns: string[] = [];
  try { ns = fs.readdirSync('/run/netns').filter((n) => n.startsWith(o.nsPrefix)); } catch { /* none */ }
  for (const n of ns) spawnSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
  if (ns.length) did.push(`deleted ${ns.length} namespace(s)`);
  for (const d of cgroupDirs(o).sort((a, b) => b.length - a.length)) try { fs.rmdirSync(d); } catch { /* busy or gone */ }
  fs.rmSync(o.dir, { recursive: true, force: true });
  return did;
}

/** Leftovers of earlier runs that died (their pid is gone): swept before a new run starts. */
export function staleRuns(base = '/tmp', nsRoot = 'loomb5-'): Owned[] {
  const pids = new Set<number>();
  try { for (const n of fs.readdirSync('/run/netns')) { const m = new RegExp(`^${nsRoot}(\\d+)-`).exec(n); if (m) pids.add(Number(m[1])); } } catch { /* none */ }
  try { for (const n of fs.readdirSync(base)) { const m = new RegExp(`^${nsRoot}(\\d+)$`).exec(n); if (m) pids.add(Number(m[1])); } } catch { /* none */ }
  const out: Owned[] = [];
  for (const pid of pids) {
    let alive = true;
    try { process.kill(pid, 0); } catch { alive = false; }
    if (!alive) out.push({ nsPrefix: `${nsRoot}${pid}-`, dir: path.join(base, `${nsRoot}${pid}`), cgroupPrefix: `${nsRoot}${pid}-` });
  }
  return out;
}
