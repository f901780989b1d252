// The CLI's side of the Engine API: plain HTTP over the daemon's unix socket, and hijacked streams.
import type http from 'node:http';
import type net from 'node:net';

/**
 * node:http only when a command streams or hijacks: loading it (agent, client, parser) is ~10 ms of a
 * ~60 ms CLI call, and the plain requests of ps, version, run -d, rm -f... go over `node:net` below.
 */
const httpModule = (): typeof http => process.getBuiltinModule('node:http');

export class ApiError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export class Client {
  readonly socketPath: string;
  constructor(socketPath: string) {
    this.socketPath = socketPath;
  }

  /**
   * Where a request goes: the socket, and an empty TLS server name. Without it Node's agent works out a
   * server name from the host ('localhost') with net.isIP, whose first call compiles the IPv6 regular
   * expression: ~10 ms of a CLI call's ~50 for a name a unix socket never uses.
   */
  at(): { socketPath: string; servername: string } {
    return { socketPath: this.socketPath, servername: '' };
  }

  request(method: string, path: string, body?: unknown, opts: { raw?: NodeJS.ReadableStream; headers?: Record<string, string> } = {}): Promise<{ status: number; body: any; res: Reply }> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { ...(opts.headers ?? {}) };
      let payload: Buffer | undefined;
      if (body !== undefined) {
        payload = Buffer.from(JSON.stringify(body));
        headers['Content-Type'] = 'application/json';
        headers['Content-Length'] = String(payload.length);
      }
      const done = (res: Reply, raw: Buffer) => {
        const text = raw.toString('utf8');
        let parsed: any = text;
        if (String(res.headers['content-type'] ?? '').includes('json') && text.trim()) {
          try { parsed = JSON.parse(text); } catch { /* keep text */ }
        }
        const status = res.statusCode ?? 0;
        if (status >= 400) reject(new ApiError(status, parsed?.message ?? text));
        else resolve({ status, body: parsed, res });
      };
      if (!opts.raw) {
        plainRequest(this.socketPath, method, `/v1.50${path}`, headers, payload).then((r) => done(r, r.body), (e) => reject(connError(this.socketPath, e)));
        return;
      }
      const req = httpModule().request({ ...this.at(), method, path: `/v1.50${path}`, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => done(res, Buffer.concat(chunks)));
      });
      req.on('error', (e) => reject(connError(this.socketPath, e)));
      opts.raw.pipe(req);
    });
  }

  /** A streaming GET: returns the response as soon as headers arrive. */
  stream(method: string, path: string, headers: Record<string, string> = {}): Promise<http.IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = httpModule().request({ ...this.at(), method, path: `/v1.50${path}`, headers }, (res) => {
        if ((res.statusCode ?? 0) >= 400) {
          rejectWithBody(res, reject);
          return;
        }
        resolve(res);
      });
      req.on('error', (e) => reject(connError(this.socketPath, e)));
      req.end();
    });
  }

  /** POST with Upgrade: tcp; resolves with the raw socket once the daemon answers 101. */
  hijack(path: string, body?: unknown): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const payload = body !== undefined ? Buffer.from(JSON.stringify(body)) : undefined;
      const headers: Record<string, string> = { Connection: 'Upgrade', Upgrade: 'tcp' };
      if (payload) {
        headers['Content-Type'] = 'application/json';
        headers['Content-Length'] = String(payload.length);
      }
      const req = httpModule().request({ ...this.at(), method: 'POST', path: `/v1.50${path}`, headers });
      req.on('upgrade', (_res, socket, head) => {
        if (head.length) socket.unshift(head);
        resolve(socket);
      });
      req.on('response', (res) => rejectWithBody(res, reject));
      req.on('error', (e) => reject(connError(this.socketPath, e)));
      req.end(payload);
    });
  }
}

/** An error response: Docker's `{"message"}` (or the plain text) becomes an ApiError. */
function rejectWithBody(res: http.IncomingMessage, reject: (e: Error) => void): void {
  const chunks: Buffer[] = [];
  res.on('data', (c) => chunks.push(c));
  res.on('end', () => {
    const t = Buffer.concat(chunks).toString();
    let m = t;
    try { m = JSON.parse(t).message; } catch { /* text */ }
    reject(new ApiError(res.statusCode ?? 500, m));
  });
}

function connError(sock: string, e: Error): Error {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ECONNREFUSED') {
    return new ApiError(0, `Cannot connect to the loom daemon at unix://${sock}. Is the loom daemon running?`);
  }
  return e;
}

/** Splits Docker's multiplexed stream into stdout/stderr writes. */
export function demux(sock: NodeJS.ReadableStream, out: (b: Buffer) => void, err: (b: Buffer) => void): void {
  let buf: Buffer = Buffer.alloc(0);
  sock.on('data', (chunk: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    while (buf.length >= 8) {
      const size = buf.readUInt32BE(4);
      if (buf.length < 8 + size) break;
      const payload = buf.subarray(8, 8 + size);
      (buf[0] === 2 ? err : out)(payload);
      buf = buf.subarray(8 + size);
    }
  });
}

/** What a plain request's caller sees of the response (an http.IncomingMessage has the same fields). */
export interface Reply { statusCode?: number; headers: http.IncomingHttpHeaders }

/**
 * One HTTP/1.1 request on its own connection (Connection: close) over `node:net`, the whole response
 * read: status, headers (lower-cased; repeated ones joined with ", " as Node does), and a body delimited
 * by Content-Length, chunked transfer coding, or the end of the connection. For the daemon's plain JSON
 * answers only; streams and hijacks use node:http.
 */
export function plainRequest(socketPath: string, method: string, path: string, headers: Record<string, string>, payload?: Buffer): Promise<Reply & { body: Buffer }> {
  return new Promise((resolve, reject) => {
    const net = process.getBuiltinModule('node:net');
    const sock = net.createConnection(socketPath);
    const chunks: Buffer[] = [];
    let settled = false;
    const fail = (e: Error) => {
      if (settled) return;
      settled = true;
      sock.destroy();
      reject(e);
    };
    sock.on('error', fail);
    sock.on('connect', () => {
      let head = `${method} ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n`;
      for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
      if (payload === undefined && (method === 'POST' || method === 'PUT')) head += 'Content-Length: 0\r\n';
      // write, not end: a Node server that sees the client's half-close drops requests it is still answering
      sock.write(payload ? Buffer.concat([Buffer.from(`${head}\r\n`), payload]) : `${head}\r\n`);
    });
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('end', () => {
      if (settled) return;
      try {
        const r = parseResponse(Buffer.concat(chunks), method === 'HEAD');
        settled = true;
        resolve(r);
      } catch (e) {
        fail(e as Error);
      }
    });
  });
}

/** A whole HTTP/1.1 response (the connection closed after it). Throws on a malformed one. */
export function parseResponse(all: Buffer, head: boolean): Reply & { body: Buffer } {
  const end = all.indexOf('\r\n\r\n');
  if (end < 0) throw new Error('the daemon closed the connection before a complete HTTP response');
  const lines = all.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]!);
  if (!m) throw new Error(`not an HTTP response: ${lines[0]!.slice(0, 80)}`);
  const statusCode = Number(m[1]);
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i <= 0) continue;
    const k = l.slice(0, i).trim().toLowerCase(), v = l.slice(i + 1).trim();
    headers[k] = k in headers ? `${headers[k]}, ${v}` : v;
  }
  let rest = all.subarray(end + 4);
  if (head || statusCode === 204 || statusCode === 304 || (statusCode >= 100 && statusCode < 200)) return { statusCode, headers, body: Buffer.alloc(0) };
  if (/\bchunked\b/i.test(headers['transfer-encoding'] ?? '')) {
    const parts: Buffer[] = [];
    for (;;) {
      const nl = rest.indexOf('\r\n');
      if (nl < 0) throw new Error('truncated chunked response from the daemon');
      const size = parseInt(rest.subarray(0, nl).toString('latin1').split(';')[0]!, 16);
      if (!Number.isFinite(size)) throw new Error('malformed chunked response from the daemon');
      if (size === 0) break;
      if (rest.length < nl + 2 + size) throw new Error('truncated chunked response from the daemon');
      parts.push(rest.subarray(nl + 2, nl + 2 + size));
      rest = rest.subarray(nl + 2 + size + 2);
    }
    return { statusCode, headers, body: Buffer.concat(parts) };
  }
  const cl = headers['content-length'];
  if (cl !== undefined) {
    const n = Number(cl);
    if (rest.length < n) throw new Error('truncated response from the daemon');
    return { statusCode, headers, body: rest.subarray(0, n) };
  }
  return { statusCode, headers, body: rest };
}
