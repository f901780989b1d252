// Failpoints: a test-only switch that makes the daemon die abruptly (SIGKILL, no cleanup) at a named step
// of an operation, so the crash-safety tests can prove that a restart repairs every intermediate state.
// LOOM_FAILPOINTS=name[,name...] is read once at daemon start; unset (always, outside tests) a failpoint
// is one Set lookup.
const active = new Set((process.env.LOOM_FAILPOINTS ?? '').split(',').map((s) => s.trim()).filter(Boolean));

/** Every failpoint the daemon has, for the tests' walk (keep in step with the calls). */
export const FAILPOINTS = [
  'start.netns', 'endpoint.allocated', 'endpoint.joined', 'start.published', 'start.dns', 'start.runc',
  'exit.released', 'remove.released', 'remove.runtime', 'disconnect.left',
  'network.create.kernel', 'network.rm.kernel',
] as const;
export type Failpoint = (typeof FAILPOINTS)[number];

export function failpoint(name: Failpoint): void {
  if (!active.size || !active.has(name)) return;
  process.stderr.write(`{"level":60,"msg":"failpoint ${name}: killing the daemon"}\n`);
  process.kill(process.pid, 'SIGKILL');
  // SIGKILL to oneself is delivered before kill() returns; never go on, whatever happens
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10_000);
}
