// Values of a container's config that moby's verifyContainerSettings refuses at create (400), checked
// once the body has the right types: nothing is created for them, and no start fails later with a 500.
import { invalidParameter } from '../util/errors.ts';
import { goQuote } from './router.ts';
import { parseLogPolicy } from '../runtime/logtrim.ts';
import { normalizeSignal } from '../core/containers.ts';

/** Log drivers dockerd has; loom writes json-file logs only. */
const DOCKER_LOG_DRIVERS = ['none', 'local', 'json-file', 'syslog', 'journald', 'gelf', 'fluentd', 'awslogs', 'splunk', 'etwlogs', 'gcplogs', 'logentries'];
/** json-file's options in dockerd (its validator refuses any other); loom implements the size limits. */
const JSON_FILE_OPTS = ['max-file', 'max-size', 'compress', 'labels', 'labels-regex', 'env', 'env-regex', 'tag', 'mode', 'max-buffer-size'];
const IMPLEMENTED_OPTS = ['max-size', 'max-file'];

interface CreateConfig {
  WorkingDir?: string | null;
  Env?: (string | null)[] | null;
  Cmd?: string | (string | null)[] | null;
  Entrypoint?: string | (string | null)[] | null;
  User?: string | null;
  StopSignal?: string | null;
  HostConfig?: { LogConfig?: { Type?: string | null; Config?: Record<string, string | null> | null } | null } | null;
}

export function checkCreateConfig(b: CreateConfig): void {
  if (b.WorkingDir && !b.WorkingDir.startsWith('/')) {
    throw invalidParameter(`the working directory '${b.WorkingDir}' is invalid, it needs to be an absolute path`);
  }
  // verifyContainerSettings parses the stop signal at create
  if (b.StopSignal) normalizeSignal(b.StopSignal);
  checkProcess(b);
  checkLogConfig(b.HostConfig?.LogConfig ?? undefined);
}

/** An exec's process: the same rules for its command, environment, user and directory. */
export function checkExecConfig(b: Pick<CreateConfig, 'Env' | 'Cmd' | 'User' | 'WorkingDir'>): void {
  checkProcess(b);
}

function checkProcess(b: Pick<CreateConfig, 'Env' | 'Cmd' | 'Entrypoint' | 'User' | 'WorkingDir'>): void {
  for (const env of b.Env ?? []) {
    if (env === null) continue;
    // opts.ValidateEnv: a variable needs a name
    if (env.split('=', 1)[0] === '') throw invalidParameter(`invalid environment variable: ${env}`);
    // the kernel cannot pass a NUL inside an argument or variable; runc would fail the start (a 500)
    if (env.includes('\0')) throw invalidParameter(`invalid environment variable: ${goQuote(env)}: contains a NUL byte`);
  }
  for (const [field, v] of [['Cmd', b.Cmd], ['Entrypoint', b.Entrypoint], ['User', b.User], ['WorkingDir', b.WorkingDir]] as const) {
    const items = typeof v === 'string' ? [v] : v ?? [];
    for (const s of items) if (s?.includes('\0')) throw invalidParameter(`invalid ${field} ${goQuote(s)}: contains a NUL byte`);
  }
}

/** moby's logger.ValidateLogOpts with the json-file validator, and what loom does not implement refused by name. */
export function checkLogConfig(lc: { Type?: string | null; Config?: Record<string, string | null> | null } | undefined): void {
  const type = lc?.Type ?? '';
  const opts = lc?.Config ?? {};
  const mode = opts.mode ?? '';
  if (!['', 'blocking', 'non-blocking'].includes(mode)) throw invalidParameter(`logger: logging mode not supported: ${mode}`);
  if (type !== '' && type !== 'json-file') {
    if (!DOCKER_LOG_DRIVERS.includes(type)) throw invalidParameter(`logger: no log driver named '${type}' is registered`);
    throw invalidParameter(`log driver '${type}' is not supported by loom (its logs are json-file)`);
  }
  for (const k of Object.keys(opts)) {
    if (!JSON_FILE_OPTS.includes(k)) throw invalidParameter(`unknown log opt '${k}' for json-file log driver`);
    if (k === 'mode' && mode !== 'non-blocking') continue; // loom's writes block, as the default mode
    if (IMPLEMENTED_OPTS.includes(k)) continue;
    throw invalidParameter(`log opt '${k}' is not supported by loom (only max-size and max-file)`);
  }
  parseLogPolicy(opts);
}

/**
 * dockerd's mergeAndVerifyLogConfig: a container without a driver gets the daemon's (json-file), and the
 * daemon's --log-opt values fill in the options it does not set. Returns the LogConfig to keep.
 */
export function mergeLogConfig(lc: { Type?: string | null; Config?: Record<string, string | null> | null } | null | undefined, daemonOpts: Record<string, string>): { Type: string; Config: Record<string, string> } {
  const config: Record<string, string> = {};
  for (const [k, v] of Object.entries(lc?.Config ?? {})) if (v !== null) config[k] = v;
  for (const [k, v] of Object.entries(daemonOpts)) if (!(k in config)) config[k] = v;
  return { Type: lc?.Type || 'json-file', Config: config };
}
