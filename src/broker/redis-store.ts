import { Redis } from 'ioredis';
import type { BrokerStore, RecordKind, StoredRecord } from './store.ts';

/**
 * Each record is a hash: `v` the JSON value, `u` set once it is used. Scripts make the two-step
 * operations atomic on the server, so replicas racing for one code or one refresh token cannot both win.
 */
const PUT_IF_ABSENT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1])
if ARGV[2] ~= '' then redis.call('PEXPIREAT', KEYS[1], ARGV[2]) end
return 1`;
const PUT = `
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[1])
if ARGV[2] ~= '' then redis.call('PEXPIREAT', KEYS[1], ARGV[2]) end
return 1`;
const USE = `
local value = redis.call('HGET', KEYS[1], 'v')
if not value then return nil end
return { value, redis.call('HSETNX', KEYS[1], 'u', ARGV[1]) }`;

const SCAN_BATCH = 500;

/**
 * The shared store for several replicas: Redis or Valkey. Records expire by Redis's own TTLs, set to
 * each record's life, so nothing needs purging.
 */
export class RedisStore implements BrokerStore {
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(url: string, prefix: string) {
    // Commands wait for a reconnect a little, then fail: the request gets an error, never a stale answer.
    this.#redis = new Redis(url, { maxRetriesPerRequest: 2, enableOfflineQueue: true, lazyConnect: false });
    this.#prefix = prefix;
  }

  /** Resolves once the server answers; a broker that cannot reach its store does not start. */
  async ready(): Promise<void> {
    await this.#redis.ping();
  }

  /** The connection, for what else the replicas share through this server (rate limits). */
  get client(): Redis {
    return this.#redis;
  }

  #key(kind: RecordKind, key: string): string {
    return `${this.#prefix}:${kind}:${key}`;
  }

  async get<T>(kind: RecordKind, key: string): Promise<T | undefined> {
    const value = await this.#redis.hget(this.#key(kind, key), 'v');
    return value === null ? undefined : (JSON.parse(value) as T);
  }

  async put(kind: RecordKind, key: string, value: unknown, expiresAt: number | undefined, options: { ifAbsent?: boolean } = {}): Promise<boolean> {
    if (expiresAt !== undefined && expiresAt <= Date.now()) return !options.ifAbsent;
    const written = await this.#redis.eval(options.ifAbsent ? PUT_IF_ABSENT : PUT, 1, this.#key(kind, key), JSON.stringify(value), expiresAt === undefined ? '' : String(Math.ceil(expiresAt)));
    return written === 1;
  }

  async use<T>(kind: RecordKind, key: string): Promise<{ value: T; first: boolean } | undefined> {
    const result = (await this.#redis.eval(USE, 1, this.#key(kind, key), String(Date.now()))) as [string, number] | null;
    return result ? { value: JSON.parse(result[0]) as T, first: result[1] === 1 } : undefined;
  }

  /** One HMGET: the value and the used mark are read together. */
  async peek<T>(kind: RecordKind, key: string): Promise<{ value: T; used: boolean } | undefined> {
    const [value, used] = await this.#redis.hmget(this.#key(kind, key), 'v', 'u');
    return value === null || value === undefined ? undefined : { value: JSON.parse(value) as T, used: used !== null && used !== undefined };
  }

  async delete(kind: RecordKind, key: string): Promise<void> {
    await this.#redis.del(this.#key(kind, key));
  }

  async list<T>(kind: RecordKind): Promise<Array<StoredRecord<T>>> {
    const out: Array<StoredRecord<T>> = [];
    const start = this.#key(kind, '');
    for (const keys of await this.#scan(kind)) {
      if (keys.length === 0) continue;
      const pipeline = this.#redis.pipeline();
      for (const key of keys) pipeline.hget(key, 'v').pexpiretime(key);
      const answers = (await pipeline.exec()) ?? [];
      keys.forEach((key, index) => {
        const value = answers[index * 2]?.[1] as string | null;
        const expiry = answers[index * 2 + 1]?.[1] as number;
        if (value !== null && value !== undefined) out.push({ key: key.slice(start.length), value: JSON.parse(value) as T, expiresAt: expiry > 0 ? expiry : undefined });
      });
    }
    return out;
  }

  async count(kind: RecordKind): Promise<number> {
    return (await this.#scan(kind)).reduce((sum, keys) => sum + keys.length, 0);
  }

  async purgeExpired(): Promise<number> {
    return 0;
  }

  close(): void {
    this.#redis.disconnect();
  }

  async #scan(kind: RecordKind): Promise<string[][]> {
    const batches: string[][] = [];
    let cursor = '0';
    do {
      const [next, keys] = await this.#redis.scan(cursor, 'MATCH', `${this.#key(kind, '*')}`, 'COUNT', SCAN_BATCH);
      batches.push(keys);
      cursor = next;
    } while (cursor !== '0');
    return batches;
  }
}
