// A minimal Docker Engine API client over a unix socket, the same for loom and dockerd so that the API
// figures compare the daemons, not two clients. Keep-alive, as the docker CLI's client does within one
// invocation.
import http from 'node:http';

export interface ApiReply { status: number; body: string; json<T = unknown>(): T }

export class Api {
  readonly socket: string;
  private readonly agent: http.Agent;
  private readonly prefix: string;

  constructor(socket: string, version = '1.41') {
    this.socket = socket;
    this.prefix = `/v${version}`;
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  }

  request(method: string, path: string, body?: unknown, timeoutMs = 120_000): Promise<ApiReply> {
    return new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = http.request({
        socketPath: this.socket, agent: this.agent, method, path: path === '/_ping' ? path : this.prefix + path,
        headers: { Host: 'docker', ...(data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {}) },
        timeout: timeoutMs,
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          resolve({ status: res.statusCode ?? 0, body: text, json: <T>() => JSON.parse(text) as T });
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
      req.on('error', reject);
      req.end(data);
    });
  }

  /** The request, which must answer 2xx; returns the parsed body (or null when empty). */
  async ok<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const r = await this.request(method, path, body);
    if (r.status < 200 || r.status >= 300) throw new Error(`${method} ${path} → ${r.status}: ${r.body.trim().slice(0, 500)}`);
    return (r.body ? JSON.parse(r.body) : null) as T;
  }

  async ping(): Promise<boolean> {
    try {
      return (await this.request('GET', '/_ping', undefined, 2000)).status === 200;
    } catch {
      return false;
    }
  }

  /** create + start, as `docker run -d` does; returns the id */
  async run(body: Record<string, unknown>, name?: string): Promise<string> {
    const { Id } = await this.ok<{ Id: string }>('POST', `/containers/create${name ? `?name=${encodeURIComponent(name)}` : ''}`, body);
    await this.ok('POST', `/containers/${Id}/start`);
    return Id;
  }

  async rmf(id: string): Promise<void> {
    await this.ok('DELETE', `/containers/${id}?force=1`);
  }

  close(): void {
    this.agent.destroy();
  }
}
