import { LRUCache } from 'lru-cache';
import { once } from '../lifecycle/counts.ts';

export type Admission = { ok: true; done: () => void } | { ok: false; reason: 'rate_limited' | 'overloaded' };

interface Bucket {
  tokens: number;
  at: number;
}

const MAX_TRACKED_CLIENTS = 10_000;

/**
 * Admits introspection calls (cache misses): each client IP gets a token bucket of `perClientPerSecond`
 * with bursts of twice that, and all clients together at most `maxConcurrent` calls in flight. Random
 * tokens are free to send but cost the authorization server a call each; this keeps one client from
 * turning the proxy into an amplifier, and the proxy from queueing without bound when the AS is slow.
 */
export class LookupLimiter {
  readonly #buckets = new LRUCache<string, Bucket>({ max: MAX_TRACKED_CLIENTS });
  readonly #rate: number;
  readonly #burst: number;
  readonly #maxConcurrent: number;
  readonly #now: () => number;
  #inFlight = 0;

  constructor(options: { perClientPerSecond: number; maxConcurrent: number; now?: () => number }) {
    this.#rate = options.perClientPerSecond;
    this.#burst = options.perClientPerSecond * 2;
    this.#maxConcurrent = options.maxConcurrent;
    this.#now = options.now ?? Date.now;
  }

  admit(client: string): Admission {
    const now = this.#now();
    const bucket = this.#buckets.get(client) ?? { tokens: this.#burst, at: now };
    bucket.tokens = Math.min(this.#burst, bucket.tokens + ((now - bucket.at) / 1000) * this.#rate);
    bucket.at = now;
    this.#buckets.set(client, bucket);
    if (bucket.tokens < 1) return { ok: false, reason: 'rate_limited' };
    if (this.#inFlight >= this.#maxConcurrent) return { ok: false, reason: 'overloaded' };
    bucket.tokens -= 1;
    this.#inFlight += 1;
    return { ok: true, done: once(() => (this.#inFlight -= 1)) };
  }
}
