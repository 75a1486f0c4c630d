import type { Registry } from 'prom-client';
import type { Principal } from '../auth/principal.ts';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import { LIMIT_SCOPES, RequestLimitMetrics, type LimitScope } from '../observability/request-limit-metrics.ts';
import type { Decision, Draw } from './bucket-store.ts';
import { openLimitStore } from './limit-store.ts';
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
  close(): void;
}

interface ScopeLimit {
  readonly scope: LimitScope;
  readonly bucket: string;
  readonly rate: BucketRate;
}

/** Store failures are logged at most this often: an outage must not turn into one line per request. */
const STORE_ERROR_LOG_MS = 10_000;

/** A request no configured scope applies to (per_client only, and a token naming no client); or a store failure let through. */
const NOTHING_TO_COUNT: Verdict = { kind: 'allow', rateLimit: undefined };
const UNAVAILABLE: Verdict = { kind: 'unavailable' };

/**
 * The request limits of `limits.requests`, or undefined when none is set, so the pipeline has no stage
 * for them at all. Throws a ConfigError when a Redis store's URL cannot be read.
 */
export function createRequestLimiter(config: Config, deps: { registry: Registry; logger: Logger }): RequestLimiter | undefined {
  const { requests, store: storeSettings, on_store_error: onStoreError } = config.limits;
  const limits: ScopeLimit[] = [];
  for (const scope of LIMIT_SCOPES) {
    const limit = requests[`per_${scope}`];
    if (limit !== undefined) limits.push({ scope, bucket: `requests:${scope}`, rate: { limit, windowMs: requests.window } });
  }
  if (limits.length === 0) return undefined;
  const { store, close } = openLimitStore(storeSettings);
  const metrics = new RequestLimitMetrics(deps.registry);
  const windowSeconds = Math.max(1, Math.ceil(requests.window / 1000));
  const policy = limits.map(({ scope, rate }) => `"${scope}";q=${rate.limit};w=${windowSeconds}`).join(', ');
  const logStoreError = throttledLog(deps.logger, onStoreError);

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
    logStoreError(error);
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
      let decision: Decision | Promise<Decision>;
      try {
        decision = store.take(draws);
      } catch (error) {
        return failed(error);
      }
      if (!(decision instanceof Promise)) return verdictOf(draws, scopes, decision);
      return decision.then((settled) => verdictOf(draws, scopes, settled), failed);
    },
    close,
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

/** One warning per STORE_ERROR_LOG_MS at most, saying how many failures went unlogged before it. */
function throttledLog(logger: Logger, action: 'allow' | 'deny'): (error: unknown) => void {
  let last = -Infinity;
  let unlogged = 0;
  return (error) => {
    const now = Date.now();
    if (now - last < STORE_ERROR_LOG_MS) {
      unlogged += 1;
      return;
    }
    logger.warn({ err: error instanceof Error ? error.message : String(error), on_store_error: action, unlogged_failures: unlogged }, 'rate limit store failed');
    last = now;
    unlogged = 0;
  };
}
