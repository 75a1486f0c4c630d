import { LRUCache } from 'lru-cache';

interface Bucket {
  tokens: number;
  at: number;
}

const MAX_TRACKED_KEYS = 10_000;

/**
 * One token bucket per key (a client IP, say), refilled at `perSecond` up to `burst`. The table is an
 * LRU: a flood of new keys evicts the oldest buckets instead of growing without bound.
 */
export class TokenBuckets {
  readonly #buckets = new LRUCache<string, Bucket>({ max: MAX_TRACKED_KEYS });
  readonly #rate: number;
  readonly #burst: number;
  readonly #now: () => number;

  constructor(options: { perSecond: number; burst: number; now?: () => number }) {
    this.#rate = options.perSecond;
    this.#burst = options.burst;
    this.#now = options.now ?? Date.now;
  }

  /** Takes a token for `key` if one is left. */
  take(key: string): boolean {
    const bucket = this.#refilled(key);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Whether a token is left, without taking it. */
  has(key: string): boolean {
    return this.#refilled(key).tokens >= 1;
  }

  /** Seconds until `key` has a token again. */
  retryAfter(key: string): number {
    const bucket = this.#refilled(key);
    return bucket.tokens >= 1 ? 0 : Math.ceil((1 - bucket.tokens) / this.#rate);
  }

  #refilled(key: string): Bucket {
    const now = this.#now();
    const bucket = this.#buckets.get(key) ?? { tokens: this.#burst, at: now };
    bucket.tokens = Math.min(this.#burst, bucket.tokens + ((now - bucket.at) / 1000) * this.#rate);
    bucket.at = now;
    this.#buckets.set(key, bucket);
    return bucket;
  }
}
