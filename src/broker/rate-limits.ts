import type { Redis } from 'ioredis';
import { TokenBuckets } from '../auth/token-buckets.ts';
import type { BrokerConfig } from '../config/schema.ts';

export type LimitedEndpoint = 'registration' | 'authorize' | 'token';

/** One bucket a request draws from: its name (endpoint and dimension), the key in it, and its rate. */
interface Draw {
  readonly bucket: string;
  readonly key: string;
  readonly perMinute: number;
}

/** Where the buckets live: this process, or a Redis server every replica shares. */
export interface BucketStore {
  /** Takes one token from every bucket if each has one; else takes none and says how many seconds to wait. */
  take(draws: readonly Draw[]): Promise<number>;
}

export class MemoryBuckets implements BucketStore {
  readonly #buckets = new Map<string, TokenBuckets>();

  async take(draws: readonly Draw[]): Promise<number> {
    const buckets = draws.map((draw) => this.#bucket(draw));
    const wait = Math.max(0, ...draws.map((draw, index) => buckets[index]!.retryAfter(draw.key)));
    if (wait > 0) return wait;
    draws.forEach((draw, index) => buckets[index]!.take(draw.key));
    return 0;
  }

  #bucket(draw: Draw): TokenBuckets {
    let buckets = this.#buckets.get(draw.bucket);
    if (!buckets) this.#buckets.set(draw.bucket, (buckets = new TokenBuckets({ perSecond: draw.perMinute / 60, burst: draw.perMinute })));
    return buckets;
  }
}

/**
 * The same buckets as one Lua script on the shared server, so every replica draws from them at once
 * and none can let through what another already spent. Time is the server's, not the replicas'.
 */
const TAKE = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local wait = 0
local levels = {}
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[i]) / 60000
  local burst = tonumber(ARGV[i])
  local state = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = math.min(burst, (tonumber(state[1]) or burst) + (now - (tonumber(state[2]) or now)) * rate)
  levels[i] = tokens
  if tokens < 1 then wait = math.max(wait, math.ceil((1 - tokens) / rate / 1000)) end
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  redis.call('HSET', key, 'tokens', tostring(levels[i] - 1), 'at', tostring(now))
  redis.call('PEXPIRE', key, 61000)
end
return 0`;

export class RedisBuckets implements BucketStore {
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(redis: Redis, prefix: string) {
    this.#redis = redis;
    this.#prefix = prefix;
  }

  async take(draws: readonly Draw[]): Promise<number> {
    const keys = draws.map((draw) => `${this.#prefix}:rate:${draw.bucket}:${draw.key}`);
    return Number(await this.#redis.eval(TAKE, keys.length, ...keys, ...draws.map((draw) => String(draw.perMinute))));
  }
}

/**
 * Requests per minute at the broker's endpoints that anyone can reach without a credential, per client
 * IP and (where the request names one) per client id: each bucket holds a minute's worth, so a burst of
 * that size passes and the rest is paced.
 */
export class BrokerRateLimits {
  readonly #settings: BrokerConfig['rate_limits'];
  readonly #store: BucketStore;

  constructor(settings: BrokerConfig['rate_limits'], store: BucketStore = new MemoryBuckets()) {
    this.#settings = settings;
    this.#store = store;
  }

  /** Takes the request's share; 0 when it may go on, else the seconds to wait (for Retry-After). */
  take(endpoint: LimitedEndpoint, ip: string, clientId?: string): Promise<number> {
    const limits: { per_ip: number; per_client?: number } = this.#settings[endpoint];
    const draws: Draw[] = [{ bucket: `${endpoint}:ip`, key: ip, perMinute: limits.per_ip }];
    if (clientId !== undefined && limits.per_client !== undefined) draws.push({ bucket: `${endpoint}:client`, key: clientId, perMinute: limits.per_client });
    return this.#store.take(draws);
  }
}
