import { once } from 'node:events';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerConsent, connectWithOAuth, followAuthorizationRedirects, REDIRECT_URI, type ScriptedBrowser } from '../../demo/oauth-client.ts';
import { makeTestCertificates, type TestCertificates } from '../helpers/test-ca.ts';
import { pkce, startBrokerStack, type BrokerStack } from '../helpers/broker-stack.ts';
import { INITIALIZE, MCP_HEADERS, SCOPES, startStack, type Stack } from '../helpers/stack.ts';

describe('broker mode: mcp-warden as the authorization server in front of an identity provider MCP clients cannot use', () => {
  let stack: BrokerStack;
  const approving = (): ScriptedBrowser => ({ cookies: new Map(), onPage: answerConsent('approve') });

  const post = (path: string, form: Record<string, string>, headers: Record<string, string> = {}) =>
    fetch(`${stack.issuer}${path}`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(form) });

  const register = async (overrides: Record<string, unknown> = {}): Promise<{ client_id: string; status: number; body: Record<string, unknown> }> => {
    const response = await fetch(`${stack.issuer}/oauth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: 'raw client', redirect_uris: [REDIRECT_URI], grant_types: ['authorization_code', 'refresh_token'], token_endpoint_auth_method: 'none', ...overrides }),
    });
    const body = (await response.json()) as Record<string, unknown>;
    return { client_id: body.client_id as string, status: response.status, body };
  };

  const authorizeUrl = (clientId: string, params: Record<string, string> = {}) => {
    const url = new URL(`${stack.issuer}/oauth/authorize`);
    const search = { response_type: 'code', client_id: clientId, redirect_uri: REDIRECT_URI, code_challenge_method: 'S256', state: 'st-1', resource: stack.mcpUrl, scope: 'mcp:read', ...params };
    for (const [name, value] of Object.entries(search)) url.searchParams.set(name, value);
    return url;
  };

  /** A code through the whole browser flow (consent approved, identity provider login). */
  const codeFor = async (clientId: string, browser: ScriptedBrowser = approving()) => {
    const { verifier, challenge } = pkce();
    const code = await followAuthorizationRedirects(authorizeUrl(clientId, { code_challenge: challenge }), REDIRECT_URI, browser);
    return { code, verifier };
  };

  const redeem = (clientId: string, code: string, verifier: string, extra: Record<string, string> = {}) =>
    post('/oauth/token', { grant_type: 'authorization_code', client_id: clientId, code, code_verifier: verifier, redirect_uri: REDIRECT_URI, resource: stack.mcpUrl, ...extra });

  const refresh = (clientId: string, refreshToken: string) => post('/oauth/token', { grant_type: 'refresh_token', client_id: clientId, refresh_token: refreshToken, resource: stack.mcpUrl });

  const tokensFor = async (clientId: string) => {
    const { code, verifier } = await codeFor(clientId);
    const response = await redeem(clientId, code, verifier);
    expect(response.status).toBe(200);
    return (await response.json()) as { access_token: string; refresh_token: string };
  };

  const callMcp = (token: string) => fetch(stack.mcpUrl, { method: 'POST', headers: { ...MCP_HEADERS, authorization: `Bearer ${token}` }, body: INITIALIZE });

  beforeAll(async () => {
    stack = await startBrokerStack();
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('names the broker in the resource metadata and publishes RFC 8414 metadata, also at the OIDC alias', async () => {
    const prm = (await (await fetch(`${stack.issuer}/.well-known/oauth-protected-resource/mcp`)).json()) as Record<string, unknown>;
    expect(prm.authorization_servers).toEqual([stack.issuer]);
    const response = await fetch(`${stack.issuer}/.well-known/oauth-authorization-server`, { headers: { origin: 'https://inspector.example' } });
    expect(response.headers.get('access-control-allow-origin')).toBe('*');
    const metadata = (await response.json()) as Record<string, unknown>;
    expect(metadata).toMatchObject({
      issuer: stack.issuer,
      authorization_endpoint: `${stack.issuer}/oauth/authorize`,
      token_endpoint: `${stack.issuer}/oauth/token`,
      registration_endpoint: `${stack.issuer}/oauth/register`,
      revocation_endpoint: `${stack.issuer}/oauth/revoke`,
      jwks_uri: `${stack.issuer}/oauth/jwks`,
      code_challenge_methods_supported: ['S256'],
      response_types_supported: ['code'],
      grant_types_supported: ['authorization_code', 'refresh_token'],
      token_endpoint_auth_methods_supported: ['none', 'client_secret_basic', 'client_secret_post'],
      authorization_response_iss_parameter_supported: true,
      scopes_supported: SCOPES,
    });
    expect(await (await fetch(`${stack.issuer}/.well-known/openid-configuration`)).json()).toEqual(metadata);
  });

  it('1. takes the official SDK client from the 401 through registration, consent and the identity provider login to a tool call', async () => {
    const before = stack.mcp.requests.length;
    const connection = await connectWithOAuth(stack.mcpUrl, { clientName: 'broker e2e', browser: approving() });
    try {
      const token = connection.accessToken();
      expect(decodeProtectedHeader(token).typ).toBe('at+jwt');
      const claims = decodeJwt(token);
      expect(claims).toMatchObject({ iss: stack.issuer, aud: stack.mcpUrl, sub: 'idp-user-1', client_id: connection.clientInformation().client_id });
      expect(stack.logs.some((log) => log.msg === 'broker: client registered' && log.client_id === connection.clientInformation().client_id)).toBe(true);
      // The identity provider saw the broker's login, never a registration (it has none).
      expect(stack.idp.requestCount('/token')).toBeGreaterThan(0);
      const result = await connection.client.callTool({ name: 'echo', arguments: { text: 'brokered' } });
      expect(result.content).toEqual([{ type: 'text', text: 'brokered' }]);
      const seen = stack.mcp.requests.slice(before);
      expect(seen.length).toBeGreaterThan(0);
      for (const request of seen) {
        expect(request.headers.authorization).toBeUndefined();
        expect(JSON.stringify(request.rawHeaders)).not.toMatch(/bearer|eyJ/i);
        expect(JSON.stringify(request.rawHeaders)).not.toContain(connection.tokens().refresh_token);
      }
    } finally {
      await connection.close();
    }
  });

  describe('2. refuses a broken authorization or token request with the RFC error code', () => {
    let clientId: string;
    beforeAll(async () => {
      ({ client_id: clientId } = await register());
    });

    const refusalAt = async (url: URL) => {
      const response = await fetch(url, { redirect: 'manual' });
      expect(response.status).toBe(303);
      const location = new URL(response.headers.get('location')!);
      expect(location.origin + location.pathname).toBe(REDIRECT_URI);
      expect(location.searchParams.get('iss')).toBe(stack.issuer);
      expect(location.searchParams.get('state')).toBe('st-1');
      return location.searchParams.get('error');
    };

    it('PKCE plain, or no PKCE at all: invalid_request', async () => {
      const { verifier } = pkce();
      expect(await refusalAt(authorizeUrl(clientId, { code_challenge: verifier, code_challenge_method: 'plain' }))).toBe('invalid_request');
      const url = authorizeUrl(clientId);
      url.searchParams.delete('code_challenge_method');
      expect(await refusalAt(url)).toBe('invalid_request');
    });

    it('a resource other than this server: invalid_target', async () => {
      expect(await refusalAt(authorizeUrl(clientId, { code_challenge: pkce().challenge, resource: 'https://other.example/mcp' }))).toBe('invalid_target');
    });

    it('a scope the resource does not offer: invalid_scope', async () => {
      expect(await refusalAt(authorizeUrl(clientId, { code_challenge: pkce().challenge, scope: 'mcp:read admin' }))).toBe('invalid_scope');
    });

    it('a redirect URI one character off: an error page, never a redirect', async () => {
      for (const redirectUri of [`${REDIRECT_URI}x`, REDIRECT_URI.replace('callback', 'callbacK'), REDIRECT_URI.replace('127.0.0.1:1', '127.0.0.1:2')]) {
        const response = await fetch(authorizeUrl(clientId, { code_challenge: pkce().challenge, redirect_uri: redirectUri }), { redirect: 'manual' });
        expect(response.status).toBe(400);
        expect(response.headers.get('location')).toBeNull();
        expect(await response.text()).toContain('redirect URI');
      }
      const unknown = await fetch(authorizeUrl('no-such-client', { code_challenge: pkce().challenge }), { redirect: 'manual' });
      expect(unknown.status).toBe(400);
      expect(unknown.headers.get('location')).toBeNull();
    });

    it('a wrong PKCE verifier, or a redirect_uri at the token endpoint one character off: invalid_grant', async () => {
      const first = await codeFor(clientId);
      const wrongVerifier = await redeem(clientId, first.code, pkce().verifier);
      expect(wrongVerifier.status).toBe(400);
      expect(((await wrongVerifier.json()) as { error: string }).error).toBe('invalid_grant');
      const second = await codeFor(clientId);
      const wrongRedirect = await redeem(clientId, second.code, second.verifier, { redirect_uri: `${REDIRECT_URI}/` });
      expect(((await wrongRedirect.json()) as { error: string }).error).toBe('invalid_grant');
      const third = await codeFor(clientId);
      const wrongResource = await redeem(clientId, third.code, third.verifier, { resource: 'https://other.example/mcp' });
      expect(((await wrongResource.json()) as { error: string }).error).toBe('invalid_target');
    });

    it('a replayed code: invalid_grant, and the tokens first issued from it stop working', async () => {
      const { code, verifier } = await codeFor(clientId);
      const first = await redeem(clientId, code, verifier);
      expect(first.status).toBe(200);
      expect(first.headers.get('cache-control')).toBe('no-store');
      const tokens = (await first.json()) as { access_token: string; refresh_token: string };
      expect((await callMcp(tokens.access_token)).status).toBe(200);
      const replay = await redeem(clientId, code, verifier);
      expect(replay.status).toBe(400);
      expect(((await replay.json()) as { error: string }).error).toBe('invalid_grant');
      const refused = await callMcp(tokens.access_token);
      expect(refused.status).toBe(401);
      expect(refused.headers.get('www-authenticate')).toContain('error="invalid_token"');
      expect(((await (await refresh(clientId, tokens.refresh_token)).json()) as { error: string }).error).toBe('invalid_grant');
    });

    it('a code redeemed by another client: invalid_grant', async () => {
      const { code, verifier } = await codeFor(clientId);
      const other = await register();
      const response = await redeem(other.client_id, code, verifier);
      expect(((await response.json()) as { error: string }).error).toBe('invalid_grant');
    });
  });

  it('3. rotates refresh tokens, and a reused one revokes the whole family, the newest refresh token too', async () => {
    const { client_id: clientId } = await register();
    const first = await tokensFor(clientId);
    const rotated = await refresh(clientId, first.refresh_token);
    expect(rotated.status).toBe(200);
    const second = (await rotated.json()) as { access_token: string; refresh_token: string };
    expect(second.refresh_token).not.toBe(first.refresh_token);
    expect((await callMcp(second.access_token)).status).toBe(200);
    const reuse = await refresh(clientId, first.refresh_token);
    expect(((await reuse.json()) as { error: string }).error).toBe('invalid_grant');
    expect(((await (await refresh(clientId, second.refresh_token)).json()) as { error: string }).error).toBe('invalid_grant');
    expect((await callMcp(second.access_token)).status).toBe(401);
  });

  it('4. refuses a revoked access token on the resource-server path before its exp', async () => {
    const { client_id: clientId } = await register();
    const tokens = await tokensFor(clientId);
    expect((await callMcp(tokens.access_token)).status).toBe(200);
    const revoked = await post('/oauth/revoke', { token: tokens.access_token, token_type_hint: 'access_token', client_id: clientId });
    expect(revoked.status).toBe(200);
    expect(decodeJwt(tokens.access_token).exp! * 1000).toBeGreaterThan(Date.now());
    const refused = await callMcp(tokens.access_token);
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect(stack.logs.some((log) => log.msg === 'request' && log.reason === 'revoked')).toBe(true);
    // The refresh token of the grant still works: only that access token was revoked.
    expect((await refresh(clientId, tokens.refresh_token)).status).toBe(200);
  });

  it('5. serves a consent page that cannot be framed, and refuses a submission without the CSRF token', async () => {
    const { client_id: clientId } = await register({ client_name: 'Look <b>me</b> up' });
    const page = await fetch(authorizeUrl(clientId, { code_challenge: pkce().challenge }), { redirect: 'manual' });
    expect(page.status).toBe(200);
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(page.headers.get('cache-control')).toBe('no-store');
    const html = await page.text();
    expect(html).toContain('Look &#60;b&#62;me&#60;/b&#62; up');
    expect(html).toContain('127.0.0.1:1');
    expect(html).toContain('mcp:read');
    const transaction = /name="transaction" value="([^"]+)"/.exec(html)![1]!;
    const csrf = /name="csrf" value="([^"]+)"/.exec(html)![1]!;
    const cookie = page.headers.getSetCookie().find((line) => line.startsWith('mcp-warden-csrf='))!.split(';')[0]!;
    const submit = (form: Record<string, string>, headers: Record<string, string> = {}) => post('/oauth/consent', { transaction, decision: 'approve', ...form }, headers);
    const idpVisits = stack.idp.requestCount('/auth');
    expect((await submit({}, { cookie })).status).toBe(403);
    expect((await submit({ csrf }, {})).status).toBe(403);
    // A token of our own making, sent as both cookie and field: one character off the issued one, always.
    const forged = `${csrf.slice(0, -1)}${csrf.endsWith('A') ? 'B' : 'A'}`;
    expect((await submit({ csrf: forged }, { cookie: `mcp-warden-csrf=${forged}` })).status).toBe(403);
    expect((await submit({ csrf }, { cookie, origin: 'https://evil.example' })).status).toBe(403);
    // Every refused submission is a dead end: nobody was sent to the identity provider.
    expect(stack.idp.requestCount('/auth')).toBe(idpVisits);
    const accepted = await submit({ csrf }, { cookie });
    expect(accepted.status).toBe(303);
    expect(accepted.headers.get('location')).toContain(stack.idp.issuer);
  });

  it('answers wrong methods with 405 and Allow, and lets browser clients call the token endpoint', async () => {
    const wrong = await fetch(`${stack.issuer}/oauth/token`);
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('POST, OPTIONS');
    const preflight = await fetch(`${stack.issuer}/oauth/token`, { method: 'OPTIONS', headers: { origin: 'https://inspector.example', 'access-control-request-method': 'POST' } });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
    expect((await fetch(`${stack.issuer}/oauth/authorize`, { method: 'POST' })).headers.get('allow')).toBe('GET, HEAD');
  });

  it('refuses registrations with unsafe or inconsistent metadata', async () => {
    for (const metadata of [
      { redirect_uris: ['http://attacker.example/cb'] },
      { redirect_uris: ['https://app.example/cb#frag'] },
      { redirect_uris: [] },
      { grant_types: ['client_credentials'] },
      { grant_types: ['refresh_token'] },
      { response_types: ['token'] },
      { token_endpoint_auth_method: 'private_key_jwt' },
      { client_name: 'x'.repeat(500) },
    ]) {
      const { status, body } = await register(metadata);
      expect(status).toBe(400);
      expect(['invalid_redirect_uri', 'invalid_client_metadata']).toContain(body.error);
    }
    const confidential = await register({ token_endpoint_auth_method: 'client_secret_basic' });
    expect(confidential.status).toBe(201);
    expect(typeof confidential.body.client_secret).toBe('string');
  });

  it('authenticates a confidential client by its Basic credentials, and answers a wrong secret with invalid_client', async () => {
    const { client_id: clientId, body } = await register({ token_endpoint_auth_method: 'client_secret_basic' });
    const basic = (secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;
    const grant = { grant_type: 'authorization_code', code: 'not-a-code', code_verifier: pkce().verifier, redirect_uri: REDIRECT_URI };
    const authenticated = await post('/oauth/token', grant, { authorization: basic(body.client_secret as string) });
    expect(((await authenticated.json()) as { error: string }).error).toBe('invalid_grant');
    const wrong = await post('/oauth/token', grant, { authorization: basic('not-the-secret') });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toBe('Basic realm="mcp-warden"');
    expect(((await wrong.json()) as { error: string }).error).toBe('invalid_client');
    const publicWay = await post('/oauth/token', { ...grant, client_id: clientId });
    expect(((await publicWay.json()) as { error: string }).error).toBe('invalid_client');
  });

  it('6. keeps registered clients, refresh tokens and consent across a restart, signing with the same key', async () => {
    const browser = approving();
    const { client_id: clientId } = await register();
    const { code, verifier } = await codeFor(clientId, browser);
    const tokens = (await (await redeem(clientId, code, verifier)).json()) as { access_token: string; refresh_token: string };
    const jwksBefore = await (await fetch(`${stack.issuer}/oauth/jwks`)).json();
    await stack.restart();
    expect(await (await fetch(`${stack.issuer}/oauth/jwks`)).json()).toEqual(jwksBefore);
    // A token issued before the restart is still good: same key, same issuer.
    expect((await callMcp(tokens.access_token)).status).toBe(200);
    const refreshed = await refresh(clientId, tokens.refresh_token);
    expect(refreshed.status).toBe(200);
    // Same browser, same client: no consent page this time (a page would stop the walk).
    const again = await codeFor(clientId, { cookies: browser.cookies });
    expect((await redeem(clientId, again.code, again.verifier)).status).toBe(200);
  });
});

describe('broker mode with a client ID metadata document', () => {
  let stack: BrokerStack;
  let certs: TestCertificates;
  let documents: HttpsServer;
  let origin: string;
  beforeAll(async () => {
    certs = makeTestCertificates();
    documents = createHttpsServer({ key: certs.key, cert: certs.cert }, (req, res) => {
      const clientId = `${origin}${req.url}`;
      const body = { client_id: req.url === '/other.json' ? `${origin}/client.json` : clientId, client_name: 'CIMD app', redirect_uris: [REDIRECT_URI], grant_types: ['authorization_code', 'refresh_token'], token_endpoint_auth_method: 'none' };
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=300' });
      res.end(JSON.stringify(body));
    });
    documents.listen(0, '127.0.0.1');
    await once(documents, 'listening');
    origin = `https://127.0.0.1:${(documents.address() as AddressInfo).port}`;
    stack = await startBrokerStack({ client_metadata: { allow_private_addresses: true, extra_ca_file: certs.caFile } });
  });
  afterAll(async () => {
    await stack?.close();
    documents?.closeAllConnections();
    documents?.close();
    certs?.remove();
  });

  it('11.1: the SDK client uses its metadata URL as client_id, without a registration call, through to a tool', async () => {
    const metadata = (await (await fetch(`${stack.issuer}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    expect(metadata.client_id_metadata_document_supported).toBe(true);
    const connection = await connectWithOAuth(stack.mcpUrl, { clientName: 'cimd e2e', clientMetadataUrl: `${origin}/client.json`, browser: { cookies: new Map(), onPage: answerConsent('approve') } });
    try {
      expect(decodeJwt(connection.accessToken())).toMatchObject({ client_id: `${origin}/client.json`, sub: 'idp-user-1', aud: stack.mcpUrl });
      expect(stack.logs.filter((log) => log.path === '/oauth/register')).toEqual([]);
      const result = await connection.client.callTool({ name: 'echo', arguments: { text: 'by metadata document' } });
      expect(result.content).toEqual([{ type: 'text', text: 'by metadata document' }]);
    } finally {
      await connection.close();
    }
  });

  it('shows why a metadata document is refused, and redirects nowhere', async () => {
    const url = new URL(`${stack.issuer}/oauth/authorize`);
    for (const [name, value] of Object.entries({ response_type: 'code', client_id: `${origin}/other.json`, redirect_uri: REDIRECT_URI, code_challenge_method: 'S256', code_challenge: 'x'.repeat(43) })) url.searchParams.set(name, value);
    const response = await fetch(url, { redirect: 'manual' });
    expect(response.status).toBe(400);
    expect(response.headers.get('location')).toBeNull();
    expect(await response.text()).toContain('names another client_id');
  });
});

describe('broker rate limits', () => {
  let stack: BrokerStack;
  beforeAll(async () => {
    stack = await startBrokerStack({ rate_limits: { registration: { per_ip: 2 }, authorize: { per_client: 3 }, token: { per_client: 3 } } });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('answer 429 with Retry-After: registrations per IP, authorizations and token requests per client id', async () => {
    const register = () =>
      fetch(`${stack.issuer}/oauth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ redirect_uris: [REDIRECT_URI], token_endpoint_auth_method: 'none' }) });
    const [a, b] = (await Promise.all([register(), register()]).then((responses) => Promise.all(responses.map((response) => response.json())))) as Array<{ client_id: string }>;
    const third = await register();
    expect(third.status).toBe(429);
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(((await third.json()) as { error: string }).error).toBe('rate_limited');

    const authorize = (clientId: string) => {
      const url = new URL(`${stack.issuer}/oauth/authorize`);
      for (const [name, value] of Object.entries({ response_type: 'code', client_id: clientId, redirect_uri: REDIRECT_URI, code_challenge_method: 'S256', code_challenge: 'x'.repeat(43) })) url.searchParams.set(name, value);
      return fetch(url, { redirect: 'manual' });
    };
    for (let i = 0; i < 3; i += 1) expect((await authorize(a!.client_id)).status).toBe(200);
    const limited = await authorize(a!.client_id);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await authorize(b!.client_id)).status).toBe(200);

    const token = (clientId: string) =>
      fetch(`${stack.issuer}/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'authorization_code', client_id: clientId, code: 'nope', code_verifier: 'v'.repeat(43) }) });
    for (let i = 0; i < 3; i += 1) expect((await token(a!.client_id)).status).toBe(400);
    const slowed = await token(a!.client_id);
    expect(slowed.status).toBe(429);
    expect(slowed.headers.get('retry-after')).toBeTruthy();
    expect((await token(b!.client_id)).status).toBe(400);
  });
});

describe('without broker mode', () => {
  let plain: Stack;
  beforeAll(async () => {
    plain = await startStack();
  });
  afterAll(async () => {
    await plain?.close();
  });

  it('serves no authorization server endpoints: they are ordinary paths that need a token (SPEC 38)', async () => {
    const origin = new URL(plain.mcpUrl).origin;
    const before = plain.mcp.requests.length;
    for (const [method, path] of [
      ['GET', '/.well-known/oauth-authorization-server'],
      ['GET', '/oauth/authorize'],
      ['POST', '/oauth/token'],
      ['POST', '/oauth/register'],
      ['POST', '/oauth/revoke'],
      ['GET', '/oauth/jwks'],
    ] as const) {
      const response = await fetch(`${origin}${path}`, { method, redirect: 'manual' });
      expect(response.status, `${method} ${path}`).toBe(401);
    }
    expect(plain.mcp.requests.length).toBe(before);
  });
});
