// An OVSDB client (RFC 7047: JSON-RPC over a stream socket), for the openvswitch driver: one connection to
// ovsdb-server's unix socket, `transact` for every change (not a shell-out to ovs-vsctl per operation), and
// the server's `echo` keepalives answered. Hand-written: the npm packages for OVSDB are unmaintained and
// the protocol needs little more than framing of concatenated JSON texts.
import net from 'node:net';

export type OvsdbOp = Record<string, unknown>;

interface Pending { resolve(v: unknown): void; reject(e: Error): void }

export class OvsdbError extends Error {}

export class Ovsdb {
  private readonly sock: net.Socket;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private buf = '';
  private closed = false;

  private constructor(sock: net.Socket) {
    this.sock = sock;
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => this.onData(d));
    const fail = (why: string) => {
      this.closed = true;
      for (const p of this.pending.values()) p.reject(new OvsdbError(`ovsdb-server: ${why}`));
      this.pending.clear();
    };
    sock.on('error', (e) => fail(String(e.message)));
    sock.on('close', () => fail('connection closed'));
  }

  static connect(path: string): Promise<Ovsdb> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection(path);
      s.once('connect', () => resolve(new Ovsdb(s)));
      s.once('error', reject);
    });
  }

  close(): void {
    this.closed = true;
    this.sock.destroy();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Splits the stream into whole JSON texts (the server sends them back to back, no delimiter). */
  private onData(d: string): void {
    this.buf += d;
    let depth = 0, inStr = false, esc = false, start = 0;
    for (let i = 0; i < this.buf.length; i++) {
      const c = this.buf[i];
      if (inStr) {
        if (esc) esc = false;
        else if (c === '\\') esc = true;
        else if (c === '"') inStr = false;
      } else if (c === '"') inStr = true;
      else if (c === '{' || c === '[') depth++;
      else if (c === '}' || c === ']') {
        if (--depth === 0) {
          this.onMessage(JSON.parse(this.buf.slice(start, i + 1)));
          start = i + 1;
        }
      }
    }
    this.buf = this.buf.slice(start);
  }

  private onMessage(m: { id: unknown; method?: string; params?: unknown; result?: unknown; error?: unknown }): void {
    if (m.method === 'echo') {
      this.sock.write(JSON.stringify({ id: m.id, result: m.params, error: null }));
      return;
    }
    if (m.method === 'update') {
      // a monitor's notification: [monitor id, {table: {uuid: {old?, new?}}}]
      const [, updates] = m.params as [unknown, Record<string, Record<string, { new?: Record<string, unknown> }>>];
      this.onUpdate?.(updates);
      return;
    }
    const p = typeof m.id === 'number' ? this.pending.get(m.id) : undefined;
    if (!p) return;
    this.pending.delete(m.id as number);
    if (m.error) p.reject(new OvsdbError(`ovsdb-server: ${JSON.stringify(m.error)}`));
    else p.resolve(m.result);
  }

  /** called with the table updates of every monitor notification (see monitor()) */
  onUpdate: ((updates: Record<string, Record<string, { new?: Record<string, unknown> }>>) => void) | null = null;

  /**
   * Monitors columns of tables (RFC 7047 4.1.5): returns their current rows; later changes arrive as
   * onUpdate. Cheaper than polling a value a daemon sets, such as ovs-vswitchd's cur_cfg.
   */
  async monitor(tables: Record<string, string[]>): Promise<Record<string, Record<string, { new?: Record<string, unknown> }>>> {
    const req = Object.fromEntries(Object.entries(tables).map(([t, columns]) => [t, { columns }]));
    return (await this.request('monitor', ['Open_vSwitch', null, req])) as Record<string, Record<string, { new?: Record<string, unknown> }>>;
  }

  request(method: string, params: unknown[]): Promise<unknown> {
    if (this.closed) return Promise.reject(new OvsdbError('ovsdb-server: connection closed'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.sock.write(JSON.stringify({ method, params, id }));
    });
  }

  /** One transaction on the Open_vSwitch database; an operation's error fails it as a whole. */
  async transact(ops: OvsdbOp[]): Promise<any[]> {
    const res = (await this.request('transact', ['Open_vSwitch', ...ops])) as any[];
    const bad = res.find((r) => r && r.error);
    if (bad) throw new OvsdbError(`ovsdb transaction failed: ${bad.error}${bad.details ? ` (${bad.details})` : ''}`);
    return res;
  }
}

/** OVSDB's encodings of a set and a map. */
export const ovsSet = (items: unknown[]) => ['set', items];
export const ovsMap = (m: Record<string, string>) => ['map', Object.entries(m)];
export const namedUuid = (n: string) => ['named-uuid', n];
export const uuid = (u: string) => ['uuid', u];
