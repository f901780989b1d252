// The pure half of the runtime: the OCI bundle config a container runs with, the user it runs as
// (resolved through the image's /etc/passwd and /etc/group the way Docker does), and the parsing of what
// runc prints. No I/O here except reading the two account files, so all of it is unit-tested.
import fs from 'node:fs';
import path from 'node:path';
import { invalidParameter } from '../util/errors.ts';

export interface ContainerSpec {
  id: string; // 64 hex chars
  rootfsLower: string | string[]; // the image's layer dirs, top first (read-only lower layers)
  stateDir: string; // persistent per-container dir: overlay upper/work, logs, exit status live here
  args: string[];
  env: string[];
  cwd: string;
  /** "uid[:gid]" numeric, or names resolved via the rootfs /etc/passwd and /etc/group. */
  user?: string;
  hostname: string;
  tty: boolean;
  openStdin: boolean;
  /**
   * Docker's StdinOnce (with openStdin): the container's stdin ends when the first attacher that wrote
   * to it closes (`echo hi | docker run -i img cat`). Otherwise stdin stays open for the container's life
   * and attachers come and go (`docker run -d -i`).
   */
  stdinOnce?: boolean;
  /** Path of the network namespace to join, or 'host' = no network namespace of its own. */
  netns: string | 'host';
  /** Host paths bind-mounted at /etc/hosts, /etc/resolv.conf, /etc/hostname. */
  etcFiles: { hosts: string; resolvConf: string; hostname: string };
  labels?: Record<string, string>;
  /** host path of an init (docker-init/tini) to run as PID 1 in front of the command (`--init`) */
  init?: string;
  /** the container's own mounts (volumes, binds, tmpfs), in mount order; they win over the etc files */
  mounts?: OciMount[];
  /** called with the mounted rootfs before the bundle is written (volumes are filled from the image then) */
  prepareRootfs?: (rootfs: string) => void;
}

export interface OciMount { destination: string; type: string; source: string; options: string[] }

/** Where Docker mounts its init in the container. */
export const INIT_PATH = '/sbin/docker-init';

export interface ExitStatus {
  exitCode: number;
  finishedAt: string; // RFC3339 nano
  oomKilled: boolean;
  error?: string;
}

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
}

/** Docker's default capability set (moby oci/caps/defaults.go). */
export const DEFAULT_CAPS = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

/** Docker's masked and read-only paths (moby oci/defaults.go). */
export const MASKED_PATHS = [
  '/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
  '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap',
];
export const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

// ---------------------------------------------------------------------------- users

interface PasswdEntry { name: string; uid: number; gid: number }
interface GroupEntry { name: string; gid: number; members: string[] }

export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const f = line.split(':');
    const uid = Number(f[2]), gid = Number(f[3]);
    if (f.length < 4 || !f[0] || !Number.isInteger(uid) || !Number.isInteger(gid) || f[2] === '' || f[3] === '') continue;
    out.push({ name: f[0], uid, gid });
  }
  return out;
}

export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const f = line.split(':');
    const gid = Number(f[2]);
    if (f.length < 3 || !f[0] || f[2] === '' || !Number.isInteger(gid)) continue;
    out.push({ name: f[0], gid, members: (f[3] ?? '').split(',').map((s) => s.trim()).filter(Boolean) });
  }
  return out;
}

const isNumeric = (s: string) => /^[0-9]+$/.test(s);
const MAX_ID = 2 ** 31 - 1;

/**
 * "user[:group]" → uid, gid and supplementary gids, as runc's libcontainer/user.GetExecUser does for
 * Docker: a name must exist in passwd; a numeric uid need not (gid 0 then); a matched passwd entry gives
 * the primary gid, and (when no group is given) the groups listing the user as a member. Messages are
 * Docker's. `passwd`/`group` are the files' contents, or null when the image has none.
 */
export function resolveUser(spec: string | undefined, passwd: string | null, group: string | null): ResolvedUser {
  const s = (spec ?? '').trim();
  const colon = s.indexOf(':');
  const userArg = colon < 0 ? s : s.slice(0, colon);
  const groupArg = colon < 0 ? '' : s.slice(colon + 1);
  const user = { name: '', uid: 0, gid: 0 };
  let matched = false;
  const users = passwd !== null ? parsePasswd(passwd) : [];
  if (userArg === '') {
    const u = users.find((e) => e.uid === 0);
    if (u) Object.assign(user, u), (matched = true);
  } else if (isNumeric(userArg)) {
    const uid = Number(userArg);
    if (uid > MAX_ID) throw invalidParameter(`uids and gids must be in range 0-${MAX_ID}`);
    const u = users.find((e) => e.uid === uid);
    user.uid = uid;
    if (u) Object.assign(user, u), (matched = true);
  } else {
    if (passwd === null) throw invalidParameter(`unable to find user ${userArg}: no matching entries in passwd file`);
    const u = users.find((e) => e.name === userArg);
    if (!u) throw invalidParameter(`unable to find user ${userArg}: no matching entries in passwd file`);
    Object.assign(user, u);
    matched = true;
  }
  const additionalGids: number[] = [];
  if (groupArg !== '' || matched) {
    const groups = group !== null ? parseGroup(group) : [];
    if (groupArg !== '') {
      const g = isNumeric(groupArg) ? undefined : groups.find((e) => e.name === groupArg);
      if (g) user.gid = g.gid;
      else if (isNumeric(groupArg)) {
        const gid = Number(groupArg);
        if (gid > MAX_ID) throw invalidParameter(`uids and gids must be in range 0-${MAX_ID}`);
        user.gid = gid;
      } else throw invalidParameter(`unable to find group ${groupArg}: no matching entries in group file`);
    } else {
      for (const g of groups) if (g.members.includes(user.name) && !additionalGids.includes(g.gid)) additionalGids.push(g.gid);
    }
  }
  return { uid: user.uid, gid: user.gid, additionalGids };
}

/** Reads /etc/passwd and /etc/group below `root` (a rootfs, or /proc/<pid>/root) and resolves `spec`. */
export function resolveUserIn(root: string, spec: string | undefined): ResolvedUser {
  const s = (spec ?? '').trim();
  // Numeric "uid:gid" needs no files at all: the common case of `--user 1000:1000` costs nothing.
  if (/^[0-9]+:[0-9]+$/.test(s)) return resolveUser(s, null, null);
  const read = (p: string) => {
    try {
      return fs.readFileSync(path.join(root, p), 'utf8');
    } catch {
      return null;
    }
  };
  return resolveUser(s, read('etc/passwd'), read('etc/group'));
}

// ---------------------------------------------------------------------------- the OCI config

export interface OciOptions {
  cgroupsPath: string;
  user: ResolvedUser;
}

/** config.json for `runc run`: Docker's defaults (namespaces, mounts, capabilities, masked paths). */
export function buildOciConfig(spec: ContainerSpec, opts: OciOptions): Record<string, unknown> {
  const { user } = opts;
  const env = [...spec.env];
  if (spec.tty && !env.some((e) => e.startsWith('TERM='))) env.push('TERM=xterm');
  const namespaces: { type: string; path?: string }[] = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }];
  if (spec.netns !== 'host') namespaces.push({ type: 'network', path: spec.netns });
  const bind = (destination: string, source: string) => ({ destination, type: 'bind', source, options: ['rbind', 'rprivate'] });
  const annotations = spec.labels && Object.keys(spec.labels).length ? { annotations: { ...spec.labels } } : {};
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: spec.tty,
      user: { uid: user.uid, gid: user.gid, ...(user.additionalGids.length ? { additionalGids: user.additionalGids } : {}) },
      args: spec.init ? [INIT_PATH, '--', ...spec.args] : spec.args,
      env,
      cwd: spec.cwd || '/',
      // As Docker: a non-root user gets the bounding set only, as execve would leave it.
      capabilities: user.uid === 0
        ? { bounding: DEFAULT_CAPS, effective: DEFAULT_CAPS, permitted: DEFAULT_CAPS }
        : { bounding: DEFAULT_CAPS },
      noNewPrivileges: false,
    },
    root: { path: 'rootfs', readonly: false },
    hostname: spec.hostname,
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      ...[bind('/etc/resolv.conf', spec.etcFiles.resolvConf), bind('/etc/hostname', spec.etcFiles.hostname), bind('/etc/hosts', spec.etcFiles.hosts)]
        .filter((m) => !spec.mounts?.some((u) => u.destination === m.destination)), // as Docker: a user's mount there wins
      ...(spec.init ? [{ destination: INIT_PATH, type: 'bind', source: spec.init, options: ['bind', 'ro'] }] : []),
      ...(spec.mounts ?? []),
    ],
    ...annotations,
    linux: {
      // Deny all, then runc appends its default allow list (null, zero, full, tty, random, urandom, pts,
      // ptmx, tun, and mknod of any device), which is Docker's.
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      cgroupsPath: opts.cgroupsPath,
      namespaces,
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
    },
  };
}

// ---------------------------------------------------------------------------- runc's output

/**
 * runc's own message from what it printed: JSON log lines (`--log-format json`), logrus text lines
 * (`level=error msg="..."`), or plain text. The last error wins; falls back to the trimmed text.
 */
export function runcMessage(text: string): string {
  let last = '';
  for (const line of text.split('\n')) {
    const l = line.trim();
    if (!l) continue;
    if (l.startsWith('{')) {
      try {
        const o = JSON.parse(l) as { level?: string; msg?: string };
        if ((o.level === 'error' || o.level === 'fatal') && o.msg) last = o.msg;
        continue;
      } catch { /* not JSON */ }
    }
    const m = /level=(?:error|fatal) msg="((?:[^"\\]|\\.)*)"/.exec(l);
    if (m) {
      try {
        last = JSON.parse(`"${m[1]}"`) as string;
      } catch {
        last = m[1]!;
      }
    }
  }
  return last || text.trim();
}

/** The exit status file the shim writes; null when absent or (being written) incomplete. */
export function parseExitFile(text: string): { exitCode: number; finishedAt: string } | null {
  try {
    const o = JSON.parse(text) as { exitCode?: unknown; finishedAt?: unknown };
    if (typeof o.exitCode !== 'number') return null;
    let at = typeof o.finishedAt === 'string' ? o.finishedAt : '';
    // `date` without %N support (busybox) prints a literal N: keep the seconds.
    if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(at)) at = at.replace(/\.[^Z]*Z$/, 'Z');
    if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(at)) at = '';
    return { exitCode: o.exitCode, finishedAt: at };
  } catch {
    return null;
  }
}

/** RFC3339 with nanoseconds, as Docker prints times. */
export function nowRfc3339Nano(d = new Date()): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000000Z');
}

/** Single-quotes a word for sh. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_\-+=/.,:@%]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
