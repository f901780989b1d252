// Keeping a pull's memory flat. Every chunk read from a registry is a new Buffer outside V8's heap; V8
// collects their small wrappers only when its young generation fills or when external memory has grown by
// 64 MiB since the last collection, so a fast download held ~60-90 MiB of dead buffers at its peak (bench:
// registry). A minor collection (~0.1 ms) every few MiB of transfer frees them as they go. V8 offers it
// to code only behind --expose-gc, which is set for this purpose once, at first use.
import v8 from 'node:v8';
import vm from 'node:vm';

type Gc = (opts?: { type?: 'minor' | 'major'; execution?: 'sync' | 'async' }) => void;
let gc: Gc | null | undefined;

function collector(): Gc | null {
  if (gc !== undefined) return gc;
  try {
    v8.setFlagsFromString('--expose-gc');
    gc = vm.runInNewContext('gc') as Gc;
  } catch {
    gc = null;
  }
  return gc;
}

const EVERY = 8 << 20;
let since = 0;

/** Counts transferred bytes; every 8 MiB (over all transfers) runs a minor collection. */
export function transferred(bytes: number): void {
  since += bytes;
  if (since < EVERY) return;
  since = 0;
  collector()?.({ type: 'minor' });
}
