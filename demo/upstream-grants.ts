// The authorization server's side of upstream credentials (issue 18), opt-in by `upstream`: confidential
// clients that obtain tokens for upstream resources by client credentials, an RFC 8693 token-exchange
// grant that turns a user's access token from this server into one for an upstream's audience, and a
// token endpoint that tests can count and break.
import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { exportJWK, generateKeyPair, importJWK, jwtVerify, type JWK, type JWTPayload } from 'jose';
import type Provider from 'oidc-provider';
import { errors, type ClientMetadata, type ResourceServer } from 'oidc-provider';

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

export interface UpstreamOptions {
  /** Upstream resource indicator (also the `aud` of its tokens) → the scopes a token for it may carry. */
  readonly resources: Readonly<Record<string, { readonly scopes: readonly string[] }>>;
  /** Lifetime of an exchanged token, never past the subject token's `exp`. Default 300. */
  readonly exchangeTtlSeconds?: number;
  /** Lifetime of a client-credentials token for an upstream resource. Default: the server's accessTokenTtlSeconds. */
  readonly accessTokenTtlSeconds?: number;
}

/** Pre-registered confidential clients allowed `client_credentials` and the token-exchange grant. */
export interface UpstreamClients {
  readonly basic: { readonly client_id: string; readonly client_secret: string };
  readonly post: { readonly client_id: string; readonly client_secret: string };
  /**
   * RFC 7523 client authentication: sign a client assertion with `privateJwk` (ES256, with `kid` and
   * `alg`). oidc-provider accepts as its `aud` the issuer identifier or the token endpoint URL (or an
   * array holding one of them); `iss` must be the client_id, and `exp` and a never-reused `jti` are required.
   */
  readonly privateKeyJwt: { readonly client_id: string; readonly privateJwk: JWK };
}

export async function createUpstreamClients(): Promise<{ clients: UpstreamClients; metadata: ClientMetadata[] }> {
  const kid = `client-${randomBytes(6).toString('hex')}`;
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const privateJwk: JWK = { ...(await exportJWK(privateKey)), kid, alg: 'ES256' };
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  const clients: UpstreamClients = {
    basic: { client_id: 'upstream-basic', client_secret: randomBytes(24).toString('base64url') },
    post: { client_id: 'upstream-post', client_secret: randomBytes(24).toString('base64url') },
    privateKeyJwt: { client_id: 'upstream-private-key-jwt', privateJwk },
  };
  const common = { grant_types: ['client_credentials', TOKEN_EXCHANGE_GRANT], response_types: [], redirect_uris: [] };
  return {
    clients,
    metadata: [
      { ...common, ...clients.basic, token_endpoint_auth_method: 'client_secret_basic' },
      { ...common, ...clients.post, token_endpoint_auth_method: 'client_secret_post' },
      {
        ...common,
        client_id: clients.privateKeyJwt.client_id,
        token_endpoint_auth_method: 'private_key_jwt',
        token_endpoint_auth_signing_alg: 'ES256',
        jwks: { keys: [publicJwk] },
      },
    ],
  };
}

/** What `getResourceServerInfo` answers for an upstream resource: RFC 9068 JWTs with `aud` = the resource. */
export function upstreamResourceServer(upstream: UpstreamOptions, resource: string, defaultTtl: number): ResourceServer | undefined {
  const known = Object.hasOwn(upstream.resources, resource) ? upstream.resources[resource] : undefined;
  if (!known) return undefined;
  return {
    scope: known.scopes.join(' '),
    audience: resource,
    accessTokenTTL: upstream.accessTokenTtlSeconds ?? defaultTtl,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
  };
}

interface ExchangeParams {
  subject_token?: string;
  subject_token_type?: string;
  requested_token_type?: string;
  audience?: string | string[];
  resource?: string | string[];
  scope?: string;
}

/**
 * Registers the RFC 8693 grant. oidc-provider runs its whole token endpoint pipeline before the handler
 * (body parsing, client authentication by the client's registered method, the client's grant_types
 * check), so the handler only sees authenticated clients registered for this grant. The subject token
 * must be an RFC 9068 access token from this server (`publicJwk`, `iss`, `exp`, typ at+jwt); a subject
 * whose `sub` starts with `denied` is refused, so tests can provoke a policy refusal. The issued token
 * goes through oidc-provider's own AccessToken model with the upstream's ResourceServer, so it is signed
 * and shaped exactly like the server's other JWT access tokens.
 */
export function registerTokenExchange(provider: Provider, upstream: UpstreamOptions, publicJwk: JWK, defaultTtl: number): void {
  const key = importJWK(publicJwk, 'RS256');
  const exchangeTtl = upstream.exchangeTtlSeconds ?? 300;
  provider.registerGrantType<ExchangeParams>(
    TOKEN_EXCHANGE_GRANT,
    async (ctx) => {
      const { params, client } = ctx.oidc;
      if (!params.subject_token) throw new errors.InvalidRequest('missing required parameter subject_token');
      if (params.subject_token_type !== ACCESS_TOKEN_TYPE) throw new errors.InvalidRequest('unsupported subject_token_type');
      if (params.requested_token_type !== undefined && params.requested_token_type !== ACCESS_TOKEN_TYPE) {
        throw new errors.InvalidRequest('unsupported requested_token_type');
      }
      const targets = new Set([params.resource ?? [], params.audience ?? []].flat());
      if (targets.size !== 1) throw new errors.InvalidTarget('exactly one resource or audience must be requested');
      const [target] = targets as Set<string>;
      const info = upstreamResourceServer(upstream, target!, defaultTtl);
      if (!info) throw new errors.InvalidTarget();

      let subject: JWTPayload;
      try {
        ({ payload: subject } = await jwtVerify(params.subject_token, await key, {
          issuer: provider.issuer,
          typ: 'at+jwt',
          algorithms: ['RS256'],
          requiredClaims: ['exp'],
        }));
      } catch (cause) {
        throw new errors.InvalidGrant({ detail: 'subject_token is invalid', cause });
      }
      if (typeof subject.sub !== 'string' || subject.sub === '') throw new errors.InvalidGrant('subject_token has no subject');
      if (subject.sub.startsWith('denied')) throw new errors.InvalidGrant('policy refuses an exchange for this subject');

      const allowed = new Set(info.scope.split(' ').filter(Boolean));
      const requested = params.scope?.split(' ').filter(Boolean);
      const granted = requested ? requested.filter((scope) => allowed.has(scope)) : [...allowed];
      if (requested && granted.length === 0) throw new errors.InvalidScope('requested scope is not allowed for this audience', params.scope!);
      const remaining = subject.exp! - Math.floor(Date.now() / 1000);
      const expiresIn = Math.min(exchangeTtl, remaining);
      if (expiresIn < 1) throw new errors.InvalidGrant('subject_token expires now');

      const token = new provider.AccessToken({
        accountId: subject.sub,
        client,
        // Typed as required, but no Grant stands behind an exchanged token and the JWT format leaves it out.
        grantId: randomUUID(),
        gty: 'token_exchange',
        scope: granted.join(' ') || undefined,
        expiresIn,
        resourceServer: new provider.ResourceServer(target!, info),
      });
      ctx.oidc.entity('AccessToken', token);
      const accessToken = await token.save();
      ctx.body = {
        access_token: accessToken,
        issued_token_type: ACCESS_TOKEN_TYPE,
        token_type: 'Bearer',
        expires_in: expiresIn,
        ...(token.scope ? { scope: token.scope } : {}),
      };
    },
    ['subject_token', 'subject_token_type', 'requested_token_type', 'resource', 'audience', 'scope'],
    ['resource', 'audience'],
  );
}

export type TokenEndpointFault = 'down' | 'error' | undefined;

/**
 * Counts POSTs to the token endpoint by grant_type and breaks it on demand. Requests oidc-provider
 * handles are counted by a Koa middleware once the form is parsed (before the response is written);
 * faulted ones by `intercept`, which reads the form itself and then answers 503 ('down') or destroys
 * the socket ('error'). Only POST /token is affected.
 */
export function tokenEndpointControl(provider: Provider) {
  const tokenPath = new URL(provider.urlFor('token')).pathname;
  const counts = new Map<string | undefined, number>();
  let fault: TokenEndpointFault;
  const record = (grantType: unknown) => {
    const key = typeof grantType === 'string' ? grantType : undefined;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  };
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.method === 'POST' && ctx.path === tokenPath) record(ctx.oidc?.params?.grant_type);
  });
  return {
    tokenRequests(grantType?: string): number {
      if (grantType !== undefined) return counts.get(grantType) ?? 0;
      return [...counts.values()].reduce((sum, count) => sum + count, 0);
    },
    failTokenEndpoint(mode: TokenEndpointFault): void {
      fault = mode;
    },
    /** Takes a faulted POST /token away from oidc-provider; false for every other request. */
    intercept(req: IncomingMessage, res: ServerResponse): boolean {
      const mode = fault;
      if (!mode || req.method !== 'POST' || (req.url ?? '').split('?')[0] !== tokenPath) return false;
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        record(new URLSearchParams(Buffer.concat(chunks).toString('utf8')).get('grant_type') ?? undefined);
        if (mode === 'error') {
          req.socket.destroy();
          return;
        }
        res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' });
        res.end(JSON.stringify({ error: 'temporarily_unavailable', error_description: 'the token endpoint is down (fault injected by the test)' }));
      });
      return true;
    },
  };
}
