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
  /** Put before the ID-JAG's `sub` to make the broker token's: another issuer's users are other users. */
  readonly subjectPrefix: string;
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
    return [entry.issuer, { issuer: entry.issuer, audiences: [brokerIssuer, ...entry.audiences], algorithms: entry.algorithms, subjectPrefix: subjectPrefixOf(entry, settings), key: keySet.getKey }];
  });
  return new Map(entries);
}

/**
 * Subject resolution (draft-ietf-oauth-identity-assertion-authz-grant §4.4): the users of the identity
 * provider the broker logs people in at are the same users, so its ID-JAG subjects stand as they are (when
 * the login takes `sub` too). Any other issuer's subjects are another namespace: prefixed with the issuer,
 * they can never name a user of the login, nor of another trusted issuer. `subject_prefix` overrides.
 */
function subjectPrefixOf(entry: NonNullable<BrokerConfig['enterprise']>['trusted_issuers'][number], settings: BrokerConfig): string {
  if (entry.subject_prefix !== undefined) return entry.subject_prefix;
  const { identity_provider: login } = settings;
  return entry.issuer === login.issuer && login.subject_claim === 'sub' ? '' : `${entry.issuer}#`;
}
