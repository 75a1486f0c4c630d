// A real OAuth 2.1 authorization server for the demo and the tests: oidc-provider on 127.0.0.1, with
// dynamic client registration, authorization code + PKCE, RFC 8707 resource indicators issuing RFC 9068
// JWT access tokens, and interactions that approve at once (every user is demo-user, no form). With
// `upstream` it also issues tokens for upstream resources (client credentials, RFC 8693 token exchange):
// see upstream-grants.ts.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import Provider, { errors, type Configuration } from 'oidc-provider';
import {
  createUpstreamClients,
  registerTokenExchange,
  tokenEndpointControl,
  upstreamResourceServer,
  type TokenEndpointFault,
  type UpstreamClients,
  type UpstreamOptions,
} from './upstream-grants.ts';

export { ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT, type UpstreamClients, type UpstreamOptions } from './upstream-grants.ts';

export interface StartedAuthorizationServer {
  /** The issuer identifier: this server's origin, no trailing slash. */
  readonly issuer: string;
  /** The key access tokens are signed with; tests sign defective tokens with it. */
  readonly signingKey: { readonly privateJwk: JWK; readonly publicJwk: JWK; readonly kid: string; readonly alg: 'RS256' };
  /** An access token for `resource` by the client credentials grant of a pre-registered client. */
  mintToken(options: { resource: string; scope?: string }): Promise<string>;
  /** Revokes a token minted by `mintToken` (RFC 7009). */
  revokeToken(token: string): Promise<void>;
  /** A confidential client that may call the introspection endpoint, as a resource server would. */
  readonly introspectionClient: { readonly client_id: string; readonly client_secret: string };
  /** How many requests reached a path (e.g. `/token/introspection`) so far. */
  requestCount(path: string): number;
  /** How many POSTs reached the token endpoint (faulted ones included), optionally only those of one grant_type. */
  tokenRequests(grantType?: string): number;
  /** Makes POST /token answer 503 ('down') or drop the connection ('error'); undefined restores it. */
  failTokenEndpoint(mode: TokenEndpointFault): void;
  /** The clients for upstream resources; present when started with `upstream`. */
  readonly upstreamClients?: UpstreamClients;
  close(): Promise<void>;
}

export interface AuthorizationServerOptions {
  /**
   * Resource indicator → the scopes a token for it may carry, and whether its access tokens are RFC 9068
   * JWTs (the default) or opaque (checked by introspection). Any other resource is invalid_target.
   */
  readonly resources: Readonly<Record<string, { readonly scopes: readonly string[]; readonly format?: 'jwt' | 'opaque' }>>;
  readonly port?: number;
  readonly accessTokenTtlSeconds?: number;
  /** Upstream resources: client-credentials clients for them and the RFC 8693 token-exchange grant. */
  readonly upstream?: UpstreamOptions;
  /**
   * The resource a request that names none is for, as an identity provider's "default audience" does:
   * clients of the 2025-03-26 revision send no RFC 8707 `resource`, and no `scope` either, so an
   * authorization request without `scope` asks for all of this resource's (RFC 6749 §3.3: the server's
   * pre-defined default). Absent: such a request gets no access token for any resource here.
   */
  readonly defaultResource?: string;
  /**
   * RFC 9449 DPoP at the token endpoint (oidc-provider's `features.dPoP`): a token request carrying a
   * `DPoP` proof gets an access token bound to the proof's key (`cnf.jkt`, token_type DPoP). `true`
   * turns it on; `{ nonce: true }` also makes every proof carry a server nonce (`use_dpop_nonce`, then
   * `DPoP-Nonce`); `false` turns it off. Absent, the configuration names no DPoP at all, so oidc-provider's
   * own default applies and nothing changes for the existing tests (9.x has the feature on, without nonces).
   */
  readonly dpop?: boolean | { readonly nonce?: boolean };
}

const MINTER = { client_id: 'warden-test-minter', client_secret: randomBytes(24).toString('base64url') };
const RESOURCE_SERVER = { client_id: 'mcp-warden', client_secret: randomBytes(24).toString('base64url') };
export const DEMO_ACCOUNT = 'demo-user';

export async function startAuthorizationServer(options: AuthorizationServerOptions): Promise<StartedAuthorizationServer> {
  const server = createServer();
  server.listen(options.port ?? 0, '127.0.0.1');
  await once(server, 'listening');
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const kid = `rs-${randomBytes(6).toString('hex')}`;
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const privateJwk: JWK = { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  const upstreamResources = Object.values(options.upstream?.resources ?? {});
  const resourceScopes = [...new Set([...Object.values(options.resources), ...upstreamResources].flatMap((resource) => resource.scopes))];
  const upstream = options.upstream ? await createUpstreamClients() : undefined;
  const ttl = options.accessTokenTtlSeconds ?? 600;

  const configuration: Configuration = {
    jwks: { keys: [privateJwk] },
    clients: [
      { ...MINTER, grant_types: ['client_credentials'], response_types: [], redirect_uris: [] },
      { ...RESOURCE_SERVER, grant_types: [], response_types: [], redirect_uris: [] },
      ...(upstream?.metadata ?? []),
    ],
    scopes: ['openid', ...resourceScopes],
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    findAccount: async (_ctx, accountId) => ({ accountId, claims: async () => ({ sub: accountId }) }),
    interactions: { url: async (_ctx, interaction) => `/interaction/${interaction.uid}` },
    pkce: { required: () => true },
    // MCP clients register for refresh tokens without asking for offline_access; honour that.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    ttl: {
      AccessToken: ttl,
      // Per resource, so that upstream resources may have their own lifetime.
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? ttl,
      AuthorizationCode: 60,
      Interaction: 600,
      Session: 86_400,
      Grant: 86_400,
      RefreshToken: 86_400,
      IdToken: 3600,
    },
    features: {
      devInteractions: { enabled: false },
      registration: { enabled: true },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      ...(options.dpop === undefined ? {} : { dPoP: dpopFeature(options.dpop) }),
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => oneOf ?? options.defaultResource,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, resourceIndicator) => {
          const resource = Object.hasOwn(options.resources, resourceIndicator) ? options.resources[resourceIndicator] : undefined;
          const upstreamResource = !resource && options.upstream ? upstreamResourceServer(options.upstream, resourceIndicator, ttl) : undefined;
          if (upstreamResource) return upstreamResource;
          if (!resource) throw new errors.InvalidTarget();
          return {
            scope: resource.scopes.join(' '),
            audience: resourceIndicator,
            accessTokenTTL: ttl,
            ...(resource.format === 'opaque' ? { accessTokenFormat: 'opaque' } : { accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } }),
          };
        },
      },
    },
  };
  const provider = new Provider(issuer, configuration);
  if (options.upstream) registerTokenExchange(provider, options.upstream, publicJwk, ttl);
  const tokenEndpoint = tokenEndpointControl(provider);

  const counts = new Map<string, number>();
  server.on(
    'request',
    serveProvider(provider, counts, () => DEMO_ACCOUNT, (req, res, callback) => {
      if (tokenEndpoint.intercept(req, res)) return true;
      if (options.defaultResource) withDefaultScope(req, options.resources[options.defaultResource]?.scopes ?? []);
      if (req.method !== 'POST' || (req.url ?? '').split('?')[0] !== '/reg') return false;
      registerWithoutScopeLimit(req)
        .then(() => callback(req, res))
        .catch((error: unknown) => {
          res.writeHead(400, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: 'invalid_client_metadata', error_description: (error as Error).message }));
        });
      return true;
    }),
  );

  return {
    issuer,
    signingKey: { privateJwk, publicJwk, kid, alg: 'RS256' },
    introspectionClient: RESOURCE_SERVER,
    requestCount: (path) => counts.get(path) ?? 0,
    tokenRequests: (grantType) => tokenEndpoint.tokenRequests(grantType),
    failTokenEndpoint: (mode) => tokenEndpoint.failTokenEndpoint(mode),
    ...(upstream ? { upstreamClients: upstream.clients } : {}),
    async mintToken({ resource, scope }) {
      const body = new URLSearchParams({ grant_type: 'client_credentials', resource });
      if (scope) body.set('scope', scope);
      const json = (await (await asMinter(`${issuer}/token`, body)).json()) as { access_token?: string; error?: string; error_description?: string };
      if (!json.access_token) throw new Error(`token request failed: ${json.error} ${json.error_description ?? ''}`);
      return json.access_token;
    },
    async revokeToken(token) {
      const response = await asMinter(`${issuer}/token/revocation`, new URLSearchParams({ token, token_type_hint: 'access_token' }));
      if (response.status !== 200) throw new Error(`revocation failed with ${response.status}`);
    },
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

type ProviderCallback = ReturnType<Provider['callback']>;

type DpopFeature = NonNullable<NonNullable<Configuration['features']>['dPoP']>;

/** oidc-provider's DPoP feature; nonces need a secret (32 bytes) for the provider to derive them from. */
function dpopFeature(dpop: boolean | { readonly nonce?: boolean }): DpopFeature {
  if (dpop === false) return { enabled: false };
  const nonce = typeof dpop === 'object' && dpop.nonce === true;
  return nonce ? { enabled: true, nonceSecret: randomBytes(32), requireNonce: () => true } : { enabled: true, requireNonce: () => false };
}

/**
 * The request listener of an oidc-provider test server: counts requests by path, answers interactions
 * by logging `account()` in and approving at once, and lets `special` take a request first.
 */
export function serveProvider(
  provider: Provider,
  counts: Map<string, number>,
  account: () => string,
  special: (req: IncomingMessage, res: ServerResponse, callback: ProviderCallback) => boolean = () => false,
): (req: IncomingMessage, res: ServerResponse) => void {
  const callback = provider.callback();
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    counts.set(path, (counts.get(path) ?? 0) + 1);
    if (special(req, res, callback)) return;
    if (path.startsWith('/interaction/')) {
      approve(provider, req, res, account()).catch((error: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`interaction failed: ${(error as Error).message}`);
      });
      return;
    }
    void callback(req, res);
  };
}

/**
 * The SDK registers with the scope of the first challenge, and oidc-provider would then refuse that
 * client any other scope, so a step-up to a broader scope could never succeed. This demo server takes
 * a registration's `scope` as a hint, as many authorization servers do: it is dropped, and the client
 * may ask for any scope the resource offers. oidc-provider reads an already-consumed body from req.body.
 */
async function registerWithoutScopeLimit(req: IncomingMessage): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const metadata = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
  delete metadata.scope;
  Object.assign(req, { body: metadata });
}

/** An authorization request without `scope` is given `scopes`, as if the client had asked for them. */
function withDefaultScope(req: IncomingMessage, scopes: readonly string[]): void {
  const url = new URL(req.url ?? '/', 'http://as.invalid');
  if (req.method !== 'GET' || url.pathname !== '/auth' || url.searchParams.has('scope') || scopes.length === 0) return;
  url.searchParams.set('scope', scopes.join(' '));
  req.url = `${url.pathname}${url.search}`;
}

function asMinter(url: string, body: URLSearchParams): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${MINTER.client_id}:${MINTER.client_secret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body,
  });
}

/** Logs the user in (as demo-user unless told) and grants what the client asked for, with no page in between. */
async function approve(provider: Provider, req: IncomingMessage, res: ServerResponse, account = DEMO_ACCOUNT): Promise<void> {
  const details = await provider.interactionDetails(req, res);
  if (details.prompt.name === 'login') {
    await provider.interactionFinished(req, res, { login: { accountId: account } }, { mergeWithLastSubmission: false });
    return;
  }
  const grant = details.grantId
    ? (await provider.Grant.find(details.grantId))!
    : new provider.Grant({ accountId: details.session!.accountId, clientId: details.params.client_id as string });
  const missing = details.prompt.details as {
    missingOIDCScope?: string[];
    missingOIDCClaims?: string[];
    missingResourceScopes?: Record<string, string[]>;
  };
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}
