import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeJwt } from 'jose';
import { Client } from 'sdk-1-10/client/index.js';
import { UnauthorizedError, type OAuthClientProvider } from 'sdk-1-10/client/auth.js';
import { StreamableHTTPClientTransport } from 'sdk-1-10/client/streamableHttp.js';
import type { OAuthClientInformation, OAuthClientInformationFull, OAuthClientMetadata, OAuthTokens } from 'sdk-1-10/shared/auth.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorizeFirstAttempt, followAuthorizationRedirects, REDIRECT_URI } from '../../demo/oauth-client.ts';
import { startStack, type Stack } from '../helpers/stack.ts';

/** An OAuthClientProvider of the 1.10 SDK (2025-03-26 era) whose browser is the scripted redirect walker. */
class ScriptedLegacyProvider implements OAuthClientProvider {
  information: OAuthClientInformationFull | undefined;
  saved: OAuthTokens | undefined;
  verifier = '';
  code: Promise<string> | undefined;
  /** Every authorization URL the SDK sent the browser to. */
  readonly authorizationUrls: URL[] = [];

  get redirectUrl(): string {
    return REDIRECT_URI;
  }

  get clientMetadata(): OAuthClientMetadata {
    return { client_name: 'sdk 1.10 client', redirect_uris: [REDIRECT_URI], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'none' };
  }

  clientInformation(): OAuthClientInformation | undefined {
    return this.information;
  }

  saveClientInformation(information: OAuthClientInformationFull): void {
    this.information = information;
  }

  tokens(): OAuthTokens | undefined {
    return this.saved;
  }

  saveTokens(tokens: OAuthTokens): void {
    this.saved = tokens;
  }

  redirectToAuthorization(authorizationUrl: URL): void {
    this.authorizationUrls.push(authorizationUrl);
    this.code = followAuthorizationRedirects(authorizationUrl, REDIRECT_URI);
  }

  saveCodeVerifier(verifier: string): void {
    this.verifier = verifier;
  }

  codeVerifier(): string {
    return this.verifier;
  }
}

/** The 1.10 SDK's own flow: the 401, its origin discovery, registration, the code by the walker, the exchange, then a connection. */
async function connectLegacy(mcpUrl: string, provider: ScriptedLegacyProvider): Promise<Client> {
  await authorizeFirstAttempt(mcpUrl, new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider }), provider, { Client, UnauthorizedError });
  const client = new Client({ name: 'sdk 1.10 client', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider }));
  return client;
}

const originOf = (url: string) => new URL(url).origin;

describe('a 2025-03-26 client (SDK 1.10) with legacy_clients on', () => {
  let stack: Stack;
  let provider: ScriptedLegacyProvider;
  let client: Client;

  beforeAll(async () => {
    stack = await startStack((base) => ({ ...base, legacy_clients: true }), { defaultResource: true });
    provider = new ScriptedLegacyProvider();
    client = await connectLegacy(stack.mcpUrl, provider);
  });
  afterAll(async () => {
    await client?.close();
    await stack?.close();
  });

  it('registers, authorizes with PKCE and gets a token for the MCP URL, all at the endpoints the origin named', () => {
    expect(provider.information?.client_id).toBeTruthy();
    const [authorization] = provider.authorizationUrls;
    expect(authorization!.origin).toBe(stack.as.issuer);
    expect(authorization!.searchParams.get('code_challenge_method')).toBe('S256');
    // The 1.10 SDK names no resource: the authorization server's default audience is the MCP URL.
    expect(authorization!.searchParams.has('resource')).toBe(false);
    const claims = decodeJwt(provider.saved!.access_token);
    expect(claims.aud).toBe(stack.mcpUrl);
    expect(claims.iss).toBe(stack.as.issuer);
  });

  it('calls a tool through mcp-warden with that token', async () => {
    const result = await client.callTool({ name: 'echo', arguments: { text: 'from 2025-03-26' } });
    expect(result.content).toEqual([{ type: 'text', text: 'from 2025-03-26' }]);
  });

  it('found the metadata at the origin without a token, and never showed the upstream a discovery request', () => {
    const discovery = stack.logs.find((log) => log.msg === 'request' && log.path === '/.well-known/oauth-authorization-server');
    expect(discovery).toMatchObject({ status: 200, outcome: 'metadata' });
    expect(stack.mcp.requests.some((request) => request.url?.startsWith('/.well-known/'))).toBe(false);
  });
});

describe('a 2025-03-26 client (SDK 1.10) with legacy_clients off', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack(undefined, { defaultResource: true });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('cannot find the authorization server: the origin metadata needs a token', async () => {
    const provider = new ScriptedLegacyProvider();
    await expect(connectLegacy(stack.mcpUrl, provider)).rejects.toThrow(/HTTP 401 trying to load well-known OAuth metadata/);
    expect(provider.information).toBeUndefined();
    expect(provider.saved).toBeUndefined();
  });

  it('keeps the fallback paths behind the token, as any other path', async () => {
    for (const path of ['/.well-known/oauth-authorization-server', '/authorize', '/token', '/register']) {
      const response = await fetch(`${originOf(stack.mcpUrl)}${path}`, { method: path === '/token' || path === '/register' ? 'POST' : 'GET', redirect: 'manual' });
      expect(response.status, path).toBe(401);
    }
  });
});

describe('the origin routes of legacy_clients', () => {
  let stack: Stack;
  let origin: string;
  let issuerMetadata: Record<string, unknown>;

  beforeAll(async () => {
    stack = await startStack((base) => ({ ...base, legacy_clients: true }));
    origin = originOf(stack.mcpUrl);
    issuerMetadata = (await (await fetch(`${stack.as.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('serves the issuer metadata unchanged, issuer included, without a token and CORS-readable', async () => {
    const response = await fetch(`${origin}/.well-known/oauth-authorization-server`);
    expect(response.status).toBe(200);
    expect(response.headers.get('access-control-allow-origin')).toBe('*');
    const served = (await response.json()) as Record<string, unknown>;
    expect(served).toEqual(issuerMetadata);
    expect(Object.keys(served)).toEqual(Object.keys(issuerMetadata));
    expect(served.issuer).toBe(stack.as.issuer);
  });

  it('redirects GET /authorize with 302 to the authorization endpoint, the query kept byte for byte', async () => {
    const query = '?response_type=code&client_id=abc&redirect_uri=http%3A%2F%2F127.0.0.1%3A1%2Fcallback&code_challenge=x_y-z&state=a%20b';
    const response = await fetch(`${origin}/authorize${query}`, { redirect: 'manual' });
    expect(response.status).toBe(302);
    expect(response.headers.get('location')).toBe(`${issuerMetadata.authorization_endpoint as string}${query}`);
  });

  it.each([
    ['/token', 'token_endpoint', 'application/x-www-form-urlencoded', 'grant_type=authorization_code&code=abc'],
    ['/register', 'registration_endpoint', 'application/json', '{"redirect_uris":["http://127.0.0.1:1/callback"]}'],
  ])('redirects POST %s with 307 to the %s, so the body is sent again', async (path, member, type, body) => {
    const response = await fetch(`${origin}${path}`, { method: 'POST', headers: { 'content-type': type }, body, redirect: 'manual' });
    expect(response.status).toBe(307);
    expect(response.headers.get('location')).toBe(issuerMetadata[member]);
  });

  it('takes the redirect targets from the issuer metadata, never from Host or the query', async () => {
    const response = await fetch(`${origin}/authorize?x=1&redirect=https://evil.example/`, { redirect: 'manual', headers: { host: 'evil.example', 'x-forwarded-host': 'evil.example' } });
    expect(response.status).toBe(302);
    expect(new URL(response.headers.get('location')!).origin).toBe(stack.as.issuer);
    expect(response.headers.get('location')!.startsWith(`${issuerMetadata.authorization_endpoint as string}?`)).toBe(true);
  });

  it('answers other methods with 405 and preflights with 204, forwarding none of them', async () => {
    const before = stack.mcp.requests.length;
    expect((await fetch(`${origin}/token`, { redirect: 'manual' })).status).toBe(405);
    expect((await fetch(`${origin}/.well-known/oauth-authorization-server`, { method: 'POST', body: '{}' })).status).toBe(405);
    const preflight = await fetch(`${origin}/.well-known/oauth-authorization-server`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'mcp-protocol-version' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-headers')).toMatch(/MCP-Protocol-Version/i);
    expect(stack.mcp.requests.length).toBe(before);
  });

  it('needs no token and ignores one, and never forwards these routes upstream', async () => {
    const before = stack.mcp.requests.length;
    const withBadToken = await fetch(`${origin}/.well-known/oauth-authorization-server`, { headers: { authorization: 'Bearer not-a-token' } });
    expect(withBadToken.status).toBe(200);
    const token = await stack.as.mintToken({ resource: stack.mcpUrl });
    for (const path of ['/authorize', '/token', '/register']) {
      const response = await fetch(`${origin}${path}`, { method: path === '/authorize' ? 'GET' : 'POST', headers: { authorization: `Bearer ${token}` }, redirect: 'manual' });
      expect(response.status, path).toBeGreaterThanOrEqual(300);
      expect(response.status, path).toBeLessThan(400);
    }
    expect(stack.mcp.requests.length).toBe(before);
  });

  it('leaves every other path behind the token', async () => {
    expect((await fetch(`${origin}/authorize/x`, { redirect: 'manual' })).status).toBe(401);
    expect((await fetch(`${origin}/tokens`, { method: 'POST', redirect: 'manual' })).status).toBe(401);
    expect((await fetch(`${origin}/.well-known/openid-configuration`)).status).toBe(401);
  });
});

describe('legacy_clients when the issuer cannot be reached', () => {
  let stack: Stack;
  let issuer: FakeIssuer;

  beforeAll(async () => {
    issuer = await startFakeIssuer();
    issuer.up = false;
    // Keys still come from the stack's authorization server, so the warden is ready; the metadata's issuer is the fake one.
    stack = await startStack((base, as) => ({ ...base, legacy_clients: true, authorization_servers: [{ issuer: issuer.url, jwks_uri: `${as.issuer}/jwks` }] }));
  });
  afterAll(async () => {
    await stack?.close();
    await issuer?.close();
  });

  it('answers 503 with Retry-After on every route, forwards nothing, and does not ask the issuer again at once', async () => {
    const origin = originOf(stack.mcpUrl);
    const before = stack.mcp.requests.length;
    const metadata = await fetch(`${origin}/.well-known/oauth-authorization-server`);
    expect(metadata.status).toBe(503);
    expect(Number(metadata.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await metadata.json()).toMatchObject({ error: 'temporarily_unavailable' });
    const asked = issuer.requests;
    expect(asked).toBeGreaterThan(0);
    for (const [path, method] of [['/authorize', 'GET'], ['/token', 'POST'], ['/register', 'POST']] as const) {
      const response = await fetch(`${origin}${path}?a=b`, { method, redirect: 'manual' });
      expect(response.status, path).toBe(503);
      expect(response.headers.get('location')).toBeNull();
      expect(response.headers.get('retry-after')).toBeTruthy();
    }
    expect(issuer.requests).toBe(asked);
    expect(stack.mcp.requests.length).toBe(before);
    expect(stack.logs.find((log) => log.msg === 'authorization server metadata for 2025-03-26 clients unavailable')).toBeTruthy();
  });
});

export interface FakeIssuer {
  readonly url: string;
  /** Answers 503 to everything while false. */
  up: boolean;
  /** Members added to the metadata document. */
  extra: Record<string, unknown>;
  requests: number;
  close(): Promise<void>;
}

/** An issuer that publishes RFC 8414 metadata at its origin, and can be taken down. */
export async function startFakeIssuer(): Promise<FakeIssuer> {
  const server = createServer((req, res) => {
    fake.requests += 1;
    if (!fake.up || req.url !== '/.well-known/oauth-authorization-server') {
      res.writeHead(fake.up ? 404 : 503);
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ issuer: fake.url, authorization_endpoint: `${fake.url}/oauth2/authorize`, token_endpoint: `${fake.url}/oauth2/token`, response_types_supported: ['code'], ...fake.extra }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const fake: FakeIssuer = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    up: true,
    extra: {},
    requests: 0,
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
  return fake;
}
