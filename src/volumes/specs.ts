// Mount specifications, parsed once into typed mount points: HostConfig.Binds (`-v`), HostConfig.Mounts
// (`--mount`), HostConfig.Tmpfs (`--tmpfs`), VolumesFrom and the anonymous volumes of Config.Volumes and
// the image's VOLUMEs. Pure: no I/O, so every rule and message is unit-tested. Rules and words are moby's
// (volume/mounts/linux_parser.go, daemon/volumes.go registerMountPoints); the runtime turns the result
// into OCI mounts (src/volumes/oci.ts).
import path from 'node:path';
import { invalidParameter } from '../util/errors.ts';

export type MountType = 'bind' | 'volume' | 'tmpfs';

/** One mount of a container, as the record keeps it and inspect's `.Mounts` shows it (plus private facts). */
export interface MountPoint {
  Type: MountType;
  /** volume name ('' until an anonymous volume got its name, and for binds and tmpfs) */
  Name: string;
  /** bind: the host path; volume: its mountpoint (set once the volume exists); tmpfs: '' */
  Source: string;
  Destination: string;
  Driver: string;
  Mode: string;
  RW: boolean;
  Propagation: string;
  /** fill an empty volume from the image's content at Destination at first use (Docker's CopyData) */
  copyData: boolean;
  /** an anonymous volume (a 64-hex name; `rm -v` removes it) */
  anonymous?: boolean;
  /** -v of a host path: a missing host directory is created (--mount refuses it at create) */
  createSource?: boolean;
  /** bind: `bind` instead of `rbind` (BindOptions.NonRecursive) */
  nonRecursive?: boolean;
  /** tmpfs: mount options for the kernel (size=, mode=, exec...) */
  tmpfsOptions?: string[];
  /** a named volume to create when missing: its labels and driver options (from --mount volume-opt) */
  volumeLabels?: Record<string, string>;
  volumeOptions?: Record<string, string>;
  /** false for HostConfig.Tmpfs: Docker does not list those in .Mounts */
  listed?: boolean;
}

// ---------------------------------------------------------------------------- names and paths

const VOLUME_NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/** The local driver's name rule, with moby's words. */
export function validateVolumeName(name: string): void {
  if (!VOLUME_NAME_RE.test(name)) {
    throw invalidParameter(`create ${name}: "${name}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`);
  }
}

const RW_MODES = new Set(['rw', 'ro']);
const LABEL_MODES = new Set(['z', 'Z']);
const PROPAGATION = new Set(['private', 'rprivate', 'slave', 'rslave', 'shared', 'rshared']);
const COPY_MODES = new Set(['nocopy']);
const CONSISTENCY = new Set(['consistent', 'cached', 'delegated']);

/** moby's linuxValidMountMode: known words, at most one of each kind. */
export function validMountMode(mode: string): boolean {
  if (mode === '') return true;
  const count = [0, 0, 0, 0, 0];
  for (const o of mode.split(',')) {
    const k = RW_MODES.has(o) ? 0 : LABEL_MODES.has(o) ? 1 : PROPAGATION.has(o) ? 2 : COPY_MODES.has(o) ? 3 : CONSISTENCY.has(o) ? 4 : -1;
    if (k < 0) return false;
    count[k]!++;
  }
  return count.every((n) => n <= 1);
}

const modeWords = (mode: string) => (mode ? mode.split(',') : []);

function mountConfigError(type: string, msg: string): Error {
  return invalidParameter(`invalid mount config for type "${type}": ${msg}`);
}

function checkTarget(type: string, target: string | undefined): string {
  if (!target) throw mountConfigError(type, 'field Target must not be empty');
  if (path.posix.normalize(target.replace(/\\/g, '/')) === '/' || target.replace(/\/+$/, '') === '') {
    throw mountConfigError(type, 'invalid specification: destination can\'t be \'/\'');
  }
  if (!target.startsWith('/')) throw mountConfigError(type, `invalid mount path: '${target}' mount path must be absolute`);
  return path.posix.normalize(target).replace(/(.)\/$/, '$1');
}

// ---------------------------------------------------------------------------- -v (HostConfig.Binds)

/** One `-v` spec: `/host:/ctr[:mode]` (bind), `name:/ctr[:mode]` (named volume), as ParseMountRaw. */
export function parseBind(raw: string): MountPoint {
  const invalidSpec = () => invalidParameter(`invalid volume specification: '${raw}'`);
  const arr = splitN(raw, ':', 4);
  if (!arr[0]) throw invalidSpec();
  let source = '', target = '', mode = '';
  if (arr.length === 1) target = arr[0];
  else if (arr.length === 2) {
    if (validMountMode(arr[1]!)) throw invalidSpec(); // "/foo:rw": a destination with a mode is no volume
    [source, target] = [arr[0], arr[1]!];
  } else if (arr.length === 3) [source, target, mode] = [arr[0], arr[1]!, arr[2]!];
  else throw invalidSpec();
  if (!validMountMode(mode)) throw invalidParameter(`invalid mode: ${mode}`);
  const type: MountType = source.startsWith('/') ? 'bind' : 'volume';
  const words = modeWords(mode);
  let dest: string;
  try {
    dest = checkTarget(type, target);
  } catch (e) {
    throw invalidParameter(`invalid volume specification: '${raw}': ${(e as Error).message}`);
  }
  const rw = !words.includes('ro');
  if (type === 'bind') {
    return {
      Type: 'bind', Name: '', Source: path.posix.normalize(source).replace(/(.)\/$/, '$1'), Destination: dest, Driver: '', Mode: mode, RW: rw,
      Propagation: words.find((w) => PROPAGATION.has(w)) ?? 'rprivate', copyData: false, createSource: true,
    };
  }
  if (!source) throw invalidSpec(); // a bare destination goes to Config.Volumes, never to Binds
  validateVolumeName(source);
  if (words.some((w) => PROPAGATION.has(w))) throw invalidParameter(`invalid volume specification: '${raw}': invalid mount config for type "volume": field BindOptions must not be specified`);
  return {
    // moby's setBindModeIfNull: a volume of -v without a mode shows "z"
    Type: 'volume', Name: source, Source: '', Destination: dest, Driver: 'local', Mode: mode || 'z', RW: rw, Propagation: '',
    copyData: !words.includes('nocopy'),
  };
}

function splitN(s: string, sep: string, n: number): string[] {
  const parts = s.split(sep);
  return parts.length <= n ? parts : [...parts.slice(0, n - 1), parts.slice(n - 1).join(sep)];
}

// ---------------------------------------------------------------------------- --mount (HostConfig.Mounts)

export interface ApiMount {
  Type?: string;
  Source?: string;
  Target?: string;
  ReadOnly?: boolean;
  Consistency?: string;
  BindOptions?: { Propagation?: string; NonRecursive?: boolean; CreateMountpoint?: boolean; ReadOnlyNonRecursive?: boolean; ReadOnlyForceRecursive?: boolean } | null;
  VolumeOptions?: { NoCopy?: boolean; Labels?: Record<string, string> | null; DriverConfig?: { Name?: string; Options?: Record<string, string> | null } | null; Subpath?: string } | null;
  TmpfsOptions?: { SizeBytes?: number; Mode?: number; Options?: string[][] | null } | null;
  ImageOptions?: unknown;
  ClusterOptions?: unknown;
}

/** Refuses an option loom does not implement, naming it (never dropped silently). */
function unsupported(type: string, field: string): Error {
  return mountConfigError(type, `${field} is not supported by loom`);
}

/**
 * One `--mount` entry, as moby's ParseMountSpec: the bind source must exist (`exists` is asked), options of
 * another mount type are refused.
 */
export function parseMount(m: ApiMount, exists: (p: string) => boolean): MountPoint {
  const type = m.Type ?? '';
  if (type !== 'bind' && type !== 'volume' && type !== 'tmpfs') {
    if (type === 'image' || type === 'npipe' || type === 'cluster') throw mountConfigError(type, 'mount type is not supported by loom');
    throw mountConfigError(type, 'mount type unknown');
  }
  const dest = checkTarget(type, m.Target);
  if (type !== 'bind' && m.BindOptions) throw mountConfigError(type, 'field BindOptions must not be specified');
  if (type !== 'volume' && m.VolumeOptions) throw mountConfigError(type, 'field VolumeOptions must not be specified');
  if (type !== 'tmpfs' && m.TmpfsOptions) throw mountConfigError(type, 'field TmpfsOptions must not be specified');
  if (m.ImageOptions) throw mountConfigError(type, 'field ImageOptions must not be specified');
  if (m.ClusterOptions) throw unsupported(type, 'ClusterOptions');
  const rw = !m.ReadOnly;
  if (type === 'bind') {
    if (!m.Source) throw mountConfigError(type, 'field Source must not be empty');
    const b = m.BindOptions ?? {};
    if (b.Propagation && !PROPAGATION.has(b.Propagation)) throw mountConfigError(type, `invalid propagation mode: ${b.Propagation}`);
    if (b.ReadOnlyNonRecursive) throw unsupported(type, 'BindOptions.ReadOnlyNonRecursive');
    if (b.ReadOnlyForceRecursive) throw unsupported(type, 'BindOptions.ReadOnlyForceRecursive');
    if (!m.Source.startsWith('/')) throw mountConfigError(type, `invalid mount path: '${m.Source}' mount path must be absolute`);
    const src = path.posix.normalize(m.Source).replace(/(.)\/$/, '$1');
    if (!b.CreateMountpoint && !exists(src)) throw mountConfigError(type, `bind source path does not exist: ${src}`);
    return {
      Type: 'bind', Name: '', Source: src, Destination: dest, Driver: '', Mode: '', RW: rw, Propagation: b.Propagation || 'rprivate',
      copyData: false, ...(b.CreateMountpoint ? { createSource: true } : {}), ...(b.NonRecursive ? { nonRecursive: true } : {}),
    };
  }
  if (type === 'volume') {
    const v = m.VolumeOptions ?? {};
    const anonymous = !m.Source;
    if (v.Subpath) throw unsupported(type, 'VolumeOptions.Subpath');
    if (m.ReadOnly && anonymous) throw mountConfigError(type, 'must not set ReadOnly mode when using anonymous volumes');
    const driver = v.DriverConfig?.Name || 'local';
    if (driver !== 'local') throw invalidParameter(`plugin "${driver}" not found`);
    if (!anonymous) validateVolumeName(m.Source!);
    return {
      // dockerd shows a named volume's Mode as "z" (its setBindModeIfNull), an anonymous one's as ""
      Type: 'volume', Name: m.Source ?? '', Source: '', Destination: dest, Driver: 'local', Mode: anonymous ? '' : 'z', RW: rw, Propagation: '',
      copyData: !v.NoCopy, ...(anonymous ? { anonymous: true } : {}),
      ...(v.Labels && Object.keys(v.Labels).length ? { volumeLabels: v.Labels } : {}),
      ...(v.DriverConfig?.Options && Object.keys(v.DriverConfig.Options).length ? { volumeOptions: v.DriverConfig.Options } : {}),
    };
  }
  if (m.Source) throw mountConfigError(type, 'field Source must not be specified');
  const t = m.TmpfsOptions ?? {};
  const opts = ['nosuid', 'nodev', 'noexec'];
  if (m.ReadOnly) opts.push('ro');
  if (t.Mode) opts.push(`mode=${t.Mode.toString(8)}`);
  if (t.SizeBytes) {
    if (t.SizeBytes < 0) throw mountConfigError(type, `invalid tmpfs size: ${t.SizeBytes}`);
    opts.push(`size=${tmpfsSize(t.SizeBytes)}`);
  }
  for (const o of t.Options ?? []) {
    if (o.length < 1 || o.length > 2) throw mountConfigError(type, 'invalid option array length');
    if (o[0] !== 'exec' && o[0] !== 'noexec') throw mountConfigError(type, `invalid option: ${o[0]}`);
    setExec(opts, o[0]);
  }
  return { Type: 'tmpfs', Name: '', Source: '', Destination: dest, Driver: '', Mode: '', RW: rw, Propagation: '', copyData: false, tmpfsOptions: opts };
}

function setExec(opts: string[], word: string): void {
  const i = opts.findIndex((o) => o === 'exec' || o === 'noexec');
  if (i >= 0) opts.splice(i, 1);
  opts.push(word);
}

/** Bytes as moby's ConvertTmpfsOptions writes them: the largest unit that divides evenly. */
export function tmpfsSize(n: number): string {
  for (const [s, d] of [['g', 1 << 30], ['m', 1 << 20], ['k', 1 << 10]] as const) if (n % d === 0) return `${n / d}${s}`;
  return String(n);
}

// ---------------------------------------------------------------------------- --tmpfs (HostConfig.Tmpfs)

const TMPFS_FLAGS = new Set([
  'ro', 'rw', 'exec', 'noexec', 'suid', 'nosuid', 'dev', 'nodev', 'sync', 'async', 'dirsync', 'atime', 'noatime',
  'diratime', 'nodiratime', 'relatime', 'norelatime', 'strictatime', 'nostrictatime', 'mand', 'nomand',
  'private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave', 'remount', 'bind', 'rbind',
]);
const TMPFS_DATA = new Set(['size', 'mode', 'uid', 'gid', 'nr_inodes', 'nr_blocks', 'mpol', 'huge', 'tmpcopyup', 'notmpcopyup']);

/** One HostConfig.Tmpfs entry: Docker's defaults (noexec,nosuid,nodev) with the user's options over them. */
export function parseTmpfs(dest: string, options: string): MountPoint {
  let d: string;
  try {
    d = checkTarget('tmpfs', dest);
  } catch (e) {
    throw invalidParameter(`invalid tmpfs destination: ${(e as Error).message.replace(/^invalid mount config for type "tmpfs": /, '')}`);
  }
  const opts = ['noexec', 'nosuid', 'nodev'];
  for (const o of options ? options.split(',') : []) {
    const key = o.split('=', 1)[0]!;
    if (!TMPFS_FLAGS.has(key) && !TMPFS_DATA.has(key)) throw invalidParameter(`invalid tmpfs option [${(o.includes('=') ? [key, o.slice(key.length + 1)] : [o]).map((x) => JSON.stringify(x)).join(' ')}]`);
    if (key === 'tmpcopyup' || key === 'notmpcopyup') throw invalidParameter(`tmpfs option ${key} is not supported by loom`);
    const pair = FLAG_PAIRS.get(key);
    if (pair !== undefined) {
      const i = opts.indexOf(pair);
      if (i >= 0) opts.splice(i, 1);
    }
    const same = opts.findIndex((x) => x.split('=', 1)[0] === key);
    if (same >= 0) opts.splice(same, 1);
    opts.push(o);
  }
  const rw = !opts.includes('ro');
  return { Type: 'tmpfs', Name: '', Source: '', Destination: d, Driver: '', Mode: options, RW: rw, Propagation: '', copyData: false, tmpfsOptions: opts, listed: false };
}

const FLAG_PAIRS = new Map<string, string>();
for (const [a, b] of [['exec', 'noexec'], ['suid', 'nosuid'], ['dev', 'nodev'], ['ro', 'rw'], ['atime', 'noatime'], ['diratime', 'nodiratime'], ['relatime', 'norelatime'], ['strictatime', 'nostrictatime'], ['mand', 'nomand'], ['sync', 'async']] as const) {
  FLAG_PAIRS.set(a, b);
  FLAG_PAIRS.set(b, a);
}

// ---------------------------------------------------------------------------- --volumes-from

/** `container[:ro|rw]`, as ParseVolumesFrom. */
export function parseVolumesFrom(spec: string): { ref: string; mode: string } {
  if (!spec) throw invalidParameter('volumes-from specification cannot be an empty string');
  const i = spec.indexOf(':');
  const ref = i < 0 ? spec : spec.slice(0, i);
  const mode = i < 0 ? '' : spec.slice(i + 1);
  if (!mode) return { ref, mode: 'rw' };
  const words = modeWords(mode);
  if (!validMountMode(mode) || words.some((w) => PROPAGATION.has(w) || COPY_MODES.has(w))) throw invalidParameter(`invalid mode: ${mode}`);
  return { ref, mode };
}

// ---------------------------------------------------------------------------- all of a create

export interface MountInputs {
  binds?: string[] | null;
  mounts?: ApiMount[] | null;
  tmpfs?: Record<string, string> | null;
  volumesFrom?: string[] | null;
  /** Config.Volumes of the request and the image's VOLUMEs: anonymous volumes unless something else is mounted there */
  configVolumes?: string[];
  /** the mount points of a --volumes-from container (its record's) */
  mountsOf: (ref: string) => MountPoint[];
  exists: (p: string) => boolean;
}

/**
 * Every mount of a new container, as moby's registerMountPoints orders them: image and Config volumes,
 * replaced by --volumes-from, replaced by -v and --mount (which may not name one destination twice), with
 * --tmpfs last. Returned sorted by destination depth, the order they are mounted in.
 */
export function planMounts(inp: MountInputs): MountPoint[] {
  const byDest = new Map<string, MountPoint>();
  for (const raw of inp.configVolumes ?? []) {
    const dest = raw.replace(/(.)\/+$/, '$1');
    let d: string;
    try {
      d = checkTarget('volume', dest);
    } catch (e) {
      throw invalidParameter(`invalid volume specification: '${raw}': ${(e as Error).message}`);
    }
    byDest.set(d, { Type: 'volume', Name: '', Source: '', Destination: d, Driver: 'local', Mode: '', RW: true, Propagation: '', copyData: true, anonymous: true });
  }
  for (const spec of inp.volumesFrom ?? []) {
    const { ref, mode } = parseVolumesFrom(spec);
    for (const m of inp.mountsOf(ref)) {
      if (m.Type === 'tmpfs') continue;
      const copy: MountPoint = { ...m, copyData: false };
      if (mode !== 'rw' || spec.includes(':')) {
        copy.RW = !modeWords(mode).includes('ro');
        copy.Mode = mode;
      }
      delete copy.createSource;
      byDest.set(copy.Destination, copy);
    }
  }
  const explicit = new Set<string>();
  const add = (m: MountPoint) => {
    if (explicit.has(m.Destination)) throw invalidParameter(`Duplicate mount point: ${m.Destination}`);
    explicit.add(m.Destination);
    byDest.set(m.Destination, m);
  };
  for (const b of inp.binds ?? []) add(parseBind(b));
  for (const m of inp.mounts ?? []) add(parseMount(m, inp.exists));
  for (const [dest, opts] of Object.entries(inp.tmpfs ?? {})) {
    const t = parseTmpfs(dest, opts ?? '');
    if (explicit.has(t.Destination)) throw invalidParameter(`Duplicate mount point: ${t.Destination}`);
    byDest.set(t.Destination, t);
  }
  return sortMounts([...byDest.values()]);
}

/** Parents before children (moby's sortMounts: by the number of path parts). */
export function sortMounts(ms: MountPoint[]): MountPoint[] {
  const depth = (p: string) => p.split('/').filter(Boolean).length;
  return [...ms].sort((a, b) => depth(a.Destination) - depth(b.Destination));
}

/** The `.Mounts` entries of inspect and ps, as Docker shows them. */
export function mountsView(ms: MountPoint[] | undefined): Record<string, unknown>[] {
  return (ms ?? []).filter((m) => m.listed !== false).map((m) => m.Type === 'volume'
    ? { Type: 'volume', Name: m.Name, Source: m.Source, Destination: m.Destination, Driver: m.Driver, Mode: m.Mode, RW: m.RW, Propagation: m.Propagation }
    : { Type: m.Type, Source: m.Source, Destination: m.Destination, Mode: m.Mode, RW: m.RW, Propagation: m.Propagation });
}
