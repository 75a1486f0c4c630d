import { LRUCache } from 'lru-cache';

/** A bucket's fill: `limit` tokens per `windowMs`, added evenly, and never more than `limit` held (the burst). */
export interface BucketRate {
  readonly limit: number;
  readonly windowMs: number;
}

/** A bucket as last seen: its tokens (fractional between refills) and when. */
export interface Bucket {
  tokens: number;
  at: number;
}

const DEFAULT_MAX_KEYS = 10_000;

/** Whole seconds until a bucket holding `tokens` has one token again; 0 when it has one now. */
export function secondsUntilToken(tokens: number, rate: BucketRate): number {
  return tokens >= 1 ? 0 : Math.ceil(((1 - tokens) * rate.windowMs) / rate.limit / 1000);
}

/**
 * One token bucket per key (a client IP, a principal), each refilled at its rate. The table is an LRU of
 * `maxKeys`: a flood of new keys evicts the oldest buckets instead of growing without bound, and an
 * evicted key starts again full, which errs towards letting a request through.
 */
export class TokenBuckets {
  readonly #buckets: LRUCache<string, Bucket>;
  readonly #now: () => number;

  constructor(options: { maxKeys?: number; now?: () => number } = {}) {
    this.#buckets = new LRUCache<string, Bucket>({ max: options.maxKeys ?? DEFAULT_MAX_KEYS });
    this.#now = options.now ?? Date.now;
  }

  /** The bucket of `key`, refilled up to now; taking a token is `tokens -= 1` on it. */
  refilled(key: string, rate: BucketRate): Bucket {
    const now = this.#now();
    let bucket = this.#buckets.get(key);
    if (!bucket) this.#buckets.set(key, (bucket = { tokens: rate.limit, at: now }));
    bucket.tokens = Math.min(rate.limit, bucket.tokens + (Math.max(0, now - bucket.at) * rate.limit) / rate.windowMs);
    bucket.at = now;
    return bucket;
  }
}
