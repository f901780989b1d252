// The Docker Engine API (the subset loom implements) over a unix socket, with node:http.
// Streams (attach, exec, logs) use Docker's framing: an 8-byte header [stream, 0, 0, 0, size32be] per
// chunk when the container has no TTY, raw bytes otherwise. attach and exec start hijack the connection
// (HTTP 101 Upgrade: tcp), as the docker CLI expects.
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import type { Daemon } from '../daemon.ts';
import { messageOf, statusOf } from '../util/errors.ts';
import { MAX_JSON_BODY, checkForJson, parseJsonBody, tooLarge } from './jsonbody.ts';
import { routes, STREAMED, json, noContent, API_VERSION, MIN_API_VERSION, LOOM_VERSION, type Ctx, type Handler, type Params } from './router.ts';
import './routes/system.ts';
import './routes/containers.ts';
import './routes/exec.ts';
import './routes/images.ts';
import './routes/networks.ts';
import './routes/volumes.ts';
import './routes/registry.ts';
import './routes/build.ts';
import './routes/archive.ts';
import './routes/loom.ts';
import './routes/nodes.ts';
import './routes/cni.ts';

export { API_VERSION, MIN_API_VERSION, LOOM_VERSION, STREAMED };
export { frame } from './router.ts';

async function readBody(req: http.IncomingMessage, res: http.ServerResponse): Promise<any> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  const chunked = req.headers['transfer-encoding'] !== undefined;
  checkForJson(req.headers, chunked || declared > 0);
  const refuse = () => {
    // the rest of the body is not read: the connection goes after the answer
    res.setHeader('Connection', 'close');
    return tooLarge();
  };
  if (declared > MAX_JSON_BODY) throw refuse();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_JSON_BODY) throw refuse();
    chunks.push(c as Buffer);
  }
  return parseJsonBody(Buffer.concat(chunks).toString('utf8'));
}

/** A hijacked request's body arrives with the raw stream: take Content-Length bytes, keep the rest. */
async function readUpgradeBody(ctx: Ctx): Promise<any> {
  const len = Number(ctx.req.headers['content-length'] ?? 0);
  checkForJson(ctx.req.headers, len > 0);
  if (len > MAX_JSON_BODY) throw tooLarge();
  let buf = ctx.head ?? Buffer.alloc(0);
  while (buf.length < len) {
    const chunk = await new Promise<Buffer | null>((resolve) => {
      const onData = (b: Buffer) => { cleanup(); resolve(b); };
      const onEnd = () => { cleanup(); resolve(null); };
      const cleanup = () => { ctx.socket!.off('data', onData); ctx.socket!.off('end', onEnd); ctx.socket!.pause(); };
      ctx.socket!.on('data', onData);
      ctx.socket!.on('end', onEnd);
      ctx.socket!.resume();
    });
    if (!chunk) break;
    buf = Buffer.concat([buf, chunk]);
  }
  ctx.head = buf.subarray(len);
  return parseJsonBody(buf.subarray(0, len).toString('utf8'));
}

async function dispatch(d: Daemon, req: http.IncomingMessage, res: http.ServerResponse, socket?: net.Socket, head?: Buffer): Promise<void> {
  // An absolute-form request line (`GET http://[::1/...`) or any URL WHATWG cannot parse is a 400, not a crash.
  let url: URL;
  try {
    const raw = req.url ?? '/';
    url = new URL(raw.startsWith('/') ? raw : new URL(raw).pathname + new URL(raw).search, 'http://loom');
  } catch {
    return fail(res, socket, 400, `invalid request URI: ${JSON.stringify(req.url ?? '')}`);
  }
  let p = url.pathname;
  const vm = /^\/v(\d+\.\d+)(\/.*)$/.exec(p);
  if (vm) {
    if (versionAbove(vm[1]!, API_VERSION)) {
      return fail(res, socket, 400, `client version ${vm[1]} is too new. Maximum supported API version is ${API_VERSION}`);
    }
    if (versionAbove(MIN_API_VERSION, vm[1]!)) {
      return fail(res, socket, 400, `client version ${vm[1]} is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`);
    }
    p = vm[2]!;
  }
  const method = req.method === 'HEAD' && p !== '/_ping' ? 'GET' : req.method!;
  let found: { fn: Handler; params: Params } | undefined;
  let pathMatched = false;
  for (const r of routes) {
    const m = r.re.exec(p);
    if (!m) continue;
    pathMatched = true;
    if (r.method !== method) continue;
    const params: Params = {};
    for (const [i, k] of r.keys.entries()) {
      const v = decodePathParam(m[i + 1]!);
      if (v === undefined) return fail(res, socket, 400, `invalid escape in path: ${JSON.stringify(m[i + 1])}`);
      params[k] = v;
    }
    found = { fn: r.fn, params };
    break;
  }
  if (!found) {
    // every miss at info level: the next endpoint a client needs shows in the daemon's log
    d.log.info({ method: req.method, path: p, status: pathMatched ? 405 : 404 }, 'api: no such route');
    return fail(res, socket, pathMatched ? 405 : 404, pathMatched ? 'method not allowed' : `page not found`);
  }
  const ctx: Ctx = { req, res, params: found.params, query: url.searchParams, body: () => readBody(req, res), socket, head };
  if (socket) ctx.body = () => readUpgradeBody(ctx);
  const t0 = process.hrtime.bigint();
  try {
    const out = await found.fn(d, ctx);
    if (out !== STREAMED && !res.headersSent) json(res, 200, out);
    d.log.debug({ method: req.method, path: p, ms: Number(process.hrtime.bigint() - t0) / 1e6 }, 'api');
  } catch (e) {
    const status = statusOf(e);
    if (status >= 500) d.log.error({ method: req.method, path: p, err: messageOf(e), stack: (e as Error).stack }, 'api error');
    else d.log.debug({ method: req.method, path: p, status, err: messageOf(e) }, 'api refused');
    if (status === 304) {
      if (!res.headersSent) noContent(res, 304);
      return;
    }
    fail(res, socket, status, messageOf(e));
  }
}

/** API versions compare by their numbers: 1.9 is older than 1.24. */
function versionAbove(a: string, b: string): boolean {
  const [a1 = 0, a2 = 0] = a.split('.').map(Number);
  const [b1 = 0, b2 = 0] = b.split('.').map(Number);
  return a1 !== b1 ? a1 > b1 : a2 > b2;
}

/** A path segment as text: bad percent-escapes and invalid UTF-8 give undefined (Go's PathUnescape fails too). */
function decodePathParam(s: string): string | undefined {
  if (/%(?![0-9a-fA-F]{2})/.test(s)) return undefined;
  try {
    const bytes = Buffer.from(s.replace(/%([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1');
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

/** Whatever escaped a handler: logged with the request and answered 500; the daemon goes on. */
function lastResort(d: Daemon, req: http.IncomingMessage, res: http.ServerResponse, socket: net.Socket | undefined, e: unknown): void {
  d.log.error({ method: req.method, url: req.url, err: messageOf(e), stack: (e as Error)?.stack }, 'api: unexpected error');
  try {
    fail(res, socket, 500, messageOf(e));
  } catch {
    (socket ?? req.socket)?.destroy();
  }
}

function fail(res: http.ServerResponse, socket: net.Socket | undefined, status: number, message: string): void {
  const body = JSON.stringify({ message }) + '\n';
  if (socket) {
    socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'Error'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    return;
  }
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/** TLS for a TCP listener (dockerd's --tls/--tlsverify): with `verify`, clients must show a cert the CA signed. */
export interface ApiTls { key: Buffer; cert: Buffer; ca?: Buffer; verify: boolean }

export function createApiServer(d: Daemon, tls?: ApiTls): http.Server {
  // Go's http.DefaultMaxHeaderBytes (1 MiB), as dockerd: long filter values in the query still fit
  const opts = { keepAliveTimeout: 5000, maxHeaderSize: 1 << 20 };
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    res.setHeader('Api-Version', API_VERSION);
    res.setHeader('Docker-Experimental', 'false');
    res.setHeader('Ostype', 'linux');
    res.setHeader('Server', `loom/${LOOM_VERSION} (linux)`);
    dispatch(d, req, res).catch((e) => lastResort(d, req, res, undefined, e));
  };
  // allowHalfOpen: the docker CLI half-closes a hijacked connection when its stdin ends (over TLS a
  // close_notify); the container's output must still flow the other way, as over the unix socket
  const server: http.Server = tls
    ? https.createServer({ ...opts, allowHalfOpen: true, key: tls.key, cert: tls.cert, ca: tls.ca, requestCert: tls.verify, rejectUnauthorized: tls.verify, minVersion: 'TLSv1.2' }, handler)
    : http.createServer(opts, handler);
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    socket.on('error', () => {});
    const res = new http.ServerResponse(req);
    dispatch(d, req, res, socket, head).catch((e) => lastResort(d, req, res, socket, e));
  });
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  // Every connection, also hijacked ones (attach, exec, events) that closeAllConnections() does not know
  // about: a daemon that stops must not wait for clients that never hang up.
  const conns = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    conns.add(s);
    s.once('close', () => conns.delete(s));
  });
  const close = server.close.bind(server);
  server.close = ((cb?: (err?: Error) => void) => {
    close(cb);
    for (const s of conns) s.destroy();
    return server;
  }) as typeof server.close;
  return server;
}
