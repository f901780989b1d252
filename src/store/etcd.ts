// The cluster store on etcd (v3 API, gRPC) through the `etcd3` client: transactions are etcd's own
// (compares on mod revision / version, then puts and deletes in one atomic step), the host's lease is
// an etcd lease kept alive by the client, watches are etcd watches from a revision.
import { Etcd3, type Lease, type Watcher } from 'etcd3';
import { invalidParameter } from '../util/errors.ts';
import type { ClusterStore, Compare, StoredKV, TxnOp, Watch, WatchEvent } from './cluster.ts';

/** Per call: the store being out of reach fails an operation within seconds, not after gRPC's minutes. */
const CALL_DEADLINE_MS = 5000;

/**
 * dockerd's --cluster-store value for etcd: `etcd://HOST:PORT[,HOST:PORT...]` (a path after it, as
 * libkv allowed, is ignored). Returns the client endpoints.
 */
export function parseEtcdUrl(url: string): string[] {
  const m = /^etcd:\/\/([^/]+)(\/.*)?$/.exec(url);
  if (!m) {
    const scheme = /^([a-z0-9]+):\/\//.exec(url)?.[1];
    if (scheme && scheme !== 'etcd') throw invalidParameter(`unsupported cluster store ${url}: loom speaks to etcd only (etcd://HOST:PORT)`);
    throw invalidParameter(`invalid cluster store ${url}: expected etcd://HOST:PORT`);
  }
  return m[1]!.split(',').map((hp) => {
    const h = /^(\[[0-9a-fA-F:]+\]|[^:]+)(?::(\d+))?$/.exec(hp);
    if (!h || (h[2] && (Number(h[2]) < 1 || Number(h[2]) > 65535))) throw invalidParameter(`invalid cluster store address ${hp} in ${url}`);
    return `http://${h[1]}:${h[2] ?? '2379'}`;
  });
}

export class EtcdClusterStore implements ClusterStore {
  readonly url: string;
  private readonly client: Etcd3;
  private lease: Lease | null = null;
  private leaseId = '';
  private readonly watchers = new Set<Watcher>();

  constructor(url: string) {
    this.url = url;
    this.client = new Etcd3({
      hosts: parseEtcdUrl(url),
      dialTimeout: CALL_DEADLINE_MS,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + CALL_DEADLINE_MS }),
    });
  }

  async get(key: string): Promise<StoredKV | null> {
    const r = await this.client.get(key).exec();
    const kv = r.kvs[0];
    return kv ? { key, value: kv.value.toString(), modRevision: Number(kv.mod_revision) } : null;
  }

  async list(prefix: string): Promise<{ kvs: StoredKV[]; revision: number }> {
    const r = await this.client.getAll().prefix(prefix).exec();
    return {
      kvs: r.kvs.map((kv) => ({ key: kv.key.toString(), value: kv.value.toString(), modRevision: Number(kv.mod_revision) })),
      revision: Number(r.header.revision),
    };
  }

  async txn(compares: Compare[], ops: TxnOp[]): Promise<boolean> {
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
    const w = await this.client.watch().prefix(prefix).withPreviousKV().startRevision(String(afterRevision + 1)).create();
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
    this.leaseId = await lease.grant();
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
