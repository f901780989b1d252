// Local state in SQLite through Node's built-in node:sqlite (no native addon to build: better-sqlite3
// would need compiling against Node 24's headers, which this machine cannot download).
// Records are JSON documents keyed by id; the columns that need uniqueness or lookups are real columns,
// so SQLite enforces them (a name taken twice fails inside the transaction, not in our code).
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import fs from 'node:fs';
import path from 'node:path';

export type Kind = 'networks' | 'containers' | 'images' | 'endpoints' | 'volumes';

export class Store {
  readonly db: DatabaseSync;
  private depth = 0;
  /** called after a transaction rolled back: in-memory caches of rows re-read what the database holds */
  private readonly rollbackHooks: (() => void)[] = [];

  constructor(dataRoot: string) {
    fs.mkdirSync(dataRoot, { recursive: true });
    this.db = new DatabaseSync(path.join(dataRoot, 'loom.db'));
    this.db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = NORMAL;
      PRAGMA foreign_keys = ON;
      CREATE TABLE IF NOT EXISTS networks   (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, doc TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS containers (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, doc TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS images     (id TEXT PRIMARY KEY, name TEXT NOT NULL, doc TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS image_tags (ref TEXT PRIMARY KEY, image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE);
      CREATE TABLE IF NOT EXISTS endpoints  (id TEXT PRIMARY KEY, name TEXT NOT NULL, doc TEXT NOT NULL);
      -- local volumes, keyed by name (id = name); added later: IF NOT EXISTS keeps older databases working
      CREATE TABLE IF NOT EXISTS volumes    (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, doc TEXT NOT NULL);
      -- one row per reserved address; the primary key makes a double reservation impossible
      CREATE TABLE IF NOT EXISTS ip_allocations (
        network_id TEXT NOT NULL, address TEXT NOT NULL, owner TEXT NOT NULL,
        PRIMARY KEY (network_id, address));
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    `);
  }

  /** Runs fn in one transaction (nested calls join the outer one). */
  tx<T>(fn: () => T): T {
    if (this.depth > 0) return fn();
    this.db.exec('BEGIN IMMEDIATE');
    this.depth++;
    try {
      const r = fn();
      this.db.exec('COMMIT');
      return r;
    } catch (e) {
      this.db.exec('ROLLBACK');
      for (const h of this.rollbackHooks) h();
      throw e;
    } finally {
      this.depth--;
    }
  }

  onRollback(fn: () => void): void {
    this.rollbackHooks.push(fn);
  }

  /** Prepared once per SQL text: preparing was a tenth of an attach. */
  private readonly stmts = new Map<string, StatementSync>();
  private q(sql: string): StatementSync {
    let st = this.stmts.get(sql);
    if (!st) this.stmts.set(sql, (st = this.db.prepare(sql)));
    return st;
  }

  /** Inserts or replaces a record; returns the JSON text stored (callers caching a copy parse it back). */
  put<T extends { id: string; name: string }>(kind: Kind, doc: T): string {
    const json = JSON.stringify(doc);
    this.q(`INSERT INTO ${kind} (id, name, doc) VALUES (?, ?, ?)
      ON CONFLICT(id) DO UPDATE SET name = excluded.name, doc = excluded.doc`).run(doc.id, doc.name, json);
    return json;
  }
  get<T>(kind: Kind, id: string): T | undefined {
    const row = this.q(`SELECT doc FROM ${kind} WHERE id = ?`).get(id) as { doc: string } | undefined;
    return row ? (JSON.parse(row.doc) as T) : undefined;
  }
  all<T>(kind: Kind): T[] {
    return (this.q(`SELECT doc FROM ${kind} ORDER BY rowid`).all() as { doc: string }[]).map((r) => JSON.parse(r.doc) as T);
  }
  delete(kind: Kind, id: string): void {
    this.q(`DELETE FROM ${kind} WHERE id = ?`).run(id);
  }

  // --- IP allocations ---
  reserveAddress(networkId: string, address: string, owner: string): void {
    this.q('INSERT INTO ip_allocations (network_id, address, owner) VALUES (?, ?, ?)').run(networkId, address, owner);
  }
  isReserved(networkId: string, address: string): boolean {
    return this.q('SELECT 1 FROM ip_allocations WHERE network_id = ? AND address = ?').get(networkId, address) !== undefined;
  }
  releaseAddress(networkId: string, address: string): void {
    this.q('DELETE FROM ip_allocations WHERE network_id = ? AND address = ?').run(networkId, address);
  }
  releaseOwner(owner: string): void {
    this.q('DELETE FROM ip_allocations WHERE owner = ?').run(owner);
  }
  addresses(networkId: string): Map<string, string> {
    const rows = this.q('SELECT address, owner FROM ip_allocations WHERE network_id = ?').all(networkId) as { address: string; owner: string }[];
    return new Map(rows.map((r) => [r.address, r.owner]));
  }
  allAllocations(): { network_id: string; address: string; owner: string }[] {
    return this.q('SELECT network_id, address, owner FROM ip_allocations').all() as never;
  }

  // --- image tags ---
  tag(ref: string, imageId: string): void {
    this.q('INSERT INTO image_tags (ref, image_id) VALUES (?, ?) ON CONFLICT(ref) DO UPDATE SET image_id = excluded.image_id').run(ref, imageId);
  }
  untag(ref: string): void {
    this.q('DELETE FROM image_tags WHERE ref = ?').run(ref);
  }
  tags(): { ref: string; image_id: string }[] {
    return this.q('SELECT ref, image_id FROM image_tags ORDER BY ref').all() as never;
  }

  getMeta(key: string): string | undefined {
    const r = this.q('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
    return r?.value;
  }
  setMeta(key: string, value: string): void {
    this.q('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
  }

  deleteMeta(key: string): void {
    this.q('DELETE FROM meta WHERE key = ?').run(key);
  }
  /** Every meta entry whose key starts with `prefix` (intents written before a multi-step change). */
  metaWithPrefix(prefix: string): { key: string; value: string }[] {
    return this.q("SELECT key, value FROM meta WHERE substr(key, 1, length(?)) = ?").all(prefix, prefix) as never;
  }

  close(): void {
    this.db.close();
  }
}
