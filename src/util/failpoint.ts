// Failpoints: a test-only switch that makes the daemon die abruptly (SIGKILL, no cleanup) at a named step
// of an operation, so the crash-safety tests can prove that a restart repairs every intermediate state.
// LOOM_FAILPOINTS=name[,name...] is read once at daemon start; unset (always, outside tests) a failpoint
// is one Set lookup.
// name:error makes the step fail with an error instead (the daemon lives on and must roll back by itself).
const entries = (process.env.LOOM_FAILPOINTS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
const active = new Set(entries.filter((e) => !e.endsWith(':error')));
const failing = new Set(entries.filter((e) => e.endsWith(':error')).map((e) => e.slice(0, -':error'.length)));

/** Every failpoint the daemon has, for the tests' walk (keep in step with the calls). */
export const FAILPOINTS = [
  'start.netns', 'endpoint.allocated', 'endpoint.joined', 'start.published', 'start.dns', 'start.runc',
  'exit.released', 'remove.released', 'remove.runtime', 'disconnect.left',
  'network.create.kernel', 'network.rm.kernel',
] as const;
export type Failpoint = (typeof FAILPOINTS)[number];

/** The steps of a bridged underlay's move and restore (src/drivers/uplink.ts), walked by test/e2e/uplink.test.ts. */
export const UPLINK_FAILPOINTS = ['uplink.bridge', 'uplink.enslaved', 'uplink.addresses', 'uplink.routes', 'uplink.restore'] as const;
export type UplinkFailpoint = (typeof UPLINK_FAILPOINTS)[number];

export function failpoint(name: Failpoint | UplinkFailpoint): void {
  if (failing.has(name)) throw new Error(`failpoint ${name}: failing this step`);
  if (!active.size || !active.has(name)) return;
  process.stderr.write(`{"level":60,"msg":"failpoint ${name}: killing the daemon"}\n`);
  process.kill(process.pid, 'SIGKILL');
  // SIGKILL to oneself is delivered before kill() returns; never go on, whatever happens
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10_000);
}
