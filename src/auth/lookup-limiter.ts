import { once } from '../lifecycle/counts.ts';
import { TokenBuckets } from './token-buckets.ts';

export type Admission = { ok: true; done: () => void } | { ok: false; reason: 'rate_limited' | 'overloaded' };

/**
 * Admits introspection calls (cache misses): each client IP gets a token bucket of `perClientPerSecond`
 * with bursts of twice that, and all clients together at most `maxConcurrent` calls in flight. Random
 * tokens are free to send but cost the authorization server a call each; this keeps one client from
 * turning the proxy into an amplifier, and the proxy from queueing without bound when the AS is slow.
 */
export class LookupLimiter {
  readonly #buckets: TokenBuckets;
  readonly #maxConcurrent: number;
  #inFlight = 0;

  constructor(options: { perClientPerSecond: number; maxConcurrent: number; now?: () => number }) {
    this.#buckets = new TokenBuckets({ perSecond: options.perClientPerSecond, burst: options.perClientPerSecond * 2, now: options.now });
    this.#maxConcurrent = options.maxConcurrent;
  }

  admit(client: string): Admission {
    if (!this.#buckets.has(client)) return { ok: false, reason: 'rate_limited' };
    if (this.#inFlight >= this.#maxConcurrent) return { ok: false, reason: 'overloaded' };
    this.#buckets.take(client);
    this.#inFlight += 1;
    return { ok: true, done: once(() => (this.#inFlight -= 1)) };
  }
}
