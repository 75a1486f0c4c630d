import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import type { BrokerStore, RecordKind, StoredRecord } from './store.ts';

/**
 * The embedded store: one SQLite file through Node's built-in driver (no native build). The driver is
 * synchronous, so every operation is atomic with respect to this process's other requests.
 */
export class SqliteStore implements BrokerStore {
  readonly #db: DatabaseSync;
  readonly #now: () => number;
  readonly #get: StatementSync;
  readonly #peek: StatementSync;
  readonly #upsert: StatementSync;
  readonly #insert: StatementSync;
  readonly #use: StatementSync;
  readonly #delete: StatementSync;
  readonly #list: StatementSync;
  readonly #count: StatementSync;
  readonly #purge: StatementSync;

  constructor(path: string, now: () => number = Date.now) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.#db = new DatabaseSync(path);
    this.#now = now;
    // WAL: readers do not wait for the writer, and a crash loses at most the last transaction.
    this.#db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA busy_timeout = 5000;
      CREATE TABLE IF NOT EXISTS records (
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        expires_at INTEGER,
        used_at INTEGER,
        PRIMARY KEY (kind, key)
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS records_expiry ON records (expires_at) WHERE expires_at IS NOT NULL;
    `);
    const live = '(expires_at IS NULL OR expires_at > ?)';
    this.#get = this.#db.prepare(`SELECT value FROM records WHERE kind = ? AND key = ? AND ${live}`);
    this.#peek = this.#db.prepare(`SELECT value, used_at FROM records WHERE kind = ? AND key = ? AND ${live}`);
    this.#upsert = this.#db.prepare(
      'INSERT INTO records (kind, key, value, expires_at, used_at) VALUES (?, ?, ?, ?, NULL) ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at, used_at = NULL',
    );
    // An expired record counts as absent: it is replaced.
    this.#insert = this.#db.prepare(
      `INSERT INTO records (kind, key, value, expires_at, used_at) VALUES (?, ?, ?, ?, NULL) ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at, used_at = NULL WHERE NOT (records.expires_at IS NULL OR records.expires_at > ?)`,
    );
    // One statement marks and reads: SQLite runs it atomically, even against another process on the file.
    this.#use = this.#db.prepare(`UPDATE records SET used_at = ? WHERE kind = ? AND key = ? AND used_at IS NULL AND ${live} RETURNING value`);
    this.#delete = this.#db.prepare('DELETE FROM records WHERE kind = ? AND key = ?');
    this.#list = this.#db.prepare(`SELECT key, value, expires_at FROM records WHERE kind = ? AND ${live}`);
    this.#count = this.#db.prepare(`SELECT count(*) AS n FROM records WHERE kind = ? AND ${live}`);
    this.#purge = this.#db.prepare('DELETE FROM records WHERE expires_at IS NOT NULL AND expires_at <= ?');
  }

  async get<T>(kind: RecordKind, key: string): Promise<T | undefined> {
    const row = this.#get.get(kind, key, this.#now()) as { value: string } | undefined;
    return row ? (JSON.parse(row.value) as T) : undefined;
  }

  async put(kind: RecordKind, key: string, value: unknown, expiresAt: number | undefined, options: { ifAbsent?: boolean } = {}): Promise<boolean> {
    const text = JSON.stringify(value);
    const expiry = expiresAt === undefined ? null : Math.ceil(expiresAt);
    if (!options.ifAbsent) {
      this.#upsert.run(kind, key, text, expiry);
      return true;
    }
    return this.#insert.run(kind, key, text, expiry, this.#now()).changes === 1;
  }

  async use<T>(kind: RecordKind, key: string): Promise<{ value: T; first: boolean } | undefined> {
    const now = this.#now();
    const marked = this.#use.get(now, kind, key, now) as { value: string } | undefined;
    if (marked) return { value: JSON.parse(marked.value) as T, first: true };
    const value = await this.get<T>(kind, key);
    return value === undefined ? undefined : { value, first: false };
  }

  async peek<T>(kind: RecordKind, key: string): Promise<{ value: T; used: boolean } | undefined> {
    const row = this.#peek.get(kind, key, this.#now()) as { value: string; used_at: number | null } | undefined;
    return row ? { value: JSON.parse(row.value) as T, used: row.used_at !== null } : undefined;
  }

  async delete(kind: RecordKind, key: string): Promise<void> {
    this.#delete.run(kind, key);
  }

  async list<T>(kind: RecordKind): Promise<Array<StoredRecord<T>>> {
    const rows = this.#list.all(kind, this.#now()) as Array<{ key: string; value: string; expires_at: number | null }>;
    return rows.map((row) => ({ key: row.key, value: JSON.parse(row.value) as T, expiresAt: row.expires_at ?? undefined }));
  }

  async count(kind: RecordKind): Promise<number> {
    return (this.#count.get(kind, this.#now()) as { n: number }).n;
  }

  async purgeExpired(): Promise<number> {
    return Number(this.#purge.run(this.#now()).changes);
  }

  close(): void {
    this.#db.close();
  }
}
