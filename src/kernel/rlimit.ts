// The daemon's open-file limit. loom holds every published host port with a socket of its own (so no host
// process can take it, as Docker does with docker-proxy), which makes a 10,000-port range 10,000 fds; it
// raises its limit at start as dockerd's systemd unit does (LimitNOFILE=infinity, i.e. fs.nr_open).
import fs from 'node:fs';
import koffi from 'koffi';

const RLIMIT_NOFILE = 7;
const libc = koffi.load('libc.so.6');
const c_prlimit = libc.func('int prlimit(int pid, int resource, const uint64_t *newLimit, _Out_ uint64_t *oldLimit)');

/** Raises the soft and hard RLIMIT_NOFILE of this process to `want` (default fs.nr_open); returns the limit now in force. */
export function raiseOpenFileLimit(want?: number): number {
  const old = new BigUint64Array(2);
  c_prlimit(0, RLIMIT_NOFILE, null, old);
  let target = BigInt(want ?? Number(fs.readFileSync('/proc/sys/fs/nr_open', 'utf8').trim()));
  if (old[0]! >= target) return Number(old[0]);
  // without CAP_SYS_RESOURCE only the soft limit can go up, to the hard one
  if (c_prlimit(0, RLIMIT_NOFILE, new BigUint64Array([target, target > old[1]! ? target : old[1]!]), null) !== 0) {
    target = old[1]!;
    c_prlimit(0, RLIMIT_NOFILE, new BigUint64Array([target, old[1]!]), null);
  }
  const now = new BigUint64Array(2);
  c_prlimit(0, RLIMIT_NOFILE, null, now);
  return Number(now[0]);
}
