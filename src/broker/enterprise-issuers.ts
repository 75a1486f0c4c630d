import type { JWTVerifyGetKey } from 'jose';
import { issuerMetadataSource } from '../auth/issuer-metadata.ts';
import { KeySet, type KeyFetchResult } from '../auth/key-set.ts';
import type { BrokerConfig, Config } from '../config/schema.ts';

/** An enterprise identity provider whose ID-JAGs the broker honours. */
export interface EnterpriseIssuer {
  readonly issuer: string;
  /** What its ID-JAGs' `aud` may be: the broker's issuer, and the names configured besides. */
  readonly audiences: readonly string[];
  readonly algorithms: readonly string[];
  /** Selects a verification key from the issuer's published set; never from anything the assertion names. */
  readonly key: JWTVerifyGetKey;
}

/**
 * The trusted issuers of `broker.enterprise`, each with its key set: fetched from `jwks_uri` or the
 * discovered one, refreshed and bounded like an authorization server's (`tokens.jwks`).
 */
export function enterpriseIssuers(config: Config, settings: BrokerConfig, brokerIssuer: string, onKeyFetch: (issuer: string, result: KeyFetchResult, keyCount: number) => void): ReadonlyMap<string, EnterpriseIssuer> {
  const { jwks } = config.tokens;
  const entries = (settings.enterprise?.trusted_issuers ?? []).map((entry): [string, EnterpriseIssuer] => {
    const metadata = issuerMetadataSource(entry.issuer, jwks.timeout);
    const configured = entry.jwks_uri;
    const keySet = new KeySet({
      jwksUri: configured
        ? async () => configured
        : async () => {
            const discovered = (await metadata()).jwks_uri;
            if (typeof discovered !== 'string') throw new Error(`${entry.issuer} publishes no jwks_uri`);
            return discovered;
          },
      timeoutMs: jwks.timeout,
      cooldownMs: jwks.cooldown,
      refreshMs: jwks.refresh,
      maxStaleMs: jwks.max_stale,
      onFetch: (result, count) => onKeyFetch(entry.issuer, result, count),
    });
    return [entry.issuer, { issuer: entry.issuer, audiences: [brokerIssuer, ...entry.audiences], algorithms: entry.algorithms, key: keySet.getKey }];
  });
  return new Map(entries);
}
