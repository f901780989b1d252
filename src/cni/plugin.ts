// The `loom` CNI plugin (bin/loom-cni), per the CNI spec 1.1 (and 1.0, 0.4.0, 0.3.x results): the runtime
// runs it with CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH in the environment
// and the network config on stdin, e.g.
//   {"cniVersion": "1.0.0", "name": "app", "type": "loom", "network": "app", "socket": "/run/loom/loom.sock"}
// It does nothing itself: it hands its environment and stdin to the local loom daemon (POST /loom/cni/exec),
// which runs runPlugin() below in process (attaching the namespace with loom's IPAM, firewall and embedded
// DNS) and answers with what goes to stdout and the exit code; the client prints it. Two clients speak
// that: this file (Node: portable, but its start alone takes tens of milliseconds) and src/cni/loom-cni.c
// (scripts/setup builds it into .cache/bin/loom-cni: a plain C pipe, so a CNI ADD costs about what the
// daemon's attach does). VERSION, and a daemon that does not answer, are answered by the client itself.
import http from 'node:http';

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];

/** The spec's well-known error codes (and loom's own, from 100). */
export const CNI_ERR = {
  incompatibleVersion: 1, unsupportedField: 2, unknownContainer: 3, invalidEnv: 4, io: 5, decode: 6, invalidConfig: 7,
  tryAgainLater: 11, notAvailable: 50, limitedConnectivity: 51, loom: 100, exists: 101,
} as const;

export class CniError extends Error {
  readonly code: number;
  readonly details: string;
  constructor(code: number, msg: string, details = '') {
    super(msg);
    this.code = code;
    this.details = details;
  }
}

interface NetConf {
  cniVersion?: string;
  name?: string;
  type?: string;
  network?: string;
  socket?: string;
  prevResult?: any;
  'cni.dev/valid-attachments'?: { containerID: string; ifname: string }[];
}

export interface PluginIo {
  env: NodeJS.ProcessEnv;
  stdin: string;
}

/** One request to the daemon's attachments (op: add, del, check, gc, status); errors are CniErrors. */
export type CniCall = (op: string, body: any) => Promise<any>;

/** The CNI environment variables the clients pass on (as `Cni-*` headers of POST /loom/cni/exec). */
export const CNI_ENV = ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_ARGS', 'CNI_PATH'] as const;

/** Runs one plugin invocation; returns what goes to stdout and the exit code. */
export async function runPlugin(io: PluginIo, callDaemon?: CniCall): Promise<{ out: string; code: number }> {
  let version = '1.1.0';
  try {
    const cmd = io.env.CNI_COMMAND ?? '';
    let conf: NetConf = {};
    if (io.stdin.trim()) {
      try {
        conf = JSON.parse(io.stdin);
      } catch (e) {
        throw new CniError(CNI_ERR.decode, 'failed to decode the network configuration', (e as Error).message);
      }
    } else if (cmd !== 'VERSION') throw new CniError(CNI_ERR.decode, 'no network configuration on stdin');
    if (conf.cniVersion) version = conf.cniVersion;
    if (cmd === 'VERSION') return { out: json({ cniVersion: version, supportedVersions: SUPPORTED_VERSIONS }), code: 0 };
    if (!SUPPORTED_VERSIONS.includes(version)) {
      const v = version;
      version = '1.1.0';
      throw new CniError(CNI_ERR.incompatibleVersion, `incompatible CNI versions: config is "${v}", plugin supports ${JSON.stringify(SUPPORTED_VERSIONS)}`);
    }
    if (conf.type && conf.type !== 'loom') throw new CniError(CNI_ERR.invalidConfig, `plugin type "${conf.type}" is not loom`);
    const socket = socketOf(conf, io.env);
    const call: CniCall = callDaemon ?? ((op, body) => httpCall(socket, op, body));
    const network = conf.network ?? '';
    if (!network && cmd !== 'VERSION') throw new CniError(CNI_ERR.invalidConfig, 'the network configuration names no loom network ("network": "NAME")');
    switch (cmd) {
      case 'ADD': {
        const req = requestFrom(io.env, network, true);
        const r = await call('add', req);
        return { out: json(chain(version, conf.prevResult, r)), code: 0 };
      }
      case 'DEL':
        // DEL may come without a namespace (it is gone) and must succeed when nothing is left
        await call('del', requestFrom(io.env, network, false));
        return { out: '', code: 0 };
      case 'CHECK':
        if (version.startsWith('0.3')) throw new CniError(CNI_ERR.incompatibleVersion, `CHECK is not defined for CNI version ${version}`);
        if (!conf.prevResult) throw new CniError(CNI_ERR.invalidConfig, 'CHECK needs the prevResult of the ADD');
        await call('check', requestFrom(io.env, network, true));
        return { out: '', code: 0 };
      case 'STATUS':
        // the spec's STATUS errors: 50, the plugin cannot take ADDs now (no daemon, no such network)
        await call('status', { network }).catch((e) => {
          throw e instanceof CniError ? new CniError(CNI_ERR.notAvailable, e.message, e.details) : e;
        });
        return { out: '', code: 0 };
      case 'GC':
        await call('gc', { network, validAttachments: conf['cni.dev/valid-attachments'] ?? [] });
        return { out: '', code: 0 };
      case '':
        throw new CniError(CNI_ERR.invalidEnv, 'CNI_COMMAND is not set');
      default:
        throw new CniError(CNI_ERR.invalidEnv, `unknown CNI_COMMAND ${cmd}`);
    }
  } catch (e) {
    const err = e instanceof CniError ? e : new CniError(CNI_ERR.loom, (e as Error).message);
    return { out: json({ cniVersion: version, code: err.code, msg: err.message, ...(err.details ? { details: err.details } : {}) }), code: 1 };
  }
}

function requestFrom(env: NodeJS.ProcessEnv, network: string, needNetns: boolean) {
  const containerId = env.CNI_CONTAINERID ?? '';
  const ifname = env.CNI_IFNAME ?? '';
  const netns = env.CNI_NETNS ?? '';
  if (!containerId) throw new CniError(CNI_ERR.invalidEnv, 'CNI_CONTAINERID is not set');
  if (!ifname) throw new CniError(CNI_ERR.invalidEnv, 'CNI_IFNAME is not set');
  if (needNetns && !netns) throw new CniError(CNI_ERR.invalidEnv, 'CNI_NETNS is not set');
  return { containerId, ifname, netns, network, args: parseArgs(env.CNI_ARGS ?? '') };
}

/** CNI_ARGS: "K1=V1;K2=V2". */
export function parseArgs(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of s.split(';')) {
    const i = kv.indexOf('=');
    if (i > 0) out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

/**
 * This plugin's result after the previous plugins': their interfaces, ips and routes first, loom's
 * appended (its ips pointing at its interface's new index), the DNS of the first that set any. Older
 * versions' shapes: 0.3.x/0.4.0 ips carry "version".
 */
export function chain(version: string, prev: any, mine: any): any {
  const base = prev && typeof prev === 'object' ? prev : {};
  const interfaces = [...(base.interfaces ?? [])];
  const offset = interfaces.length;
  interfaces.push(...(mine.interfaces ?? []));
  const old = version.startsWith('0.');
  const ips = [...(base.ips ?? []), ...(mine.ips ?? []).map((ip: any) => ({ ...ip, interface: ip.interface + offset }))]
    .map((ip: any) => {
      const { version: _v, ...rest } = ip;
      return old ? { version: ip.address.includes(':') ? '6' : '4', ...rest } : rest;
    });
  const routes = [...(base.routes ?? []), ...(mine.routes ?? [])];
  const dns = base.dns && Object.keys(base.dns).length ? base.dns : mine.dns ?? {};
  return { cniVersion: version, interfaces, ips, routes, dns };
}

/** Where the daemon is: the config's "socket", else $LOOM_SOCKET, else loom's default. */
function socketOf(conf: { socket?: string }, env: NodeJS.ProcessEnv): string {
  return conf.socket || env.LOOM_SOCKET || '/run/loom/loom.sock';
}

/** The CNI error code of a daemon answer's HTTP status (and message). */
export function cniCodeOf(status: number, op: string, msg: string): number {
  return status === 404 && op !== 'check' ? CNI_ERR.invalidConfig
    : status === 404 ? CNI_ERR.unknownContainer
    : status === 409 ? CNI_ERR.exists
    : status === 400 && /CNI_/.test(msg) ? CNI_ERR.invalidEnv
    : status === 400 ? CNI_ERR.invalidConfig
    : status === 503 ? CNI_ERR.tryAgainLater
    : CNI_ERR.loom;
}

/** One request to the daemon's per-operation routes (POST /loom/cni/{op}); its errors become CNI errors. */
function httpCall(socket: string, op: string, body: unknown): Promise<any> {
  return new Promise((resolve, reject) => {
    const data = Buffer.from(JSON.stringify(body));
    const req = http.request({ socketPath: socket, method: 'POST', path: `/loom/cni/${op}`, headers: { 'Content-Type': 'application/json', 'Content-Length': data.length } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => {
        let b: any = null;
        try { b = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
        const status = res.statusCode ?? 0;
        if (status < 300) return resolve(b);
        const msg = b?.message ?? text.trim() ?? `status ${status}`;
        reject(new CniError(cniCodeOf(status, op, msg), msg));
      });
    });
    req.on('error', (e) => reject(new CniError(CNI_ERR.tryAgainLater, `the loom daemon at ${socket} is not answering`, e.message)));
    req.end(data);
  });
}

const json = (v: unknown) => `${JSON.stringify(v)}\n`;

/**
 * The client: the invocation goes to the daemon whole (POST /loom/cni/exec, stdin as the body, the CNI_*
 * variables as Cni-* headers), which answers with the plugin's stdout and its exit code (Cni-Exit).
 */
export async function client(io: PluginIo): Promise<{ out: string; code: number }> {
  // VERSION, and a config that is no JSON (where the daemon is may be in it), are answered here
  if (io.env.CNI_COMMAND === 'VERSION' || !io.stdin.trim()) return runPlugin(io, () => Promise.reject(new Error('no daemon needed')));
  let conf: { cniVersion?: string; socket?: string };
  try { conf = JSON.parse(io.stdin); } catch { return runPlugin(io, () => Promise.reject(new Error('no daemon needed'))); }
  const socket = socketOf(conf, io.env);
  const headers: Record<string, string | number> = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(io.stdin) };
  for (const k of CNI_ENV) if (io.env[k] !== undefined) headers[k.replace(/_/g, '-')] = io.env[k]!;
  return new Promise((resolve) => {
    const req = http.request({ socketPath: socket, method: 'POST', path: '/loom/cni/exec', headers }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => {
        const exit = Number(res.headers['cni-exit']);
        if (res.statusCode === 200 && Number.isInteger(exit)) return resolve({ out: text, code: exit });
        let msg = text.trim();
        try { msg = JSON.parse(text).message ?? msg; } catch { /* not JSON */ }
        resolve(failure(conf, CNI_ERR.loom, `the loom daemon at ${socket} answered ${res.statusCode}: ${msg}`));
      });
    });
    req.on('error', (e) => resolve(failure(conf, CNI_ERR.tryAgainLater, `the loom daemon at ${socket} is not answering`, e.message)));
    req.end(io.stdin);
  });
}

function failure(conf: { cniVersion?: string }, code: number, msg: string, details = ''): { out: string; code: number } {
  const v = typeof conf.cniVersion === 'string' && SUPPORTED_VERSIONS.includes(conf.cniVersion) ? conf.cniVersion : '1.1.0';
  return { out: json({ cniVersion: v, code, msg, ...(details ? { details } : {}) }), code: 1 };
}

if (import.meta.main) {
  const chunks: Buffer[] = [];
  process.stdin.on('data', (c: Buffer) => chunks.push(c));
  process.stdin.on('end', async () => {
    const r = await client({ env: process.env, stdin: Buffer.concat(chunks).toString() });
    process.stdout.write(r.out);
    process.exitCode = r.code;
  });
}
