import { LRUCache } from 'lru-cache';
import { AuthFailure, type AuthFailureReason } from './failure.ts';
import type { LookupLimiter } from './lookup-limiter.ts';
import type { Principal } from './principal.ts';
import { tokenDigest } from './token-digest.ts';

/** Failures that say nothing about the token, so they are never cached. */
export const TRANSIENT_REASONS: ReadonlySet<AuthFailureReason> = new Set(['verifier_unavailable', 'rate_limited', 'overloaded']);

/** What a lookup carries to the fetch: the token (never a cache key) and who asked. */
interface Lookup {
  readonly token: string;
  readonly client: string;
}

/** What the cache remembers about a token: who it speaks for, or why it was refused. Never the token. */
type Verdict = { readonly principal: Principal } | { readonly reason: AuthFailureReason; readonly issuer: string | undefined };

/** How a lookup was served; a bounded metric label. */
export type CacheLookup = 'hit' | 'miss' | 'inflight';

export interface IntrospectionCacheOptions {
  readonly maxEntries: number;
  readonly maxTtlMs: number;
  readonly negativeTtlMs: number;
  readonly clockToleranceSeconds: number;
  /** The expensive call; an AuthFailure other than verifier_unavailable is a verdict worth keeping. */
  readonly introspect: (token: string) => Promise<Principal>;
  /** Admits each call to `introspect`; a refusal is not remembered. */
  readonly limiter?: LookupLimiter;
  /** How the lookup was served and how long it took, refusals and outages included. */
  readonly onLookup?: (lookup: CacheLookup, seconds: number) => void;
  /** Epoch milliseconds; tests move it. */
  readonly now?: () => number;
}

/**
 * Introspection results in a bounded LRU keyed by the token's SHA-256. An active token is kept for
 * min(max_ttl, exp − now), so an entry never outlives its token; an inactive or refused one for the
 * short negative TTL; an outage is not kept at all. Concurrent lookups of one token share one call
 * (lru-cache's fetch). Revocation at the authorization server therefore takes effect within max_ttl.
 */
export class IntrospectionCache {
  readonly #lru: LRUCache<string, Verdict, Lookup>;
  readonly #options: IntrospectionCacheOptions;
  readonly #now: () => number;

  constructor(options: IntrospectionCacheOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#lru = new LRUCache<string, Verdict, Lookup>({
      max: options.maxEntries,
      ttl: options.maxTtlMs,
      // Expired entries leave memory when they expire, not when next looked up.
      ttlAutopurge: true,
      perf: { now: this.#now },
      fetchMethod: async (_key, _stale, { context: { token, client }, options: entry }) => {
        const admission = options.limiter?.admit(client);
        if (admission && !admission.ok) throw new AuthFailure(admission.reason, 'introspection call refused');
        try {
          const principal = await options.introspect(token);
          const untilExpiry = principal.expiresAt === undefined ? Number.POSITIVE_INFINITY : principal.expiresAt * 1000 - this.#now();
          entry.ttl = Math.max(1, Math.min(options.maxTtlMs, untilExpiry));
          return { principal };
        } catch (error) {
          if (!(error instanceof AuthFailure) || TRANSIENT_REASONS.has(error.reason)) throw error;
          entry.ttl = options.negativeTtlMs;
          return { reason: error.reason, issuer: error.issuer };
        } finally {
          if (admission?.ok) admission.done();
        }
      },
    });
  }

  /**
   * The cached verdict, without a promise: the principal of a token this server said is active (counted
   * as a hit), 'refused' for a cached refusal, undefined when only `verify` can say (nothing cached, or
   * the token has since expired).
   */
  peek(token: string): Principal | 'refused' | undefined {
    const started = performance.now();
    const cached = this.#lru.get(tokenDigest(token));
    if (!cached) return undefined;
    if ('reason' in cached) return 'refused';
    const { expiresAt } = cached.principal;
    if (expiresAt !== undefined && expiresAt <= this.#now() / 1000 - this.#options.clockToleranceSeconds) return undefined;
    this.#options.onLookup?.('hit', (performance.now() - started) / 1000);
    return cached.principal;
  }

  /** `client` is who asked (the peer IP), for the per-client limit on introspection calls. */
  async verify(token: string, client = ''): Promise<Principal> {
    const started = performance.now();
    const key = tokenDigest(token);
    // A cached verdict is read synchronously: fetch() would build a promise and a status object per request.
    const cached = this.#lru.get(key);
    if (cached) {
      this.#options.onLookup?.('hit', (performance.now() - started) / 1000);
      return this.#settle(cached);
    }
    const status: LRUCache.Status<string, Verdict, Lookup> = {};
    let verdict: Verdict | undefined;
    try {
      verdict = await this.#lru.fetch(key, { context: { token, client }, status });
    } finally {
      this.#options.onLookup?.(status.fetch === 'hit' ? 'hit' : status.fetch === 'inflight' ? 'inflight' : 'miss', (performance.now() - started) / 1000);
    }
    if (!verdict) throw new AuthFailure('verifier_unavailable', 'no introspection result');
    return this.#settle(verdict);
  }

  #settle(verdict: Verdict): Principal {
    if ('reason' in verdict) throw new AuthFailure(verdict.reason, 'cached refusal', verdict.issuer);
    const { expiresAt } = verdict.principal;
    // The TTL already ends at exp; this guards the tolerance window the TTL rounding leaves.
    if (expiresAt !== undefined && expiresAt <= this.#now() / 1000 - this.#options.clockToleranceSeconds) {
      throw new AuthFailure('expired', 'exp has passed', verdict.principal.issuer);
    }
    return verdict.principal;
  }

  get size(): number {
    return this.#lru.size;
  }

  /** Cache keys and values, for tests that prove no token is kept. */
  entries(): Array<[string, Verdict]> {
    return [...this.#lru.entries()];
  }
}
