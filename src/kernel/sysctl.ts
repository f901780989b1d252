// sysctl reads and writes through /proc/sys, optionally inside another network namespace.
// /proc/sys/net/... resolves against the network namespace of the *thread* doing the lookup, so the file is
// opened (and written) synchronously inside withNetns on the main thread; an async fs call would run on a
// libuv pool thread that is still in the daemon's namespace and silently change the wrong one.
import fs from 'node:fs';
import { withNetns } from './netns.ts';

/**
 * 'net.ipv4.ip_forward' → /proc/sys/net/ipv4/ip_forward. A key with slashes is taken as a path already,
 * which is the only way to name an interface with a dot in it ('net/ipv4/conf/eth0.100/forwarding').
 */
function sysctlPath(key: string): string {
  const rel = key.includes('/') ? key.replace(/^\/+/, '') : key.replace(/\./g, '/');
  if (rel.split('/').some((p) => p === '..' || p === '')) throw new Error(`invalid sysctl key ${JSON.stringify(key)}`);
  return `/proc/sys/${rel}`;
}

function inNs<T>(netnsPath: string | undefined, fn: () => T): T {
  return netnsPath ? withNetns(netnsPath, fn) : fn();
}

export function writeSysctl(key: string, value: string, netnsPath?: string): void {
  const p = sysctlPath(key);
  try {
    inNs(netnsPath, () => fs.writeFileSync(p, value));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw Object.assign(new Error(`write sysctl ${key}=${value}${netnsPath ? ` in ${netnsPath}` : ''}: ${err.message}`), { code: err.code });
  }
}

export function readSysctl(key: string, netnsPath?: string): string {
  const p = sysctlPath(key);
  try {
    return inNs(netnsPath, () => fs.readFileSync(p, 'utf8')).trimEnd();
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw Object.assign(new Error(`read sysctl ${key}${netnsPath ? ` in ${netnsPath}` : ''}: ${err.message}`), { code: err.code });
  }
}
