import { LRUCache } from 'lru-cache';
import type { KeySet } from './key-set.ts';
import type { Principal } from './principal.ts';
import { tokenDigest } from './token-digest.ts';

interface Verified {
  readonly principal: Principal;
  /** The issuer's key set the signature was checked against. */
  readonly keySet: KeySet;
  readonly kid: string | undefined;
  /** The key set's stamp for `kid` when the signature was checked. */
  readonly stamp: string;
}

/**
 * JWTs whose signature and claims were checked, keyed by the token's SHA-256 (never the token), so that
 * a token is verified once rather than on every request. An entry lives until the token's `exp` at the
 * latest, and is dropped as soon as the key that signed it is removed or replaced at a refresh, or the
 * key set goes past max_stale: a cached "yes" never outlives what it was based on.
 */
export class VerifiedTokens {
  readonly #lru: LRUCache<string, Verified>;
  readonly #now: () => number;

  constructor(options: { maxEntries: number; now?: () => number }) {
    this.#now = options.now ?? Date.now;
    this.#lru = new LRUCache<string, Verified>({ max: options.maxEntries, ttlAutopurge: false, perf: { now: this.#now } });
  }

  get(token: string): Principal | undefined {
    const key = tokenDigest(token);
    const entry = this.#lru.get(key);
    if (!entry) return undefined;
    const expiresAt = entry.principal.expiresAt;
    if (entry.keySet.keyStamp(entry.kid) !== entry.stamp || expiresAt === undefined || expiresAt * 1000 <= this.#now()) {
      this.#lru.delete(key);
      return undefined;
    }
    return entry.principal;
  }

  set(token: string, principal: Principal, kid: string | undefined, keySet: KeySet): void {
    const stamp = keySet.keyStamp(kid);
    const expiresAt = principal.expiresAt;
    if (stamp === undefined || expiresAt === undefined) return;
    const ttl = Math.floor(expiresAt * 1000 - this.#now());
    if (ttl > 0) this.#lru.set(tokenDigest(token), { principal, keySet, kid, stamp }, { ttl });
  }

  get size(): number {
    return this.#lru.size;
  }
}
