// The peers come from Debian's packages; bench/run installs the missing ones with apt-get (services are
// not started by the install: dockerd is only ever run by the benchmarks, inside a sandbox namespace).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

export const PACKAGES = ['netavark', 'aardvark-dns', 'containernetworking-plugins', 'docker.io', 'dnsperf', 'iperf3'];
/** packages whose versions go into --json (the peers and what loom and they stand on) */
export const VERSIONED = [...PACKAGES, 'containerd', 'runc', 'iptables', 'nftables', 'iproute2', 'busybox-static'];

export function dpkgVersion(pkg: string): string | null {
  const r = spawnSync('dpkg-query', ['-W', '-f', '${Status}|${Version}', pkg], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  const [status, version] = r.stdout.split('|');
  return status?.includes('installed') && !status.includes('not-installed') ? version ?? null : null;
}

export function available() {
  // LOOM_BENCH_LOOM_ONLY=1: loom and the kernel floors only, for comparing two versions of loom side by side
  if (process.env.LOOM_BENCH_LOOM_ONLY === '1') return { netavark: false, aardvark: false, cni: false, dockerd: false, dnsperf: false, iperf3: false };
  return {
    netavark: fs.existsSync('/usr/lib/podman/netavark'),
    aardvark: fs.existsSync('/usr/lib/podman/aardvark-dns'),
    cni: fs.existsSync('/usr/lib/cni/bridge') && fs.existsSync('/usr/lib/cni/portmap') && fs.existsSync('/usr/lib/cni/host-local'),
    dockerd: spawnSync('sh', ['-c', 'command -v dockerd && command -v docker'], { stdio: 'ignore' }).status === 0,
    dnsperf: spawnSync('sh', ['-c', 'command -v dnsperf'], { stdio: 'ignore' }).status === 0,
    iperf3: spawnSync('sh', ['-c', 'command -v iperf3'], { stdio: 'ignore' }).status === 0,
  };
}

/**
 * Installs the missing peer packages. Returns a note for each that could not be installed (the benchmarks
 * that need it then say so instead of failing).
 */
export function ensurePackages(log: (s: string) => void): string[] {
  const missing = PACKAGES.filter((p) => !dpkgVersion(p));
  if (!missing.length) return [];
  log(`installing missing peers with apt-get: ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  // docker.io's maintainer scripts start dockerd where an init system lets them, in the machine's own
  // namespace: a policy-rc.d that refuses every start keeps them from doing so (removed again after).
  const policy = '/usr/sbin/policy-rc.d';
  const ownPolicy = !fs.existsSync(policy);
  if (ownPolicy) fs.writeFileSync(policy, '#!/bin/sh\n# bench/run: no service starts during the install of benchmark peers\nexit 101\n', { mode: 0o755 });
  try {
    return install(missing, env);
  } finally {
    if (ownPolicy) fs.rmSync(policy, { force: true });
  }
}

function install(missing: string[], env: NodeJS.ProcessEnv): string[] {
  let r = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) {
    spawnSync('apt-get', ['update', '-qq'], { env, stdio: 'ignore' });
    r = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  }
  return PACKAGES.filter((p) => !dpkgVersion(p)).map((p) => `package ${p} could not be installed (${(r.stderr ?? '').trim().split('\n').pop() ?? ''}): its figures are missing`);
}
