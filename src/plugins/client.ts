// The legacy plugin protocol's client (Docker's pkg/plugins.Client): every call is an HTTP POST of a JSON
// body to /<Method> (e.g. /NetworkDriver.Join) with `Accept: application/vnd.docker.plugins.v1.2+json`,
// over the plugin's unix socket (Host plugin.moby.localhost) or TCP/TLS. A non-200 answer carries
// {"Err": "..."} and becomes "<Method>: <Err>", as in Docker. A plugin that cannot be reached yet (socket
// not listening) is retried with a doubling back-off for a few seconds (Docker: up to 30 s).
import http from 'node:http';
import https from 'node:https';
import fs from 'node:fs';
import type { PluginAddress } from './discovery.ts';

export const VERSION_MIMETYPE = 'application/vnd.docker.plugins.v1.2+json';
const DUMMY_HOST = 'plugin.moby.localhost';

/** An answer of the plugin that is an error: its HTTP status, the method, the plugin's text. */
export class PluginCallError extends Error {
  readonly status: number;
  readonly method: string;
  readonly plugin: string;
  constructor(plugin: string, status: number, method: string, err: string) {
    super(`${method}: ${err}`);
    this.status = status;
    this.method = method;
    this.plugin = plugin;
  }
}

/** The plugin could not be reached (no listener, refused, timed out). */
export class PluginUnreachableError extends Error {
  readonly plugin: string;
  constructor(plugin: string, method: string, addr: string, cause: string) {
    super(`${method}: plugin ${plugin} is not reachable at ${addr}: ${cause}`);
    this.plugin = plugin;
  }
}

export interface ClientOptions {
  /** one request's limit (default 30 s) */
  timeoutMs?: number;
  /** how long connection failures are retried (default 3 s) */
  retryMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Errors of connecting (as opposed to a plugin that answered): worth a retry. */
const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'EPIPE', 'EAGAIN']);

export class PluginClient {
  readonly plugin: PluginAddress;
  private readonly timeoutMs: number;
  private readonly retryMs: number;
  private readonly target: { socketPath?: string; host?: string; port?: number; https: boolean; basePath: string };
  private readonly tlsOpts: https.RequestOptions = {};

  constructor(plugin: PluginAddress, opts: ClientOptions = {}) {
    this.plugin = plugin;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.retryMs = opts.retryMs ?? 3_000;
    const u = new URL(plugin.addr);
    if (u.protocol === 'unix:') this.target = { socketPath: u.pathname, https: false, basePath: '' };
    else if (u.protocol === 'tcp:' || u.protocol === 'http:' || u.protocol === 'https:') {
      // Docker's httpScheme: TLS only for https:// (tcp:// is plain HTTP)
      const tls = u.protocol === 'https:';
      this.target = { host: u.hostname, port: Number(u.port) || (tls ? 443 : 80), https: tls, basePath: u.pathname.replace(/\/$/, '') };
      if (tls && plugin.tls) {
        const t = plugin.tls;
        this.tlsOpts = {
          rejectUnauthorized: !t.InsecureSkipVerify,
          ...(t.CAFile ? { ca: fs.readFileSync(t.CAFile) } : {}),
          ...(t.CertFile ? { cert: fs.readFileSync(t.CertFile) } : {}),
          ...(t.KeyFile ? { key: fs.readFileSync(t.KeyFile) } : {}),
        };
      }
    } else throw new Error(`plugin ${plugin.name}: unsupported address ${plugin.addr}`);
  }

  /**
   * Calls `method` with `args` (no body when undefined, as Docker sends for GetCapabilities) and
   * returns the decoded answer ({} for an empty one).
   */
  async call<T = Record<string, unknown>>(method: string, args?: unknown): Promise<T> {
    // Go's json.Encoder ends the document with a newline
    const body = args === undefined || args === null ? '' : `${JSON.stringify(args)}\n`;
    const start = Date.now();
    for (let delay = 100; ; delay *= 2) {
      try {
        return await this.once<T>(method, body);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (!code || !CONNECT_ERRORS.has(code) || Date.now() - start + delay > this.retryMs) {
          if (e instanceof PluginCallError || e instanceof PluginUnreachableError) throw e;
          throw new PluginUnreachableError(this.plugin.name, method, this.plugin.addr, (e as Error).message);
        }
        await sleep(delay);
      }
    }
  }

  private once<T>(method: string, body: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const t = this.target;
      const headers: http.OutgoingHttpHeaders = { Accept: VERSION_MIMETYPE, 'Content-Length': Buffer.byteLength(body) };
      if (body) headers['Content-Type'] = VERSION_MIMETYPE;
      const opts: http.RequestOptions = {
        method: 'POST',
        path: `${t.basePath}/${method}`,
        headers: { ...headers, Host: t.socketPath ? DUMMY_HOST : `${t.host}:${t.port}` },
        timeout: this.timeoutMs,
        ...(t.socketPath ? { socketPath: t.socketPath } : { host: t.host, port: t.port }),
        agent: false,
      };
      const req = (t.https ? https : http).request(t.https ? { ...opts, ...this.tlsOpts } : opts, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) {
            let err = text.trim();
            try {
              const j = JSON.parse(text) as { Err?: string };
              if (j && typeof j.Err === 'string' && j.Err) err = j.Err;
            } catch { /* not JSON: the text itself */ }
            reject(new PluginCallError(this.plugin.name, res.statusCode ?? 0, method, err));
            return;
          }
          if (!text.trim()) return resolve({} as T);
          try {
            resolve(JSON.parse(text) as T);
          } catch (e) {
            reject(new PluginCallError(this.plugin.name, 200, method, `error reading plugin resp: ${(e as Error).message}`));
          }
        });
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${this.timeoutMs} ms`), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
      req.end(body);
    });
  }
}
