/**
 * What the broker keeps, by kind. Secrets (codes, refresh tokens, login transactions, browser sessions,
 * consents) are keyed by their SHA-256, never by their value, and identity provider tokens are kept
 * encrypted: a copy of the store grants nothing.
 */
export type RecordKind = 'client' | 'transaction' | 'code' | 'refresh' | 'consent' | 'session' | 'revoked' | 'signing_key' | 'user_token' | 'assertion';

export interface StoredRecord<T> {
  readonly key: string;
  readonly value: T;
  /** Milliseconds since the epoch; undefined for records that do not expire. */
  readonly expiresAt: number | undefined;
}

/**
 * The broker's whole persistence, small on purpose so that another backend (a shared one, for several
 * replicas) only has these operations to get right. Expired records are never returned.
 */
export interface BrokerStore {
  get<T>(kind: RecordKind, key: string): Promise<T | undefined>;
  /** Writes a record; with `ifAbsent`, only when there is no live one, and says whether it wrote. */
  put(kind: RecordKind, key: string, value: unknown, expiresAt: number | undefined, options?: { ifAbsent?: boolean }): Promise<boolean>;
  /**
   * Marks a record used, atomically: `first` is true for exactly one caller. How single-use codes and
   * refresh-token rotation tell a replay from a first use.
   */
  use<T>(kind: RecordKind, key: string): Promise<{ value: T; first: boolean } | undefined>;
  /**
   * A record and whether it was used, without marking it: a request is judged whole on this before `use`
   * spends the record, so a refused refresh request leaves its refresh token unspent.
   */
  peek<T>(kind: RecordKind, key: string): Promise<{ value: T; used: boolean } | undefined>;
  delete(kind: RecordKind, key: string): Promise<void>;
  list<T>(kind: RecordKind): Promise<Array<StoredRecord<T>>>;
  count(kind: RecordKind): Promise<number>;
  /** Drops expired records; returns how many. */
  purgeExpired(): Promise<number>;
  close(): void;
}
