// Profiling loom without breaking it: V8's sampling profiler interrupts the main thread with SIGPROF every
// sampling interval, and libnftables waits for the kernel's answer to a transaction in select(), which a
// signal interrupts whatever SA_RESTART says; nft then reports "Interrupted system call" for a batch the
// kernel may already have committed. Under --cpu-prof only, this module blocks SIGPROF around each
// libnftables call (the pending sample is taken right after). Loaded by the profiled workers, and by the
// profiled daemon through NODE_OPTIONS=--import.
import koffi from 'koffi';
import { Nft } from '../../src/firewall/nft.ts';

const libc = koffi.load('libc.so.6');
const c_sigmask = libc.func('int pthread_sigmask(int how, const uint8_t *set, _Out_ uint8_t *old)');
const SIG_BLOCK = 0, SIG_SETMASK = 2, SIGPROF = 27;

const block = Buffer.alloc(128); // sigset_t
block[(SIGPROF - 1) >> 3]! |= 1 << ((SIGPROF - 1) & 7);

const orig = Nft.prototype.run;
Nft.prototype.run = function (this: Nft, commands: string): string {
  const old = Buffer.alloc(128);
  c_sigmask(SIG_BLOCK, block, old);
  try {
    return orig.call(this, commands);
  } finally {
    c_sigmask(SIG_SETMASK, old, null);
  }
};
