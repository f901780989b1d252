// The cluster store on etcd (v3 API, gRPC) through the `etcd3` client: transactions are etcd's own
// (compares on mod revision / version, then puts and deletes in one atomic step), the host's lease is
// an etcd lease kept alive by the client, watches are etcd watches from a revision.
import fs from 'node:fs';
import { Etcd3, isRecoverableError, type Lease, type Watcher } from 'etcd3';
import { circuitBreaker, ConsecutiveBreaker, handleWhen, retry } from 'cockatiel';
import { invalidParameter, LoomError } from '../util/errors.ts';
import type { ClusterStore, Compare, StoredKV, TxnOp, Watch, WatchEvent } from './cluster.ts';

/** Per call: the store being out of reach fails an operation within seconds, not after gRPC's minutes. */
const CALL_DEADLINE_MS = 4000;
/** A whole call, retries on other endpoints included: an overlay operation fails within 5 s. */
const CALL_BUDGET_MS = 4500;

/** How to reach etcd beyond its addresses (--cluster-store-opt kv.*). */
export interface EtcdConnection {
  /** kv.cacertfile: TLS, verifying etcd's certificate against this CA */
  caFile?: string;
  /** kv.certfile / kv.keyfile: the client certificate etcd asks for with --client-cert-auth */
  certFile?: string;
  keyFile?: string;
  /** kv.username / kv.password: etcd's own user authentication */
  username?: string;
  password?: string;
}

/**
 * dockerd's --cluster-store value for etcd: `etcd://HOST:PORT[,HOST:PORT...]` (a path after it, as
 * libkv allowed, is ignored). Returns the client endpoints.
 */
export function parseEtcdUrl(url: string, tls = false): string[] {
  const m = /^etcd:\/\/([^/]+)(\/.*)?$/.exec(url);
  if (!m) {
    const scheme = /^([a-z0-9]+):\/\//.exec(url)?.[1];
    if (scheme && scheme !== 'etcd') throw invalidParameter(`unsupported cluster store ${url}: loom speaks to etcd only (etcd://HOST:PORT)`);
    throw invalidParameter(`invalid cluster store ${url}: expected etcd://HOST:PORT`);
  }
  return m[1]!.split(',').map((hp) => {
    const h = /^(\[[0-9a-fA-F:]+\]|[^:]+)(?::(\d+))?$/.exec(hp);
    if (!h || (h[2] && (Number(h[2]) < 1 || Number(h[2]) > 65535))) throw invalidParameter(`invalid cluster store address ${hp} in ${url}`);
    return `${tls ? 'https' : 'http'}://${h[1]}:${h[2] ?? '2379'}`;
  });
}

export class EtcdClusterStore implements ClusterStore {
  readonly url: string;
  private readonly client: Etcd3;
  private lease: Lease | null = null;
  private leaseId = '';
  private readonly watchers = new Set<Watcher>();

  /** why the last call that failed did (for `info` while the store is away) */
  lastError = '';

  constructor(url: string, conn: EtcdConnection = {}) {
    this.url = url;
    const hosts = parseEtcdUrl(url, !!conn.caFile);
    this.client = new Etcd3({
      hosts,
      dialTimeout: CALL_DEADLINE_MS,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + CALL_DEADLINE_MS }),
      ...(conn.caFile ? { credentials: readCredentials(conn) } : {}),
      ...(conn.username ? { auth: { username: conn.username, password: conn.password ?? '', callOptions: () => ({ deadline: Date.now() + CALL_DEADLINE_MS }) } } : {}),
      // failover: an endpoint that fails once is skipped for 5 s, and a call is retried once per other endpoint
      faultHandling: {
        host: () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 5000, breaker: new ConsecutiveBreaker(1) }),
        global: retry(handleWhen(isRecoverableError), { maxAttempts: hosts.length }),
      },
    });
  }

  /**
   * Runs one call within the budget, and turns what gRPC and the client say into one message naming the
   * store ("cluster store etcd://203.0.113.10:2379 is unreachable: connection refused"), never the library's.
   */
  private async call<T>(fn: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const budget = new Promise<never>((_r, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${CALL_BUDGET_MS / 1000} s`)), CALL_BUDGET_MS);
    });
    try {
      const r = await Promise.race([fn(), budget]);
      this.lastError = '';
      return r;
    } catch (e) {
      throw this.storeError(e);
    } finally {
      clearTimeout(timer);
    }
  }

  storeError(e: unknown): LoomError {
    if (e instanceof LoomError) return e;
    const { status, reason } = describeEtcdError(e, this.lastError);
    this.lastError = reason;
    return new LoomError(status, status === 503 ? `cluster store ${this.url} is unreachable: ${reason}` : `cluster store ${this.url}: ${reason}`);
  }

  get(key: string): Promise<StoredKV | null> {
    return this.call(async () => {
      const r = await this.client.get(key).exec();
      const kv = r.kvs[0];
      return kv ? { key, value: kv.value.toString(), modRevision: Number(kv.mod_revision) } : null;
    });
  }

  list(prefix: string): Promise<{ kvs: StoredKV[]; revision: number }> {
    return this.call(async () => {
      const r = await this.client.getAll().prefix(prefix).exec();
      return {
        kvs: r.kvs.map((kv) => ({ key: kv.key.toString(), value: kv.value.toString(), modRevision: Number(kv.mod_revision) })),
        revision: Number(r.header.revision),
      };
    });
  }

  txn(compares: Compare[], ops: TxnOp[]): Promise<boolean> {
    return this.call(() => this.txnNow(compares, ops));
  }

  private async txnNow(compares: Compare[], ops: TxnOp[]): Promise<boolean> {
    const c = this.client;
    // etcd wants at least one compare to build a transaction; "version > -1" always holds
    const conds = compares.length ? compares : [{ key: keyOf(ops[0]!), modRevision: -1 } as Compare];
    type Cmp = [string, 'Version' | 'Mod', '==' | '>', number];
    const cmp = (x: Compare): Cmp => ('exists' in x
      ? [x.key, 'Version', x.exists ? '>' : '==', 0]
      : x.modRevision === -1 ? [x.key, 'Version', '>', -1] : [x.key, 'Mod', '==', x.modRevision]);
    const [k0, t0, o0, v0] = cmp(conds[0]!);
    let b = c.if(k0, t0, o0, v0);
    for (const x of conds.slice(1)) {
      const [k, t, o, v] = cmp(x);
      b = b.and(k, t, o, v);
    }
    const writes = ops.map((op) => {
      if ('put' in op) {
        if (op.leased && !this.leaseId) throw new Error(`cluster store ${this.url}: no lease granted for a leased write`);
        const p = c.put(op.put).value(op.value);
        return op.leased ? p.lease(this.leaseId) : p;
      }
      return 'delete' in op ? c.delete().key(op.delete) : c.delete().prefix(op.deletePrefix);
    });
    const r = await b.then(...writes).commit();
    return r.succeeded;
  }

  async watch(prefix: string, afterRevision: number, onEvent: (e: WatchEvent) => void, onBroken: (err: Error) => void): Promise<Watch> {
    const w = await this.call(() => this.client.watch().prefix(prefix).withPreviousKV().startRevision(String(afterRevision + 1)).create());
    this.watchers.add(w);
    w.on('put', (kv) => onEvent({ type: 'put', key: kv.key.toString(), value: kv.value.toString(), revision: Number(kv.mod_revision) }));
    w.on('delete', (kv, prev) => onEvent({ type: 'delete', key: kv.key.toString(), value: prev?.value.toString() ?? '', revision: Number(kv.mod_revision) }));
    // the client reconnects a dropped stream by itself, from the last revision seen; an error is final
    w.on('error', (e) => onBroken(e));
    return {
      cancel: async () => {
        this.watchers.delete(w);
        await w.cancel().catch(() => {});
      },
    };
  }

  async grantLease(ttlSeconds: number, onLost: () => void): Promise<string> {
    this.lease?.release();
    const lease = this.client.lease(ttlSeconds, { autoKeepAlive: true });
    lease.on('lost', () => {
      if (this.lease !== lease) return;
      this.leaseId = '';
      onLost();
    });
    // a lost lease also rejects grant(); it is reported through onLost, not here
    this.leaseId = await this.call(() => lease.grant());
    this.lease = lease;
    return this.leaseId;
  }

  async close(): Promise<void> {
    for (const w of [...this.watchers]) await w.cancel().catch(() => {});
    this.watchers.clear();
    // released, not revoked: a daemon that stops leaves its containers running, and their records stay
    // until the lease's TTL runs out (or the next start renews them)
    this.lease?.release();
    this.lease = null;
    this.client.close();
  }
}

function keyOf(op: TxnOp): string {
  return 'put' in op ? op.put : 'delete' in op ? op.delete : op.deletePrefix;
}

function readCredentials(conn: EtcdConnection): { rootCertificate: Buffer; privateKey?: Buffer; certChain?: Buffer } {
  const read = (opt: string, file: string) => {
    try {
      return fs.readFileSync(file);
    } catch (e) {
      throw invalidParameter(`--cluster-store-opt ${opt}=${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
    }
  };
  return {
    rootCertificate: read('kv.cacertfile', conn.caFile!),
    ...(conn.certFile ? { certChain: read('kv.certfile', conn.certFile), privateKey: read('kv.keyfile', conn.keyFile!) } : {}),
  };
}

/**
 * What went wrong, in a few words: gRPC's "14 UNAVAILABLE: No connection established. Last error: connect
 * ECONNREFUSED ..." becomes "connection refused"; 503 when the store is out of reach, 500 otherwise.
 */
export function describeEtcdError(e: unknown, previous = ''): { status: number; reason: string } {
  const name = (e as Error)?.name ?? '';
  const msg = String((e as Error)?.message ?? e);
  if (/EtcdAuthenticationFailed|EtcdInvalidAuthToken/.test(name) || /authentication failed|invalid user ID or password/i.test(msg)) {
    return { status: 500, reason: 'authentication failed: invalid user name or password (--cluster-store-opt kv.username, kv.password)' };
  }
  if (/EtcdPermissionDenied/.test(name) || /permission denied/i.test(msg)) return { status: 500, reason: 'permission denied for this user' };
  if (/BrokenCircuit|circuit/i.test(name + msg)) return { status: 503, reason: previous || 'no endpoint answered recently' };
  const reason = /ECONNREFUSED/.test(msg) ? 'connection refused'
    : /EHOSTUNREACH|ENETUNREACH/.test(msg) ? 'no route to host'
    : /ENOTFOUND|EAI_AGAIN/.test(msg) ? 'cannot resolve its host name'
    : /certificate|SSL|TLS|handshake|self.signed|alert/i.test(msg) ? `TLS handshake failed (${(/(?:Last error: )?([^()]*(certificate|SSL|TLS|handshake|alert)[^()]*)/i.exec(msg)?.[1] ?? 'certificate not accepted').trim()})`
    : /deadline|no answer within|DEADLINE_EXCEEDED|ETIMEDOUT/i.test(msg) ? `no answer within ${CALL_BUDGET_MS / 1000} s`
    : /UNAVAILABLE|No connection established|GRPCConnectFailed|GRPCUnavailable|ECONNRESET|EPIPE/i.test(name + msg) ? 'no connection established'
    : null;
  if (reason) return { status: 503, reason };
  return { status: 500, reason: msg.replace(/^\d+ [A-Z_]+: /, '') };
}
