import { decodeJwt, decodeProtectedHeader } from 'jose';
import type { Config } from '../config/schema.ts';
import type { SecretSource } from '../config/secret-source.ts';
import { CircuitBreaker } from './circuit-breaker.ts';
import { AuthFailure } from './failure.ts';
import { introspect, type IntrospectionResult } from './introspection.ts';
import { IntrospectionCache, TRANSIENT_REASONS, type CacheLookup } from './introspection-cache.ts';
import { issuerMetadataSource } from './issuer-metadata.ts';
import { verifyJwt, type JwtRules } from './jwt.ts';
import { KeySet, type KeyFetchResult } from './key-set.ts';
import { LookupLimiter } from './lookup-limiter.ts';
import { VerifiedTokens } from './verified-tokens.ts';
import type { Principal } from './principal.ts';

export interface VerifierHooks {
  readonly onKeyFetch?: (issuer: string, result: KeyFetchResult, keyCount: number) => void;
  readonly onIntrospection?: (issuer: string, result: IntrospectionResult, seconds: number) => void;
  readonly onCacheLookup?: (issuer: string, lookup: CacheLookup) => void;
  /** Every verification, allowed or refused, with its method, cache result and duration. */
  readonly onVerification?: (method: 'jwt' | 'introspection', cache: CacheLookup, seconds: number) => void;
}

/**
 * An issuer whose keys this process holds (the broker's): its tokens are verified like any JWT, against
 * its public key set, and refused once revoked even though they have not expired.
 */
export interface OwnIssuer {
  readonly issuer: string;
  readonly jwks: { readonly keys: readonly object[] };
  readonly algorithms: readonly string[];
  readonly isRevoked: (principal: Principal) => boolean;
}

/** One authorization server's ways of checking a token: local JWT verification, introspection, or both. */
interface ServerVerifiers {
  readonly issuer: string;
  readonly jwt: JwtRules | undefined;
  readonly introspection: { readonly cache: IntrospectionCache; readonly endpoint: () => Promise<string> } | undefined;
}

/**
 * Routes a token to the authorization server that can check it. A JWT whose `iss` names a server that
 * verifies JWTs is verified locally, and a failure there is final: it is never retried by introspection.
 * Anything else (opaque tokens, JWTs of an introspection-only server) is introspected.
 */
/** Consecutive introspection failures that pause calls, and for how long (SECURITY-CASES SEC-D07). */
const BREAKER_THRESHOLD = 5;
const BREAKER_OPEN_MS = 5_000;

export class TokenVerifier {
  readonly #servers: ReadonlyMap<string, ServerVerifiers>;
  readonly #introspectors: readonly ServerVerifiers[];
  readonly #resolvedEndpoints = new Set<string>();

  constructor(config: Config, secrets: ReadonlyMap<string, SecretSource>, hooks: VerifierHooks = {}, own?: OwnIssuer) {
    const { tokens } = config;
    const audiences = [config.resource.url, ...tokens.audiences];
    const clockToleranceSeconds = tokens.clock_tolerance / 1000;
    const limiter = new LookupLimiter({ perClientPerSecond: config.limits.introspections_per_client, maxConcurrent: config.limits.max_concurrent_introspections });
    this.#servers = new Map(
      config.authorization_servers.map((server): [string, ServerVerifiers] => {
        const metadata = issuerMetadataSource(server.issuer, tokens.jwks.timeout);
        const discovered = (member: 'jwks_uri' | 'introspection_endpoint') => async () => {
          const value = (await metadata())[member];
          if (typeof value !== 'string') throw new Error(`${server.issuer} publishes no ${member}`);
          return value;
        };
        const jwksUri = server.jwks_uri;
        const jwt: JwtRules | undefined = server.verify_jwt
          ? {
              issuer: server.issuer,
              audiences,
              algorithms: server.algorithms,
              requireAtJwtTyp: server.require_at_jwt_typ,
              scopeClaim: server.scope_claim,
              clockToleranceSeconds,
              keySet: new KeySet({
                jwksUri: jwksUri ? async () => jwksUri : discovered('jwks_uri'),
                timeoutMs: tokens.jwks.timeout,
                cooldownMs: tokens.jwks.cooldown,
                refreshMs: tokens.jwks.refresh,
                maxStaleMs: tokens.jwks.max_stale,
                onFetch: (result, count) => hooks.onKeyFetch?.(server.issuer, result, count),
              }),
            }
          : undefined;
        let introspection: ServerVerifiers['introspection'];
        if (server.introspection) {
          const settings = server.introspection;
          const configured = settings.endpoint;
          const endpoint = configured ? async () => configured : discovered('introspection_endpoint');
          const rules = {
            issuer: server.issuer,
            endpoint,
            clientId: settings.client_id,
            clientSecret: secrets.get(server.issuer)!,
            authMethod: settings.auth_method,
            timeoutMs: settings.timeout,
            audiences,
            clockToleranceSeconds,
            breaker: new CircuitBreaker({ threshold: BREAKER_THRESHOLD, openMs: BREAKER_OPEN_MS }),
            onResult: (result: IntrospectionResult, seconds: number) => hooks.onIntrospection?.(server.issuer, result, seconds),
          };
          introspection = {
            endpoint,
            cache: new IntrospectionCache({
              limiter,
              maxEntries: tokens.cache.max_entries,
              maxTtlMs: tokens.cache.max_ttl,
              negativeTtlMs: tokens.cache.negative_ttl,
              clockToleranceSeconds,
              introspect: (token) => introspect(token, rules),
              onLookup: (lookup, seconds) => {
                hooks.onCacheLookup?.(server.issuer, lookup);
                hooks.onVerification?.('introspection', lookup, seconds);
              },
            }),
          };
        }
        return [server.issuer, { issuer: server.issuer, jwt, introspection }];
      }),
    );
    if (own) {
      const servers = this.#servers as Map<string, ServerVerifiers>;
      servers.set(own.issuer, {
        issuer: own.issuer,
        introspection: undefined,
        jwt: {
          issuer: own.issuer,
          audiences,
          algorithms: own.algorithms,
          requireAtJwtTyp: true,
          scopeClaim: 'scope',
          clockToleranceSeconds,
          keySet: new KeySet({
            document: async () => own.jwks,
            timeoutMs: tokens.jwks.timeout,
            cooldownMs: tokens.jwks.cooldown,
            refreshMs: Number.POSITIVE_INFINITY,
            maxStaleMs: Number.POSITIVE_INFINITY,
          }),
        },
      });
      this.#isRevoked = own.isRevoked;
    }
    this.#introspectors = [...this.#servers.values()].filter((server) => server.introspection);
    this.#verified = new VerifiedTokens({ maxEntries: tokens.cache.max_entries });
    this.#hooks = hooks;
  }

  readonly #hooks: VerifierHooks;
  readonly #isRevoked: ((principal: Principal) => boolean) | undefined;
  /** Verified JWTs of every issuer; each entry is checked against its own issuer's key set. */
  readonly #verified: VerifiedTokens;

  get issuers(): readonly string[] {
    return [...this.#servers.keys()];
  }

  /** Ready when every server's keys have been fetched once and every introspection endpoint is known. */
  get ready(): boolean {
    return [...this.#servers.values()].every(
      (server) => (!server.jwt || server.jwt.keySet.ready) && (!server.introspection || this.#resolvedEndpoints.has(server.issuer)),
    );
  }

  /** Cached introspection results across servers, for the entries gauge. */
  get cachedTokens(): number {
    return this.#introspectors.reduce((sum, server) => sum + server.introspection!.cache.size, 0);
  }

  /**
   * Fetches keys that are missing or due for a refresh, and resolves introspection endpoints; resolves
   * with the servers that failed. Called until ready, then periodically, so keys that went stale during
   * an outage are replaced without waiting for a request (a pod that is not ready gets none).
   */
  async prepare(): Promise<Map<string, Error>> {
    const failures = new Map<string, Error>();
    await Promise.all(
      [...this.#servers.values()].map(async (server) => {
        try {
          await server.jwt?.keySet.refreshIfDue();
          if (server.introspection) {
            await server.introspection.endpoint();
            this.#resolvedEndpoints.add(server.issuer);
          }
        } catch (error) {
          failures.set(server.issuer, error as Error);
        }
      }),
    );
    return failures;
  }

  /**
   * Who the token speaks for. A token seen before (a JWT verified earlier, or an introspection answer
   * cached by the servers in the order they are asked) is answered without a promise: that is the
   * request path's common case. `client` (the peer IP) is charged for any introspection call the token
   * causes. Throws (synchronously for a known token) an AuthFailure for a revoked one.
   */
  verify(token: string, client = ''): Principal | Promise<Principal> {
    const principal = this.#known(token) ?? this.#lookUp(token, client);
    if (!this.#isRevoked) return principal;
    return principal instanceof Promise ? principal.then(this.#unrevoked) : this.#unrevoked(principal);
  }

  /** Checked on every use, cached or not: a revocation must not wait for a cache entry to age out. */
  readonly #unrevoked = (principal: Principal): Principal => {
    if (this.#isRevoked!(principal)) throw new AuthFailure('revoked', 'the token was revoked', principal.issuer);
    return principal;
  };

  /** A cached positive answer; refusals are always left to the lookup. */
  #known(token: string): Principal | undefined {
    // Before decoding anything: a token verified earlier is a hash lookup away.
    const started = performance.now();
    const verified = this.#verified.get(token);
    if (verified) {
      this.#hooks.onVerification?.('jwt', 'hit', (performance.now() - started) / 1000);
      return verified;
    }
    for (const server of this.#introspectors) {
      const cached = server.introspection!.cache.peek(token);
      if (cached !== 'refused') return cached;
    }
    return undefined;
  }

  async #lookUp(token: string, client: string): Promise<Principal> {
    const started = performance.now();
    let issuer: unknown;
    // Counted before decoding: an opaque token would otherwise cost a thrown error on every request.
    let jwtShaped = countDots(token) === 2;
    if (jwtShaped) {
      try {
        issuer = decodeJwt(token).iss;
      } catch {
        jwtShaped = false;
      }
    }
    const named = typeof issuer === 'string' ? this.#servers.get(issuer) : undefined;
    if (named?.jwt) {
      try {
        const principal = await verifyJwt(token, named.jwt);
        this.#verified.set(token, principal, decodeProtectedHeader(token).kid, named.jwt.keySet);
        return principal;
      } finally {
        this.#hooks.onVerification?.('jwt', 'miss', (performance.now() - started) / 1000);
      }
    }
    if (named?.introspection) return named.introspection.cache.verify(token, client);
    // A JWT naming an issuer we do not trust is refused here: asking introspection endpoints about it would
    // cost them a call each and teach nothing (they did not issue it).
    if (jwtShaped && typeof issuer === 'string') throw new AuthFailure('wrong_issuer', 'iss names no configured authorization server');
    if (this.#introspectors.length === 0) {
      throw jwtShaped
        ? new AuthFailure('wrong_issuer', 'iss names no configured authorization server')
        : new AuthFailure('malformed_token', 'not a compact JWS JWT, and no server introspects');
    }
    return this.#introspectEverywhere(token, client);
  }

  /**
   * An opaque token names no issuer, so each introspecting server is asked in order until one knows it.
   * A server that cannot answer makes the whole answer unavailable: "inactive" from the others is not
   * proof that the token is bad.
   */
  async #introspectEverywhere(token: string, client: string): Promise<Principal> {
    let refusal: AuthFailure | undefined;
    let outage: AuthFailure | undefined;
    for (const server of this.#introspectors) {
      try {
        return await server.introspection!.cache.verify(token, client);
      } catch (error) {
        if (!(error instanceof AuthFailure)) throw error;
        // No answer is not a "no": an outage or a refused lookup decides the whole answer.
        if (TRANSIENT_REASONS.has(error.reason)) outage ??= error;
        else if (error.reason !== 'inactive' || !refusal) refusal = error;
      }
    }
    throw outage ?? refusal!;
  }
}

function countDots(token: string): number {
  let dots = 0;
  for (let at = token.indexOf('.'); at !== -1 && dots < 3; at = token.indexOf('.', at + 1)) dots += 1;
  return dots;
}
