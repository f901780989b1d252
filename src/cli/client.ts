// The CLI's side of the Engine API: plain HTTP over the daemon's unix socket, and hijacked streams.
import http from 'node:http';
import type net from 'node:net';

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

  request(method: string, path: string, body?: unknown, opts: { raw?: NodeJS.ReadableStream; headers?: Record<string, string> } = {}): Promise<{ status: number; body: any; res: http.IncomingMessage }> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { ...(opts.headers ?? {}) };
      let payload: Buffer | undefined;
      if (body !== undefined) {
        payload = Buffer.from(JSON.stringify(body));
        headers['Content-Type'] = 'application/json';
        headers['Content-Length'] = String(payload.length);
      }
      const req = http.request({ ...this.at(), method, path: `/v1.50${path}`, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: any = text;
          if ((res.headers['content-type'] ?? '').includes('json') && text.trim()) {
            try { parsed = JSON.parse(text); } catch { /* keep text */ }
          }
          const status = res.statusCode ?? 0;
          if (status >= 400) reject(new ApiError(status, parsed?.message ?? text));
          else resolve({ status, body: parsed, res });
        });
      });
      req.on('error', (e) => reject(connError(this.socketPath, e)));
      if (opts.raw) opts.raw.pipe(req);
      else req.end(payload);
    });
  }

  /** A streaming GET: returns the response as soon as headers arrive. */
  stream(method: string, path: string, headers: Record<string, string> = {}): Promise<http.IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = http.request({ ...this.at(), method, path: `/v1.50${path}`, headers }, (res) => {
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
      const req = http.request({ ...this.at(), method: 'POST', path: `/v1.50${path}`, headers });
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
