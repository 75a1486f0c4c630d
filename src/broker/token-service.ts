import { createLocalJWKSet, type JSONWebKeySet } from 'jose';
import { DEFAULTS } from '../config/defaults.ts';
import type { BrokerConfig, Config } from '../config/schema.ts';
import type { SecretRef } from '../config/secret-ref.ts';
import type { SecretSource } from '../config/secret-source.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { AccessTokens } from './access-tokens.ts';
import { AssertionChecks } from './assertions.ts';
import type { ClientAuthMethod } from './client-metadata.ts';
import type { ClientAssertionSettings } from './client-assertion.ts';
import type { PreRegistered } from './clients.ts';
import type { BrokerEndpoints } from './endpoints.ts';
import { enterpriseIssuers } from './enterprise-issuers.ts';
import { AuthorizationCodeGrant } from './grants/authorization-code.ts';
import { ClientCredentialsGrant, type MachineTerms } from './grants/client-credentials.ts';
import type { TokenGrant } from './grants/grant.ts';
import { JwtBearerGrant } from './grants/jwt-bearer.ts';
import { RefreshTokenGrant } from './grants/refresh-token.ts';
import type { LoginFlow } from './login-flow.ts';
import type { Revocations } from './revocations.ts';
import type { BrokerStore } from './store.ts';
import { TokenIssuer } from './token-issuer.ts';

/** Asymmetric algorithms only for client assertions: a shared secret (HS*) would be a client secret by another name. */
export const CLIENT_ASSERTION_ALGORITHMS: readonly string[] = DEFAULTS.algorithms;

/** `broker.clients` as the registry keeps them: each with its secret or its assertion keys. */
export function preRegisteredClients(settings: BrokerConfig, open: (ref: SecretRef) => SecretSource): PreRegistered[] {
  return settings.clients.map((client) => {
    const method: ClientAuthMethod = client.jwks ? 'private_key_jwt' : client.client_secret ? 'client_secret_basic' : 'none';
    return {
      client: {
        client_id: client.client_id,
        client_name: client.client_name,
        redirect_uris: client.redirect_uris,
        grant_types: client.grant_types,
        token_endpoint_auth_method: method,
        client_id_issued_at: 0,
      },
      secret: client.client_secret ? open(client.client_secret) : undefined,
      ...(client.jwks ? { keys: createLocalJWKSet(client.jwks as JSONWebKeySet) } : {}),
    };
  });
}

/** The assertion checks of the token endpoint, shared by client assertions and ID-JAGs (one replay record). */
export function assertionChecks(store: BrokerStore, config: Config, settings: BrokerConfig): AssertionChecks {
  return new AssertionChecks(store, config.tokens.clock_tolerance, settings.tokens.max_assertion_lifetime);
}

export function clientAssertionSettings(settings: BrokerConfig, endpoints: BrokerEndpoints, checks: AssertionChecks): ClientAssertionSettings | undefined {
  if (!settings.clients.some((client) => client.jwks)) return undefined;
  return { checks, audiences: [endpoints.issuer, endpoints.token], algorithms: CLIENT_ASSERTION_ALGORITHMS };
}

export interface GrantDeps {
  readonly config: Config;
  readonly settings: BrokerConfig;
  readonly store: BrokerStore;
  readonly login: LoginFlow;
  readonly revocations: Revocations;
  readonly accessTokens: AccessTokens;
  readonly checks: AssertionChecks;
  readonly issuer: string;
  readonly metrics: Metrics;
  readonly logger: Logger;
}

/** The grant types the token endpoint serves: the two of every broker, and those some configured client uses. */
export function tokenGrants(deps: GrantDeps): TokenGrant[] {
  const { config, settings, store, revocations, metrics, logger } = deps;
  const issuer = new TokenIssuer(store, deps.accessTokens, settings.tokens.refresh_ttl);
  const onReplay = (kind: string) => () => {
    metrics.brokerEvent(`replay:${kind}`, 'revoked');
    logger.warn({ kind }, 'broker: a used credential came back; its grant is revoked');
  };
  const grants: TokenGrant[] = [
    new AuthorizationCodeGrant(deps.login, revocations, issuer, onReplay('authorization_code')),
    new RefreshTokenGrant(store, revocations, issuer, onReplay('refresh_token')),
  ];
  const terms: MachineTerms = {
    resource: config.resource.url,
    scopesSupported: config.resource.scopes_supported,
    defaultScopes: config.tokens.required_scopes,
    clientScopes: new Map(settings.clients.flatMap((client) => (client.scopes ? [[client.client_id, client.scopes] as const] : []))),
  };
  const granted = new Set(settings.clients.flatMap((client) => client.grant_types));
  if (granted.has('client_credentials')) grants.push(new ClientCredentialsGrant(issuer, terms));
  if (settings.enterprise) {
    const issuers = enterpriseIssuers(config, settings, deps.issuer, (from, result, count) => metrics.keyFetch(from, result, count));
    grants.push(new JwtBearerGrant(issuers, deps.checks, issuer, terms));
  }
  return grants;
}
