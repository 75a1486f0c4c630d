import type { Principal } from '../auth/principal.ts';
import type { Config } from '../config/schema.ts';
import { LIMIT_SCOPES, type LimitScope, type RequestLimitMetrics } from '../observability/request-limit-metrics.ts';
import type { BucketStore, Decision, Draw } from './bucket-store.ts';
import { secondsUntilToken, type BucketRate } from './token-buckets.ts';

/** What the limits say of one request; `rateLimit` is its RateLimit field, absent when the store could not say. */
export type Verdict =
  | { readonly kind: 'allow'; readonly rateLimit: string | undefined }
  | { readonly kind: 'limit'; readonly rateLimit: string; readonly retryAfter: number }
  | { readonly kind: 'unavailable' };

export interface RequestLimiter {
  /** The RateLimit-Policy field (draft-ietf-httpapi-ratelimit-headers): the configured limits, on every answer. */
  readonly policy: string;
  /** Takes the request's token from each configured scope's bucket; `ip` is the socket's address, `tokenHash` the token's short hash. */
  decide(principal: Principal, ip: string, tokenHash: string | undefined): Verdict | Promise<Verdict>;
}

export interface LimiterParts {
  readonly store: BucketStore;
  readonly metrics: RequestLimitMetrics;
  /** A decision the store could not make: told to the log (sparingly). */
  readonly onStoreError: (error: unknown, action: 'allow' | 'deny') => void;
}

interface ScopeLimit {
  readonly scope: LimitScope;
  readonly bucket: string;
  readonly rate: BucketRate;
}

/** A request no configured scope applies to (per_client only, and a token naming no client); or a store failure let through. */
const NOTHING_TO_COUNT: Verdict = { kind: 'allow', rateLimit: undefined };
const UNAVAILABLE: Verdict = { kind: 'unavailable' };

/** The configured scopes, in a fixed order (principal, client, ip); empty when `limits.requests` sets no number. */
export function scopeLimits(requests: Config['limits']['requests']): ScopeLimit[] {
  const limits: ScopeLimit[] = [];
  for (const scope of LIMIT_SCOPES) {
    const limit = requests[`per_${scope}`];
    if (limit !== undefined) limits.push({ scope, bucket: `requests:${scope}`, rate: { limit, windowMs: requests.window } });
  }
  return limits;
}

/** The limiter of one config's `limits`, drawing from `parts.store`; undefined when no limit is set. */
export function createRequestLimiter(settings: Config['limits'], parts: LimiterParts): RequestLimiter | undefined {
  const limits = scopeLimits(settings.requests);
  if (limits.length === 0) return undefined;
  const { store, metrics } = parts;
  const onStoreError = settings.on_store_error;
  const windowSeconds = Math.max(1, Math.ceil(settings.requests.window / 1000));
  const policy = limits.map(({ scope, rate }) => `"${scope}";q=${rate.limit};w=${windowSeconds}`).join(', ');

  const verdictOf = (draws: readonly Draw[], scopes: readonly LimitScope[], decision: Decision): Verdict => {
    let rateLimit = '';
    let longest = 0;
    let longestWait = 0;
    for (let i = 0; i < draws.length; i += 1) {
      const level = decision.levels[i]!;
      const wait = secondsUntilToken(level, draws[i]!.rate);
      if (wait > longestWait) [longest, longestWait] = [i, wait];
      rateLimit += `${i === 0 ? '' : ', '}"${scopes[i]}";r=${Math.max(0, Math.floor(level))};t=${wait}`;
    }
    if (decision.allowed) return { kind: 'allow', rateLimit };
    metrics.limited(scopes[longest]!);
    return { kind: 'limit', rateLimit, retryAfter: Math.max(1, longestWait) };
  };
  const failed = (error: unknown): Verdict => {
    metrics.storeError(onStoreError);
    parts.onStoreError(error, onStoreError);
    return onStoreError === 'allow' ? NOTHING_TO_COUNT : UNAVAILABLE;
  };

  return {
    policy,
    decide(principal, ip, tokenHash) {
      const draws: Draw[] = [];
      const scopes: LimitScope[] = [];
      for (const { scope, bucket, rate } of limits) {
        const key = keyOf(scope, principal, ip, tokenHash);
        if (key === undefined) continue;
        draws.push({ bucket, key, rate });
        scopes.push(scope);
      }
      if (draws.length === 0) return NOTHING_TO_COUNT;
      const decision = store.take(draws);
      if (!(decision instanceof Promise)) return verdictOf(draws, scopes, decision);
      return decision.then((settled) => verdictOf(draws, scopes, settled), failed);
    },
  };
}

/**
 * The bucket key of a scope: a principal is its issuer and subject (a token without a subject is its own
 * principal, as for stream slots), a client its issuer and client id (a token naming no client has no
 * client limit), an IP the socket's address, never a header a client could choose.
 */
function keyOf(scope: LimitScope, principal: Principal, ip: string, tokenHash: string | undefined): string | undefined {
  if (scope === 'ip') return ip;
  if (scope === 'client') return principal.clientId === undefined ? undefined : `${principal.issuer} ${principal.clientId}`;
  return `${principal.issuer} ${principal.subject ?? tokenHash}`;
}
