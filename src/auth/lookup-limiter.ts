import { once } from '../lifecycle/counts.ts';
import { TokenBuckets, type BucketRate } from '../limits/token-buckets.ts';

export type Admission = { ok: true; done: () => void } | { ok: false; reason: 'rate_limited' | 'overloaded' };

/**
 * Admits introspection calls (cache misses): each client IP gets a token bucket of `perClientPerSecond`
 * with bursts of twice that, and all clients together at most `maxConcurrent` calls in flight. Random
 * tokens are free to send but cost the authorization server a call each; this keeps one client from
 * turning the proxy into an amplifier, and the proxy from queueing without bound when the AS is slow.
 */
export class LookupLimiter {
  readonly #buckets: TokenBuckets;
  readonly #rate: BucketRate;
  readonly #maxConcurrent: number;
  #inFlight = 0;

  constructor(options: { perClientPerSecond: number; maxConcurrent: number; now?: () => number }) {
    this.#buckets = new TokenBuckets({ now: options.now });
    this.#rate = { limit: options.perClientPerSecond * 2, windowMs: 2000 };
    this.#maxConcurrent = options.maxConcurrent;
  }

  admit(client: string): Admission {
    const bucket = this.#buckets.refilled(client, this.#rate);
    if (bucket.tokens < 1) return { ok: false, reason: 'rate_limited' };
    if (this.#inFlight >= this.#maxConcurrent) return { ok: false, reason: 'overloaded' };
    bucket.tokens -= 1;
    this.#inFlight += 1;
    return { ok: true, done: once(() => (this.#inFlight -= 1)) };
  }
}
