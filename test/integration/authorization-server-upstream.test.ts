// The demo authorization server's upstream part (issue 18), exercised with plain form POSTs: client
// credentials by each client authentication method, RFC 8693 token exchange and its refusals, the
// token endpoint's counters and its fault injection.
import { randomUUID } from 'node:crypto';
import { createRemoteJWKSet, decodeJwt, exportJWK, generateKeyPair, importJWK, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACCESS_TOKEN_TYPE, startAuthorizationServer, TOKEN_EXCHANGE_GRANT, type StartedAuthorizationServer, type UpstreamClients } from '../../demo/authorization-server.ts';

const MCP = 'http://127.0.0.1:1/mcp';
const UPSTREAM = 'https://upstream.example/api';
const OTHER_UPSTREAM = 'https://other-upstream.example';

let as: StartedAuthorizationServer;
let clients: UpstreamClients;
let tokenEndpoint: string;
let jwks: ReturnType<typeof createRemoteJWKSet>;

beforeAll(async () => {
  as = await startAuthorizationServer({
    resources: { [MCP]: { scopes: ['mcp:read'] } },
    upstream: {
      resources: { [UPSTREAM]: { scopes: ['up:read', 'up:write'] }, [OTHER_UPSTREAM]: { scopes: ['other'] } },
      exchangeTtlSeconds: 120,
      accessTokenTtlSeconds: 4,
    },
  });
  clients = as.upstreamClients!;
  const discovery = (await (await fetch(`${as.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
  tokenEndpoint = discovery.token_endpoint as string;
  expect(discovery.grant_types_supported).toContain(TOKEN_EXCHANGE_GRANT);
  jwks = createRemoteJWKSet(new URL(discovery.jwks_uri as string));
});
afterAll(() => as.close());

type Auth = 'basic' | 'post' | 'privateKeyJwt';
const AUTHS: Auth[] = ['basic', 'post', 'privateKeyJwt'];

async function assertion(claims: JWTPayload = {}): Promise<string> {
  const { client_id, privateJwk } = clients.privateKeyJwt;
  const key = await importJWK(privateJwk, privateJwk.alg);
  const now = Math.floor(Date.now() / 1000);
  // What mcp-warden sends: aud = the token endpoint URL, iss = sub = client_id, a fresh jti, exp within a minute.
  return new SignJWT({ iss: client_id, sub: client_id, aud: tokenEndpoint, jti: randomUUID(), iat: now, exp: now + 60, ...claims })
    .setProtectedHeader({ alg: privateJwk.alg!, kid: privateJwk.kid! })
    .sign(key);
}

/** POSTs the form to the token endpoint, authenticated as one of the upstream clients. */
async function tokenRequest(auth: Auth, form: Record<string, string>, assertionClaims?: JWTPayload) {
  const body = new URLSearchParams(form);
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (auth === 'basic') {
    headers.authorization = `Basic ${Buffer.from(`${clients.basic.client_id}:${clients.basic.client_secret}`).toString('base64')}`;
  } else if (auth === 'post') {
    body.set('client_id', clients.post.client_id);
    body.set('client_secret', clients.post.client_secret);
  } else {
    body.set('client_assertion_type', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
    body.set('client_assertion', await assertion(assertionClaims));
  }
  const response = await fetch(tokenEndpoint, { method: 'POST', headers, body });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

const clientId = (auth: Auth) => clients[auth].client_id;

/** A user's access token from this AS, as mcp-warden would have verified it (aud = the MCP resource). */
async function userToken(claims: JWTPayload = {}, privateJwk = as.signingKey.privateJwk): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const payload = { iss: as.issuer, aud: MCP, sub: 'alice', client_id: 'mcp-client', scope: 'mcp:read', iat: now, exp: now + 600, jti: randomUUID(), ...claims };
  return new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: privateJwk.kid!, typ: 'at+jwt' }).sign(await importJWK(privateJwk, 'RS256'));
}

const exchange = (auth: Auth, subjectToken: string, extra: Record<string, string> = {}) =>
  tokenRequest(auth, { grant_type: TOKEN_EXCHANGE_GRANT, subject_token: subjectToken, subject_token_type: ACCESS_TOKEN_TYPE, resource: UPSTREAM, ...extra });

/** Verifies an issued token against the AS's published keys, as the upstream would. */
async function verified(token: unknown, audience = UPSTREAM) {
  const { payload, protectedHeader } = await jwtVerify(token as string, jwks, { issuer: as.issuer, audience, typ: 'at+jwt' });
  return { payload, protectedHeader };
}

describe('client credentials for an upstream resource', () => {
  it.each(AUTHS)('issues an RFC 9068 JWT for the upstream audience to the %s client', async (auth) => {
    const { status, json } = await tokenRequest(auth, { grant_type: 'client_credentials', resource: UPSTREAM, scope: 'up:read' });
    expect(status, JSON.stringify(json)).toBe(200);
    expect(json).toMatchObject({ token_type: 'Bearer', expires_in: 4, scope: 'up:read' });
    const { payload } = await verified(json.access_token);
    expect(payload).toMatchObject({ aud: UPSTREAM, client_id: clientId(auth), sub: clientId(auth), scope: 'up:read' });
    expect(payload.exp! - payload.iat!).toBe(4);
  });

  it('keeps the server-wide lifetime and resources for the existing resources', async () => {
    const { payload } = await verified(await as.mintToken({ resource: MCP, scope: 'mcp:read' }), MCP);
    expect(payload.exp! - payload.iat!).toBe(600);
    const minted = decodeJwt(await as.mintToken({ resource: UPSTREAM }));
    expect(minted.aud).toBe(UPSTREAM);
  });

  it('refuses an unknown resource, a wrong secret, and a client assertion for another audience or replayed', async () => {
    expect((await tokenRequest('basic', { grant_type: 'client_credentials', resource: 'https://unknown.example' })).json.error).toBe('invalid_target');
    const wrong = await fetch(tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource: UPSTREAM, client_id: clients.post.client_id, client_secret: 'nope' }),
    });
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as { error: string }).error).toBe('invalid_client');
    // oidc-provider accepts the issuer identifier as well as the token endpoint URL as the assertion's aud.
    expect((await tokenRequest('privateKeyJwt', { grant_type: 'client_credentials', resource: UPSTREAM }, { aud: as.issuer })).status).toBe(200);
    const foreign = await tokenRequest('privateKeyJwt', { grant_type: 'client_credentials', resource: UPSTREAM }, { aud: 'https://elsewhere.example/token' });
    expect(foreign.json.error).toBe('invalid_client');
    const jti = randomUUID();
    expect((await tokenRequest('privateKeyJwt', { grant_type: 'client_credentials', resource: UPSTREAM }, { jti })).status).toBe(200);
    expect((await tokenRequest('privateKeyJwt', { grant_type: 'client_credentials', resource: UPSTREAM }, { jti })).json.error).toBe('invalid_client');
  });
});

describe('RFC 8693 token exchange', () => {
  it.each(AUTHS)('exchanges a user token for one minted for the upstream, the %s client authenticated by oidc-provider', async (auth) => {
    const subject = await userToken();
    const { status, json } = await exchange(auth, subject);
    expect(status, JSON.stringify(json)).toBe(200);
    expect(json).toMatchObject({ issued_token_type: ACCESS_TOKEN_TYPE, token_type: 'Bearer', expires_in: 120, scope: 'up:read up:write' });
    const { payload, protectedHeader } = await verified(json.access_token);
    expect(protectedHeader).toMatchObject({ typ: 'at+jwt', alg: 'RS256', kid: as.signingKey.kid });
    expect(payload).toMatchObject({ sub: 'alice', aud: UPSTREAM, client_id: clientId(auth), scope: 'up:read up:write' });
    expect(payload.exp! - payload.iat!).toBe(120);
    expect(payload.jti).toEqual(expect.any(String));
    expect(payload.jti).not.toBe(decodeJwt(subject).jti);
  });

  it('narrows the scope to the requested ∩ allowed, accepts `audience`, and never outlives the subject token', async () => {
    const exp = Math.floor(Date.now() / 1000) + 30;
    const { json } = await tokenRequest('basic', {
      grant_type: TOKEN_EXCHANGE_GRANT,
      subject_token: await userToken({ exp }),
      subject_token_type: ACCESS_TOKEN_TYPE,
      requested_token_type: ACCESS_TOKEN_TYPE,
      audience: OTHER_UPSTREAM,
      scope: 'other up:read',
    });
    expect(json.scope).toBe('other');
    const { payload } = await verified(json.access_token, OTHER_UPSTREAM);
    expect(payload.exp).toBe(exp);
    expect(json.expires_in).toBeLessThanOrEqual(30);
    expect((await exchange('basic', await userToken(), { audience: UPSTREAM })).status).toBe(200);
  });

  it('refuses a subject the policy denies, a token of another key, issuer or type, and an expired one: invalid_grant', async () => {
    const { privateKey } = await generateKeyPair('RS256', { extractable: true });
    const otherKey = { ...(await exportJWK(privateKey)), kid: as.signingKey.kid };
    const now = Math.floor(Date.now() / 1000);
    const refused = [
      await userToken({ sub: 'denied-bob' }),
      await userToken({}, otherKey),
      await userToken({ iss: 'https://other-issuer.example' }),
      await userToken({ iat: now - 120, exp: now - 60 }),
      await userToken({ exp: undefined }),
      await new SignJWT({ iss: as.issuer, aud: MCP, sub: 'alice', exp: now + 60 })
        .setProtectedHeader({ alg: 'RS256', kid: as.signingKey.kid, typ: 'JWT' })
        .sign(await importJWK(as.signingKey.privateJwk, 'RS256')),
      'not-a-jwt',
    ];
    for (const subject of refused) {
      const { status, json } = await exchange('post', subject);
      expect({ status, error: json.error }).toEqual({ status: 400, error: 'invalid_grant' });
      expect(json).not.toHaveProperty('access_token');
    }
  });

  it('answers invalid_request for a wrong token type, invalid_target for an unknown or ambiguous audience', async () => {
    const subject = await userToken();
    expect((await exchange('basic', subject, { subject_token_type: 'urn:ietf:params:oauth:token-type:id_token' })).json.error).toBe('invalid_request');
    expect((await exchange('basic', subject, { requested_token_type: 'urn:ietf:params:oauth:token-type:refresh_token' })).json.error).toBe('invalid_request');
    expect((await tokenRequest('basic', { grant_type: TOKEN_EXCHANGE_GRANT, subject_token_type: ACCESS_TOKEN_TYPE, resource: UPSTREAM })).json.error).toBe('invalid_request');
    expect((await exchange('basic', subject, { resource: 'https://unknown.example' })).json.error).toBe('invalid_target');
    expect((await exchange('basic', subject, { resource: MCP })).json.error).toBe('invalid_target');
    expect((await exchange('basic', subject, { audience: OTHER_UPSTREAM })).json.error).toBe('invalid_target');
    expect((await exchange('basic', subject, { scope: 'mcp:read' })).json.error).toBe('invalid_scope');
  });
});

describe('the token endpoint, counted and broken on demand', () => {
  it('counts token requests, in all and by grant_type', async () => {
    const before = { all: as.tokenRequests(), cc: as.tokenRequests('client_credentials'), tx: as.tokenRequests(TOKEN_EXCHANGE_GRANT) };
    await tokenRequest('basic', { grant_type: 'client_credentials', resource: UPSTREAM });
    await exchange('privateKeyJwt', await userToken());
    await exchange('post', await userToken({ sub: 'denied-carol' }));
    await tokenRequest('post', { grant_type: 'client_credentials', resource: 'https://unknown.example' });
    expect(as.tokenRequests('client_credentials') - before.cc).toBe(2);
    expect(as.tokenRequests(TOKEN_EXCHANGE_GRANT) - before.tx).toBe(2);
    expect(as.tokenRequests() - before.all).toBe(4);
    await fetch(`${as.issuer}/.well-known/openid-configuration`);
    expect(as.tokenRequests() - before.all).toBe(4);
  });

  it("answers 503 while 'down', drops the connection on 'error', and recovers; other endpoints are unaffected", async () => {
    const before = as.tokenRequests('client_credentials');
    try {
      as.failTokenEndpoint('down');
      const down = await fetch(tokenEndpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', resource: UPSTREAM }),
      });
      expect(down.status).toBe(503);
      expect(((await down.json()) as { error: string }).error).toBe('temporarily_unavailable');
      expect((await fetch(`${as.issuer}/.well-known/openid-configuration`)).status).toBe(200);
      expect((await fetch(`${as.issuer}/jwks`)).status).toBe(200);

      as.failTokenEndpoint('error');
      await expect(tokenRequest('basic', { grant_type: 'client_credentials', resource: UPSTREAM })).rejects.toThrow();
      expect(as.tokenRequests('client_credentials') - before).toBe(2);
    } finally {
      as.failTokenEndpoint(undefined);
    }
    expect((await tokenRequest('basic', { grant_type: 'client_credentials', resource: UPSTREAM })).status).toBe(200);
    expect(as.tokenRequests('client_credentials') - before).toBe(3);
  });
});

describe('without `upstream`', () => {
  it('has no upstream clients, no token exchange, and no upstream resources', async () => {
    const plain = await startAuthorizationServer({ resources: { [MCP]: { scopes: ['mcp:read'] } } });
    try {
      expect(plain.upstreamClients).toBeUndefined();
      const discovery = (await (await fetch(`${plain.issuer}/.well-known/openid-configuration`)).json()) as { grant_types_supported: string[] };
      expect(discovery.grant_types_supported).not.toContain(TOKEN_EXCHANGE_GRANT);
      await expect(plain.mintToken({ resource: UPSTREAM })).rejects.toThrow(/invalid_target/);
      expect(decodeJwt(await plain.mintToken({ resource: MCP })).aud).toBe(MCP);
      expect(plain.tokenRequests('client_credentials')).toBe(2);
    } finally {
      await plain.close();
    }
  });
});
