import { createLocalJWKSet, type JWK, type JWTHeaderParameters, type FlattenedJWSInput } from 'jose';
import { AuthFailure } from './failure.ts';
import { traced } from '../tracing/child-spans.ts';
import { FetchFailure, fetchJson, type FetchFailureKind } from './fetch-json.ts';

export type KeyFetchResult = 'ok' | FetchFailureKind | 'invalid_jwks';

export interface KeySetOptions {
  /** Where the keys are; called again after a failure, so discovery is retried too. */
  readonly jwksUri?: () => Promise<string>;
  /** The key set itself, for keys this process holds (the broker's): nothing is fetched then. */
  readonly document?: () => Promise<unknown>;
  readonly timeoutMs: number;
  /** The least time between two fetches triggered by an unknown `kid` (a flood of them costs one fetch). */
  readonly cooldownMs: number;
  /** Age after which keys are refetched in the background; the current ones serve meanwhile. */
  readonly refreshMs: number;
  /** Age after which keys that could not be refreshed are no longer trusted (fail closed). */
  readonly maxStaleMs: number;
  readonly maxBytes?: number;
  readonly maxKeys?: number;
  readonly onFetch?: (result: KeyFetchResult, keyCount: number) => void;
  readonly now?: () => number;
}

const DEFAULT_MAX_BYTES = 256 * 1024;
const DEFAULT_MAX_KEYS = 64;
const MIN_RSA_MODULUS_BITS = 2048;

type LocalKeySet = ReturnType<typeof createLocalJWKSet>;
type VerificationKey = Awaited<ReturnType<LocalKeySet>>;

/**
 * One issuer's signing keys. Unlike jose's remote set, a failed refresh keeps the last good keys, and
 * fetches go through our bounded fetch. Keys are only ever selected from this set: nothing a token
 * names (`jku`, `x5u`, `jwk`) is fetched or trusted.
 */
export class KeySet {
  readonly #options: KeySetOptions;
  readonly #now: () => number;
  #keys: LocalKeySet | undefined;
  /** Per kid, the keys published under it, as text: how a cached verification knows its key is unchanged. */
  #keysByKid = new Map<string, string>();
  /** Bumped on every successful fetch; a token verified without a kid is only trusted within one. */
  #generation = 0;
  #fetchedAt = 0;
  #lastAttempt = Number.NEGATIVE_INFINITY;
  #pending: Promise<void> | undefined;

  constructor(options: KeySetOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** True while there are keys young enough to trust; they stay usable through failed refreshes up to max_stale. */
  get ready(): boolean {
    return this.#keys !== undefined && !this.#tooStale();
  }

  /**
   * What a verification under `kid` rests on now: an earlier stamp that no longer equals the current one
   * means the key was removed or replaced (or, without a kid, that the set changed) since.
   */
  keyStamp(kid: string | undefined): string | undefined {
    if (!this.ready) return undefined;
    return kid === undefined ? `generation:${this.#generation}` : this.#keysByKid.get(kid);
  }

  /** Refetches keys older than the refresh age, unless a fetch was tried within the cooldown. */
  async refreshIfDue(): Promise<void> {
    if (!this.#keys || this.#now() - this.#fetchedAt > this.#options.refreshMs) {
      if (!this.#coolingDown()) await this.refresh();
    }
  }

  /** Fetches the keys now; concurrent callers share one request. Throws FetchFailure, keeping old keys. */
  refresh(): Promise<void> {
    this.#pending ??= traced('jwks fetch', () => this.#fetch()).finally(() => {
      this.#pending = undefined;
    });
    return this.#pending;
  }

  /** A jose key getter. */
  readonly getKey = async (header: JWTHeaderParameters, token: FlattenedJWSInput): Promise<VerificationKey> => {
    if (!this.ready) {
      // No keys yet, or keys past max_stale: a request may try a fetch (within the cooldown), never old keys.
      if (!this.#coolingDown() || !this.#keys) {
        await this.refresh().catch((error: unknown) => {
          throw new AuthFailure('verifier_unavailable', `signing keys unavailable: ${(error as Error).message}`);
        });
      }
      if (!this.ready) throw new AuthFailure('verifier_unavailable', 'signing keys are older than max_stale');
    } else if (this.#now() - this.#fetchedAt > this.#options.refreshMs && !this.#coolingDown()) {
      this.refresh().catch(() => undefined);
    }
    try {
      return await this.#select(header, token);
    } catch (error) {
      if (!isNoMatchingKey(error)) throw error;
    }
    if (!this.#coolingDown()) await this.refresh().catch(() => undefined);
    try {
      return await this.#select(header, token);
    } catch (error) {
      if (isNoMatchingKey(error)) throw new AuthFailure('unknown_key');
      throw error;
    }
  };

  #select(header: JWTHeaderParameters, token: FlattenedJWSInput): Promise<VerificationKey> {
    return this.#keys!(header, token);
  }

  #tooStale(): boolean {
    return this.#now() - this.#fetchedAt > this.#options.maxStaleMs;
  }

  #coolingDown(): boolean {
    return this.#now() - this.#lastAttempt < this.#options.cooldownMs;
  }

  async #fetch(): Promise<void> {
    this.#lastAttempt = this.#now();
    let document: unknown;
    try {
      const { jwksUri, document: local } = this.#options;
      document = local
        ? await local()
        : await fetchJson(await jwksUri!(), { timeoutMs: this.#options.timeoutMs, maxBytes: this.#options.maxBytes ?? DEFAULT_MAX_BYTES });
    } catch (error) {
      this.#options.onFetch?.(error instanceof FetchFailure ? error.kind : 'network', 0);
      throw error;
    }
    const keys = usableKeys(document, this.#options.maxKeys ?? DEFAULT_MAX_KEYS);
    if (typeof keys === 'string') {
      this.#options.onFetch?.('invalid_jwks', 0);
      throw new FetchFailure('invalid_json', keys);
    }
    this.#keys = createLocalJWKSet({ keys });
    this.#keysByKid = new Map();
    for (const key of keys) {
      if (typeof key.kid === 'string') this.#keysByKid.set(key.kid, (this.#keysByKid.get(key.kid) ?? '') + JSON.stringify(key));
    }
    this.#generation += 1;
    this.#fetchedAt = this.#now();
    this.#options.onFetch?.('ok', keys.length);
  }
}

function isNoMatchingKey(error: unknown): boolean {
  return (error as { code?: string } | null)?.code === 'ERR_JWKS_NO_MATCHING_KEY';
}

/** The public signature keys worth keeping, or why the document is not a key set. */
function usableKeys(document: unknown, maxKeys: number): JWK[] | string {
  const keys = (document as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) return 'the JWKS has no "keys" array';
  if (keys.length > maxKeys) return `the JWKS has ${keys.length} keys, more than the ${maxKeys} allowed`;
  const usable = keys.filter(
    (key): key is JWK =>
      typeof key === 'object' &&
      key !== null &&
      ['RSA', 'EC', 'OKP'].includes((key as JWK).kty as string) &&
      (key as JWK).d === undefined &&
      !isWeakRsaKey(key as JWK),
  );
  return usable.length > 0 ? usable : 'the JWKS has no usable public signature keys';
}

function isWeakRsaKey(key: JWK): boolean {
  return key.kty === 'RSA' && (typeof key.n !== 'string' || Buffer.from(key.n, 'base64url').length * 8 < MIN_RSA_MODULUS_BITS);
}
