import { Redis } from 'ioredis';
import { ConfigError } from '../config/errors.ts';
import type { Config } from '../config/schema.ts';
import { openSecretSource } from '../config/secret-source.ts';
import { MemoryBuckets, type BucketStore } from './bucket-store.ts';
import { RedisBuckets } from './redis-buckets.ts';

/** Reconnection attempts after a lost connection are spaced out to this at most. */
const RECONNECT_MAX_MS = 2_000;

/** States in which a command would only wait for a connection that is not there. */
const DISCONNECTED = new Set(['reconnecting', 'close', 'end']);

export interface LimitStore {
  readonly store: BucketStore;
  close(): void;
}

/**
 * The buckets `limits.store` names. A Redis store never makes a request wait past `timeout`: each command
 * has that timeout, a command sent while the connection is down fails at once instead of queueing for the
 * reconnect, and a command in flight when the connection drops fails rather than being retried.
 */
export function openLimitStore(settings: Config['limits']['store']): LimitStore {
  if (settings.type === 'memory') return { store: new MemoryBuckets({ maxKeys: settings.max_keys }), close: () => undefined };
  const url = openSecretSource(settings.url);
  const value = url.current();
  url.close();
  if (!value.ok) throw new ConfigError('config', [{ path: 'limits.store.url', message: value.problem }]);
  // Connected on the first decision, so a limiter built for a start that then fails holds no socket.
  const redis = new Redis(value.value, {
    lazyConnect: true,
    commandTimeout: settings.timeout,
    connectTimeout: Math.max(settings.timeout, 1_000),
    maxRetriesPerRequest: 0,
    retryStrategy: (attempt) => Math.min(attempt * 100, RECONNECT_MAX_MS),
  });
  // Failures reach the decisions that hit them (and are counted there); the event itself would only be printed.
  redis.on('error', () => undefined);
  const buckets = new RedisBuckets(redis, settings.key_prefix);
  const store: BucketStore = {
    take: (draws) => (DISCONNECTED.has(redis.status) ? Promise.reject(new Error(`the rate limit store is not connected (${redis.status})`)) : buckets.take(draws)),
  };
  return { store, close: () => redis.disconnect() };
}
