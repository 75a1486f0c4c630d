import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectWithOAuth } from '../../demo/oauth-client.ts';
import { startFaultyServer } from '../helpers/jwks-server.ts';
import { INITIALIZE, MCP_HEADERS, startStack, waitFor, type Stack } from '../helpers/stack.ts';

const INTROSPECTION = '/token/introspection';

/** mcp-warden with introspection as the only verifier, in front of oidc-provider issuing opaque tokens. */
function introspectionOnly(maxTtl: string) {
  return (base: Record<string, unknown>, as: { issuer: string; introspectionClient: { client_id: string; client_secret: string } }) => {
    process.env.WARDEN_TEST_INTROSPECTION_SECRET = as.introspectionClient.client_secret;
    return {
      ...base,
      authorization_servers: [
        {
          issuer: as.issuer,
          verify_jwt: false,
          introspection: { client_id: as.introspectionClient.client_id, client_secret: '${env:WARDEN_TEST_INTROSPECTION_SECRET}' },
        },
      ],
      tokens: { ...(base.tokens as object), cache: { max_ttl: maxTtl, negative_ttl: '10s' } },
    };
  };
}

const call = (stack: Stack, token: string, method = 'GET') =>
  fetch(stack.mcpUrl, { method, headers: { ...MCP_HEADERS, authorization: `Bearer ${token}` }, ...(method === 'POST' ? { body: INITIALIZE } : {}) });

describe('opaque tokens from oidc-provider, checked by introspection', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack(introspectionOnly('60s'), { format: 'opaque' });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('lets the official SDK client through the whole OAuth flow to a tool', async () => {
    const before = stack.as.requestCount(INTROSPECTION);
    const connection = await connectWithOAuth(stack.mcpUrl, { clientName: 'opaque-e2e' });
    try {
      expect(connection.accessToken()).not.toContain('.');
      const result = await connection.client.callTool({ name: 'echo', arguments: { text: 'opaque' } });
      expect(result.content).toEqual([{ type: 'text', text: 'opaque' }]);
      expect(stack.as.requestCount(INTROSPECTION)).toBeGreaterThan(before);
      for (const request of stack.mcp.requests) expect(JSON.stringify(request.rawHeaders)).not.toContain(connection.accessToken());
    } finally {
      await connection.close();
    }
  });

  it('refuses an opaque token issued for another resource with 401 invalid_token', async () => {
    const before = stack.mcp.requests.length;
    const response = await call(stack, await stack.as.mintToken({ resource: 'http://127.0.0.1:1/other', scope: 'mcp:read' }));
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect(stack.mcp.requests.length).toBe(before);
    await waitFor(() => stack.logs.some((log) => log.reason === 'wrong_audience'), 'wrong_audience log line');
  });

  it('asks the authorization server once for 100 concurrent requests, and once for 1,000 within the TTL', async () => {
    const token = await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:read' });
    const before = stack.as.requestCount(INTROSPECTION);
    const burst = await Promise.all(Array.from({ length: 100 }, () => call(stack, token)));
    expect(burst.every((response) => response.status === 400)).toBe(true); // the upstream's "no session" answer: auth passed
    await Promise.all(burst.map((response) => response.body?.cancel()));
    expect(stack.as.requestCount(INTROSPECTION) - before).toBe(1);
    for (let wave = 0; wave < 9; wave += 1) {
      const responses = await Promise.all(Array.from({ length: 100 }, () => call(stack, token)));
      await Promise.all(responses.map((response) => response.body?.cancel()));
    }
    expect(stack.as.requestCount(INTROSPECTION) - before).toBe(1);
  });

  it('counts introspections and cache lookups, and never logs or caches a raw token', async () => {
    const metrics = await (await fetch(`${stack.warden.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`mcp_warden_introspection_requests_total\\{issuer="${stack.as.issuer}",result="active"\\} [1-9]`));
    expect(metrics).toMatch(/mcp_warden_introspection_cache_lookups_total\{issuer="[^"]+",result="hit"\} [1-9]\d*/);
    expect(metrics).toMatch(/mcp_warden_introspection_cache_lookups_total\{issuer="[^"]+",result="inflight"\} [1-9]\d*/);
    expect(metrics).toMatch(/mcp_warden_introspection_duration_seconds_count\{issuer="[^"]+"\} [1-9]/);
    expect(metrics).toMatch(/^mcp_warden_introspection_cache_entries \d+$/m);
    const token = await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:read' });
    await (await call(stack, token)).body?.cancel();
    expect(JSON.stringify(stack.logs)).not.toContain(token);
  });
});

describe('a server with both JWKS and introspection', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack((base, as) => {
      process.env.WARDEN_TEST_MIXED_SECRET = as.introspectionClient.client_secret;
      return {
        ...base,
        authorization_servers: [
          { issuer: as.issuer, introspection: { client_id: as.introspectionClient.client_id, client_secret: '${env:WARDEN_TEST_MIXED_SECRET}' } },
        ],
      };
    });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('verifies its JWTs locally, and never retries a failed one by introspection', async () => {
    const before = stack.as.requestCount(INTROSPECTION);
    const token = await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:read' });
    const ok = await call(stack, token);
    expect(ok.status).toBe(400);
    await ok.body?.cancel();
    const [header, payload] = token.split('.');
    const tampered = await call(stack, `${header}.${payload}.${'A'.repeat(342)}`);
    expect(tampered.status).toBe(401);
    expect(stack.as.requestCount(INTROSPECTION)).toBe(before);
  });

  it('introspects what is not a JWT', async () => {
    const before = stack.as.requestCount(INTROSPECTION);
    const response = await call(stack, 'not-a-jwt-but-opaque');
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect(stack.as.requestCount(INTROSPECTION)).toBe(before + 1);
  });
});

describe('revocation with a short max_ttl', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack(introspectionOnly('1s'), { format: 'opaque' });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('refuses a token revoked at oidc-provider once its cache entry has expired', async () => {
    const token = await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:read' });
    expect((await call(stack, token, 'POST')).status).toBe(200);
    await stack.as.revokeToken(token);
    // Within max_ttl the cached answer still stands: the documented price of caching.
    expect((await call(stack, token, 'POST')).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const response = await call(stack, token, 'POST');
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });
});

describe('introspection outages', () => {
  let stack: Stack;
  let endpoint: Awaited<ReturnType<typeof startFaultyServer>>;
  let issuer = '';
  const active = (res: ServerResponse) =>
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ active: true, iss: issuer, aud: stack.mcpUrl, sub: 'u', scope: 'mcp:read', exp: Math.floor(Date.now() / 1000) + 60 }));

  beforeAll(async () => {
    endpoint = await startFaultyServer((_req, res) => active(res));
    stack = await startStack((base, as) => {
      issuer = as.issuer;
      process.env.WARDEN_TEST_FAULT_SECRET = 'fault-secret-3f9a';
      return {
        ...base,
        authorization_servers: [
          {
            issuer: as.issuer,
            verify_jwt: false,
            introspection: { endpoint: `${endpoint.url}/introspect`, client_id: 'rs', client_secret: '${env:WARDEN_TEST_FAULT_SECRET}', timeout: '300ms' },
          },
        ],
      };
    });
  });
  afterAll(async () => {
    await stack?.close();
    await endpoint?.close().catch(() => undefined);
  });

  const faults: Array<[string, (res: ServerResponse) => void]> = [
    ['answers 500', (res) => res.writeHead(500).end()],
    ['answers HTML', (res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>oops</html>')],
    ['answers 401 to our credentials', (res) => res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"invalid_client"}')],
    ['is slower than the timeout', () => undefined],
    ['redirects elsewhere', (res) => res.writeHead(302, { location: 'http://127.0.0.1:1/' }).end()],
  ];

  it.each(faults)('answers 503 with Retry-After when the endpoint %s, forwards nothing, and recovers', async (name, fault) => {
    endpoint.respondWith((_req, res) => fault(res));
    const before = stack.mcp.requests.length;
    const token = `opaque-token-${name.length}-${Date.now()}`;
    const response = await call(stack, token);
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe('5');
    expect(response.headers.get('www-authenticate')).toBeNull();
    expect(stack.mcp.requests.length).toBe(before);
    endpoint.respondWith((_req, res) => active(res));
    const recovered = await call(stack, token);
    expect(recovered.status).toBe(400);
    await recovered.body?.cancel();
  });

  it('answers 503 when the endpoint is down', async () => {
    await endpoint.close();
    const response = await call(stack, 'opaque-token-while-down');
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe('5');
  });
});
