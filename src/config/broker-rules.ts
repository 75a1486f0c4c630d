import { JWT_BEARER_GRANT } from './broker-schema.ts';
import type { ConfigProblem } from './errors.ts';
import type { BrokerConfig, Config } from './schema.ts';
import { isRedirectUriAllowed } from './urls.ts';

type SecureUrlCheck = (path: string, value: string | undefined) => void;
type PreRegisteredClient = BrokerConfig['clients'][number];

/** What broker mode must satisfy across its keys; every problem with its YAML path. */
export function brokerProblems(config: Config, requireSecureUrl: SecureUrlCheck): ConfigProblem[] {
  const { broker } = config;
  if (!broker) return [];
  const problems: ConfigProblem[] = [];
  requireSecureUrl('broker.issuer', broker.issuer);
  requireSecureUrl('broker.identity_provider.issuer', broker.identity_provider.issuer);
  const brokerIssuer = broker.issuer ?? new URL(config.resource.url).origin;
  if (config.authorization_servers.some((server) => server.issuer === brokerIssuer)) {
    problems.push({ path: 'authorization_servers', message: `${brokerIssuer} is the broker's issuer; it verifies its own tokens` });
  }
  if (!broker.identity_provider.scopes.includes('openid')) problems.push({ path: 'broker.identity_provider.scopes', message: 'must include openid: the login is an OpenID Connect one' });
  if (new Set(broker.clients.map((client) => client.client_id)).size !== broker.clients.length) {
    problems.push({ path: 'broker.clients', message: 'a client_id is listed twice' });
  }
  broker.clients.forEach((client, index) => problems.push(...clientProblems(client, `broker.clients[${index}]`, config)));
  problems.push(...enterpriseProblems(config, brokerIssuer, requireSecureUrl));
  return problems;
}

/** A description is for a scope a client can be granted; any other key is a typo. */
export function scopeDescriptionProblems(config: Config): ConfigProblem[] {
  const supported = config.resource.scopes_supported;
  return Object.keys(config.resource.scope_descriptions ?? {})
    .filter((scope) => !supported.includes(scope))
    .map((scope) => ({ path: `resource.scope_descriptions.${scope}`, message: `${scope} is not in resource.scopes_supported` }));
}

/** A pre-registered client's grants, credentials and redirect URIs must make one coherent client. */
function clientProblems(client: PreRegisteredClient, path: string, config: Config): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const grants = client.grant_types;
  const interactive = grants.includes('authorization_code');
  if (interactive && client.redirect_uris.length === 0) problems.push({ path: `${path}.redirect_uris`, message: 'a client with authorization_code needs at least one redirect URI' });
  if (!interactive && client.redirect_uris.length > 0) problems.push({ path: `${path}.redirect_uris`, message: 'only authorization_code uses redirect URIs; this client has none to use them for' });
  if (!interactive && grants.includes('refresh_token')) problems.push({ path: `${path}.grant_types`, message: 'refresh_token comes with authorization_code: no other grant here issues refresh tokens' });
  for (const uri of client.redirect_uris) {
    if (!isRedirectUriAllowed(uri)) problems.push({ path: `${path}.redirect_uris`, message: `${uri}: redirect URIs must be https, or http on a loopback host` });
  }
  if (client.client_secret && client.jwks) problems.push({ path: path, message: 'give client_secret or jwks, not both: a client authenticates one way' });
  const confidential = client.client_secret !== undefined || client.jwks !== undefined;
  for (const grant of ['client_credentials', JWT_BEARER_GRANT] as const) {
    if (grants.includes(grant) && !confidential) problems.push({ path: `${path}.grant_types`, message: `${grant} is for confidential clients: give the client a client_secret or jwks` });
  }
  if (grants.includes('client_credentials') && config.upstream.credential.type === 'user_token') {
    problems.push({ path: `${path}.grant_types`, message: "client_credentials with upstream.credential user_token: a machine has no user whose identity provider token could be sent upstream" });
  }
  if (grants.includes(JWT_BEARER_GRANT) && !config.broker?.enterprise) {
    problems.push({ path: `${path}.grant_types`, message: `${JWT_BEARER_GRANT} needs broker.enterprise.trusted_issuers: no ID-JAG could be trusted` });
  }
  client.jwks?.keys.forEach((key, index) => {
    const problem = publicKeyProblem(key);
    if (problem) problems.push({ path: `${path}.jwks.keys[${index}]`, message: problem });
  });
  const supported = config.resource.scopes_supported;
  for (const scope of client.scopes ?? []) {
    if (supported.length > 0 && !supported.includes(scope)) problems.push({ path: `${path}.scopes`, message: `${scope} is not in resource.scopes_supported` });
  }
  return problems;
}

/** A client's assertion key: a public signature key of a kind JOSE signs with, never a private or symmetric one. */
function publicKeyProblem(key: Record<string, unknown>): string | undefined {
  if (key.d !== undefined || key.k !== undefined) return 'a private or symmetric key; publish only the public key';
  if (!['RSA', 'EC', 'OKP'].includes(key.kty as string)) return 'kty must be RSA, EC or OKP';
  if (key.kty === 'RSA' && (typeof key.n !== 'string' || Buffer.from(key.n, 'base64url').length * 8 < 2048)) return 'RSA keys must be at least 2048 bits';
  return undefined;
}

function enterpriseProblems(config: Config, brokerIssuer: string, requireSecureUrl: SecureUrlCheck): ConfigProblem[] {
  const trusted = config.broker?.enterprise?.trusted_issuers ?? [];
  const problems: ConfigProblem[] = [];
  const seen = new Set<string>();
  trusted.forEach((entry, index) => {
    const path = `broker.enterprise.trusted_issuers[${index}]`;
    requireSecureUrl(`${path}.issuer`, entry.issuer);
    requireSecureUrl(`${path}.jwks_uri`, entry.jwks_uri);
    if (seen.has(entry.issuer)) problems.push({ path: `${path}.issuer`, message: 'this issuer is listed twice' });
    seen.add(entry.issuer);
    // An authorization server honouring grants it issued itself would widen its own authority.
    if (entry.issuer === brokerIssuer) problems.push({ path: `${path}.issuer`, message: "the broker's own issuer cannot vouch for itself" });
    // The upstream credential of a user_token deployment is looked up by subject: subjects from another issuer
    // than the identity provider could name someone else's tokens.
    if (config.upstream.credential.type === 'user_token' && entry.issuer !== config.broker?.identity_provider.issuer) {
      problems.push({ path: `${path}.issuer`, message: 'with upstream.credential user_token, only broker.identity_provider.issuer: its users are the ones the broker holds tokens for' });
    }
  });
  return problems;
}
