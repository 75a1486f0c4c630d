import { decodeJwt } from 'jose';
import type { Config } from '../config/schema.ts';
import { discoverIssuerMetadata } from './discovery.ts';
import { AuthFailure } from './failure.ts';
import { verifyJwt, type JwtRules } from './jwt.ts';
import { KeySet, type KeyFetchResult } from './key-set.ts';
import type { Principal } from './principal.ts';

const DISCOVERY_MAX_BYTES = 256 * 1024;

export interface VerifierHooks {
  readonly onKeyFetch?: (issuer: string, result: KeyFetchResult, keyCount: number) => void;
}

/** Chooses the authorization server by the token's `iss` and verifies the token by its rules. */
export class TokenVerifier {
  readonly #rules: ReadonlyMap<string, JwtRules>;

  constructor(config: Config, hooks: VerifierHooks = {}) {
    const { tokens } = config;
    const audiences = [config.resource.url, ...tokens.audiences];
    this.#rules = new Map(
      config.authorization_servers.map((server): [string, JwtRules] => {
        const jwksUri = server.jwks_uri;
        const keySet = new KeySet({
          jwksUri: jwksUri
            ? async () => jwksUri
            : async () => {
                const metadata = await discoverIssuerMetadata(server.issuer, { timeoutMs: tokens.jwks.timeout, maxBytes: DISCOVERY_MAX_BYTES });
                if (!metadata.jwks_uri) throw new Error(`${server.issuer} publishes no jwks_uri`);
                return metadata.jwks_uri;
              },
          timeoutMs: tokens.jwks.timeout,
          cooldownMs: tokens.jwks.cooldown,
          refreshMs: tokens.jwks.refresh,
          onFetch: (result, count) => hooks.onKeyFetch?.(server.issuer, result, count),
        });
        return [
          server.issuer,
          {
            issuer: server.issuer,
            audiences,
            algorithms: server.algorithms,
            requireAtJwtTyp: server.require_at_jwt_typ,
            clockToleranceSeconds: tokens.clock_tolerance / 1000,
            keySet,
          },
        ];
      }),
    );
  }

  get issuers(): readonly string[] {
    return [...this.#rules.keys()];
  }

  /** Ready when every issuer's keys have been fetched at least once. */
  get ready(): boolean {
    return [...this.#rules.values()].every((rules) => rules.keySet.ready);
  }

  /** Fetches every issuer's keys; resolves with the issuers that failed. */
  async refreshKeys(): Promise<Map<string, Error>> {
    const failures = new Map<string, Error>();
    await Promise.all(
      [...this.#rules.values()].map((rules) => rules.keySet.refresh().catch((error: Error) => void failures.set(rules.issuer, error))),
    );
    return failures;
  }

  async verify(token: string): Promise<Principal> {
    let issuer: unknown;
    try {
      issuer = decodeJwt(token).iss;
    } catch {
      throw new AuthFailure('malformed_token', 'not a compact JWS JWT');
    }
    const rules = typeof issuer === 'string' ? this.#rules.get(issuer) : undefined;
    if (!rules) throw new AuthFailure('wrong_issuer', 'iss names no configured authorization server');
    return verifyJwt(token, rules);
  }
}
