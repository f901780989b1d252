// The cluster store: state every host of a cluster shares (global networks, their address claims, the
// hosts themselves), behind the few operations loom needs from it — the shape of etcd's v3 API:
//   - reads that say at which revision they were made, so a watch can start right after them;
//   - transactions: compare-and-swap on keys' revisions or existence, then a batch of writes, all or none
//     (two hosts never both win an address: the second's compare fails);
//   - one lease per host: keys written "leased" vanish when the host stops renewing it (it died);
//   - watches on a prefix from a revision, so nothing between a read and the watch is missed.
// src/store/etcd.ts is the real one; MemoryClusterStore below serves unit tests of the logic built on it.

export interface StoredKV {
  key: string;
  value: string;
  /** revision of the last write of this key */
  modRevision: number;
}

/** A condition of a transaction: the key exists (or not), or is unchanged since it was read. */
export type Compare = { key: string; exists: boolean } | { key: string; modRevision: number };

/** A write of a transaction; `leased` attaches the key to this host's lease. */
export type TxnOp = { put: string; value: string; leased?: boolean } | { delete: string } | { deletePrefix: string };

export interface WatchEvent {
  type: 'put' | 'delete';
  key: string;
  /** the new value (put) or the last value before the deletion ('' when unknown) */
  value: string;
  revision: number;
}

export interface Watch {
  cancel(): Promise<void>;
}

export interface ClusterStore {
  /** where it is, for messages (`etcd://203.0.113.10:2379`) */
  readonly url: string;
  get(key: string): Promise<StoredKV | null>;
  /** every key under the prefix, and the store's revision when read */
  list(prefix: string): Promise<{ kvs: StoredKV[]; revision: number }>;
  /** all writes if every compare holds, else none; true when applied */
  txn(compares: Compare[], ops: TxnOp[]): Promise<boolean>;
  /**
   * Events under the prefix after `afterRevision`, in order. `onBroken` says the watch cannot go on
   * (history compacted, store gone for good): the caller lists again and starts a new one.
   */
  watch(prefix: string, afterRevision: number, onEvent: (e: WatchEvent) => void, onBroken: (err: Error) => void): Promise<Watch>;
  /**
   * Grants this host's lease (TTL in seconds) and keeps it alive. `onLost`: it expired anyway (the store
   * was out of reach longer than the TTL) and every leased key is gone; a new one is granted by calling
   * this again. Returns the lease id.
   */
  grantLease(ttlSeconds: number, onLost: () => void): Promise<string>;
  /** Stops renewing the lease without revoking it: leased keys live on until the TTL runs out. */
  close(): Promise<void>;
}

/**
 * An in-process cluster store with etcd's semantics (revisions, CAS, leases, watches), for unit tests:
 * one MemoryCluster, and a client() per simulated host, each with its own lease.
 */
export class MemoryCluster {
  rev = 1;
  readonly data = new Map<string, { value: string; modRevision: number; lease: string | null }>();
  readonly watchers = new Set<{ prefix: string; fn: (e: WatchEvent) => void }>();
  readonly lost = new Map<string, () => void>();
  private leases = 0;
  /** a pause before each answer, as a network round trip: lets concurrent callers interleave */
  delayMs = 0;

  readonly expired = new Set<string>();

  client(): MemoryClusterStore {
    return new MemoryClusterStore(this, this.newLeaseId());
  }

  newLeaseId(): string {
    return String(++this.leases);
  }

  emit(events: WatchEvent[]): void {
    for (const e of events) for (const w of this.watchers) if (e.key.startsWith(w.prefix)) w.fn(e);
  }

  /** What the expiry of a lease does in etcd: its keys go, then its holder hears of it. */
  expireLease(lease: string): void {
    this.rev++;
    const events: WatchEvent[] = [];
    for (const [k, v] of [...this.data]) {
      if (v.lease !== lease) continue;
      this.data.delete(k);
      events.push({ type: 'delete', key: k, value: v.value, revision: this.rev });
    }
    this.expired.add(lease);
    this.emit(events);
    const fn = this.lost.get(lease);
    this.lost.delete(lease);
    fn?.();
  }
}

export class MemoryClusterStore implements ClusterStore {
  readonly url = 'memory://';
  private readonly m: MemoryCluster;
  /** the lease this client grants (a new one after each expiry) */
  lease: string;
  private readonly mine = new Set<{ prefix: string; fn: (e: WatchEvent) => void }>();

  constructor(m: MemoryCluster, lease: string) {
    this.m = m;
    this.lease = lease;
  }

  private async tick(): Promise<void> {
    await new Promise((r) => (this.m.delayMs ? setTimeout(r, this.m.delayMs) : setImmediate(r)));
  }

  async get(key: string): Promise<StoredKV | null> {
    await this.tick();
    const v = this.m.data.get(key);
    return v ? { key, value: v.value, modRevision: v.modRevision } : null;
  }

  async list(prefix: string): Promise<{ kvs: StoredKV[]; revision: number }> {
    await this.tick();
    const kvs = [...this.m.data].filter(([k]) => k.startsWith(prefix)).sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([key, v]) => ({ key, value: v.value, modRevision: v.modRevision }));
    return { kvs, revision: this.m.rev };
  }

  async txn(compares: Compare[], ops: TxnOp[]): Promise<boolean> {
    await this.tick();
    const m = this.m;
    for (const c of compares) {
      const v = m.data.get(c.key);
      if ('exists' in c ? !!v !== c.exists : (v?.modRevision ?? 0) !== c.modRevision) return false;
    }
    m.rev++;
    const events: WatchEvent[] = [];
    for (const op of ops) {
      if ('put' in op) {
        m.data.set(op.put, { value: op.value, modRevision: m.rev, lease: op.leased ? this.lease : null });
        events.push({ type: 'put', key: op.put, value: op.value, revision: m.rev });
      } else {
        const keys = 'delete' in op ? [op.delete] : [...m.data.keys()].filter((k) => k.startsWith(op.deletePrefix));
        for (const k of keys) {
          const old = m.data.get(k);
          if (!old) continue;
          m.data.delete(k);
          events.push({ type: 'delete', key: k, value: old.value, revision: m.rev });
        }
      }
    }
    m.emit(events);
    return true;
  }

  async watch(prefix: string, _afterRevision: number, onEvent: (e: WatchEvent) => void): Promise<Watch> {
    // events are delivered synchronously from txn, so none can fall between a list and this call
    const w = { prefix, fn: onEvent };
    this.m.watchers.add(w);
    this.mine.add(w);
    return { cancel: async () => { this.m.watchers.delete(w); this.mine.delete(w); } };
  }

  async grantLease(_ttl: number, onLost: () => void): Promise<string> {
    // an expired lease is never granted again: a new id, as etcd gives
    if (this.m.expired.has(this.lease)) this.lease = this.m.newLeaseId();
    this.m.lost.set(this.lease, onLost);
    return this.lease;
  }

  async close(): Promise<void> {
    for (const w of this.mine) this.m.watchers.delete(w);
    this.mine.clear();
    this.m.lost.delete(this.lease);
  }
}
