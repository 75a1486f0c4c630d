// An enterprise identity provider of the kind enterprise-managed authorization (SEP-990) assumes: a real
// oidc-provider on 127.0.0.1 that logs its users in with the code flow and, by RFC 8693 token exchange
// (`requested_token_type=urn:ietf:params:oauth:token-type:id-jag`), turns one of its ID tokens into an
// Identity Assertion JWT Authorization Grant (draft-ietf-oauth-identity-assertion-authz-grant §4) for
// another authorization server. The ID-JAG is signed with the provider's own key, the one its
// discovery document's jwks_uri publishes, so a broker finds it the way it would in production.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';
import Provider, { errors, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import { serveProvider } from '../../demo/authorization-server.ts';
import { followAuthorizationRedirects } from '../../demo/oauth-client.ts';

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ID_JAG_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:id-jag';
const ID_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:id_token';
const REDIRECT_URI = 'http://127.0.0.1:1/enterprise-callback';
/** How long the ID-JAGs it issues live: short, as the draft recommends (§4.3). */
const ID_JAG_TTL_SECONDS = 300;

export interface EnterpriseIdpOptions {
  /** Who logs in. */
  readonly account?: string;
  /**
   * The client id the requesting app has at the resource's authorization server (the broker): the
   * ID-JAG's `client_id` claim, which the IdP maps to from its own client (draft §4.3).
   */
  readonly resourceClientId: string;
}

export interface StartedEnterpriseIdp {
  readonly issuer: string;
  /** The enterprise app's registration at this IdP (for the code flow and the token exchange). */
  readonly client: { readonly client_id: string; readonly client_secret: string };
  /** Logs the account in by the code flow (a scripted browser) and returns its ID token. */
  login(): Promise<string>;
  /**
   * An assertion with the IdP's own signing key, claims and header as given (for the cases a correct
   * IdP never issues: the broker must still refuse them).
   */
  sign(claims: JWTPayload, header?: { typ?: string | undefined; kid?: string }): Promise<string>;
  /** The claims a correct ID-JAG for `audience`/`resource` would carry, to be varied by a test. */
  claims(audience: string, resource: string, extra?: JWTPayload): JWTPayload;
  /** How many requests reached a path so far (e.g. `/jwks`). */
  requestCount(path: string): number;
  close(): Promise<void>;
}

export async function startEnterpriseIdp(options: EnterpriseIdpOptions): Promise<StartedEnterpriseIdp> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const account = options.account ?? 'enterprise-user-1';
  const client = { client_id: 'enterprise-chat-app', client_secret: randomBytes(24).toString('base64url') };

  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const kid = randomUUID();
  const privateJwk: JWK = { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };

  const configuration: Configuration = {
    clients: [
      {
        ...client,
        redirect_uris: [REDIRECT_URI],
        grant_types: ['authorization_code', TOKEN_EXCHANGE_GRANT],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_post',
      },
    ],
    jwks: { keys: [privateJwk] },
    scopes: ['openid', 'profile', 'email'],
    claims: { openid: ['sub'], email: ['email'] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    findAccount: async (_ctx, accountId) => ({ accountId, claims: async () => ({ sub: accountId, email: `${accountId}@enterprise.test` }) }),
    interactions: { url: async (_ctx, interaction) => `/interaction/${interaction.uid}` },
    pkce: { required: () => true },
    features: { devInteractions: { enabled: false }, registration: { enabled: false } },
    ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 600, Grant: 600 },
  };
  const provider = new Provider(issuer, configuration);

  const sign = (claims: JWTPayload, header: { typ?: string | undefined; kid?: string } = {}) =>
    new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: header.kid ?? kid, ...('typ' in header ? (header.typ === undefined ? {} : { typ: header.typ }) : { typ: 'oauth-id-jag+jwt' }) }).sign(privateKey);
  const claims = (audience: string, resource: string, extra: JWTPayload = {}): JWTPayload => {
    const now = Math.floor(Date.now() / 1000);
    return { iss: issuer, sub: account, aud: audience, client_id: options.resourceClientId, resource, jti: randomUUID(), iat: now, exp: now + ID_JAG_TTL_SECONDS, ...extra };
  };

  // RFC 8693 §2.1 with the ID-JAG profile (draft §4.2): the subject token is an ID token this IdP issued
  // to the requesting client; the audience is the authorization server the grant is for.
  provider.registerGrantType(
    TOKEN_EXCHANGE_GRANT,
    async (ctx: KoaContextWithOIDC) => {
      const params = ctx.oidc.params as Record<string, string | undefined>;
      if (params.requested_token_type !== ID_JAG_TOKEN_TYPE) throw new errors.InvalidRequest('requested_token_type must be an ID-JAG');
      if (params.subject_token_type !== ID_TOKEN_TYPE || !params.subject_token) throw new errors.InvalidRequest('subject_token must be an ID token');
      if (!params.audience || !params.resource) throw new errors.InvalidTarget('audience and resource are required');
      let subject: JWTPayload;
      try {
        ({ payload: subject } = (await provider.IdToken.validate(params.subject_token, ctx.oidc.client!)) as { payload: JWTPayload });
      } catch {
        throw new errors.InvalidGrant('subject_token is not a valid ID token from this issuer');
      }
      // IdToken.validate ignores expiry (it is written for id_token_hint); an exchange must not.
      if (typeof subject.exp !== 'number' || subject.exp < Date.now() / 1000) throw new errors.InvalidGrant('subject_token has expired');
      const jag = await sign(claims(params.audience, params.resource, { sub: subject.sub, ...(params.scope ? { scope: params.scope } : {}) }));
      ctx.body = { issued_token_type: ID_JAG_TOKEN_TYPE, access_token: jag, token_type: 'N_A', expires_in: ID_JAG_TTL_SECONDS, ...(params.scope ? { scope: params.scope } : {}) };
    },
    ['requested_token_type', 'subject_token', 'subject_token_type', 'audience', 'resource', 'scope'],
  );

  const counts = new Map<string, number>();
  server.on('request', serveProvider(provider, counts, () => account));

  return {
    issuer,
    client,
    sign,
    claims,
    requestCount: (path) => counts.get(path) ?? 0,
    async login() {
      const verifier = randomBytes(32).toString('base64url');
      const url = new URL(`${issuer}/auth`);
      const query = { response_type: 'code', client_id: client.client_id, redirect_uri: REDIRECT_URI, scope: 'openid email', code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256' };
      for (const [name, value] of Object.entries(query)) url.searchParams.set(name, value);
      const code = await followAuthorizationRedirects(url, REDIRECT_URI, { cookies: new Map() });
      const response = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier, ...client }),
        signal: AbortSignal.timeout(5000),
      });
      const body = (await response.json()) as { id_token?: string; error?: string };
      if (!body.id_token) throw new Error(`enterprise login failed: ${body.error}`);
      return body.id_token;
    },
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}
