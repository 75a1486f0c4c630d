import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, decodeJwt, jwtVerify } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { TOKEN_EXCHANGE_GRANT } from '../../demo/authorization-server.ts';
import { validToken } from '../security/helpers.ts';
import { startFaultyServer } from '../helpers/jwks-server.ts';
import { INITIALIZE, MCP_HEADERS, startStack, type Stack } from '../helpers/stack.ts';
import { connectWithToken, testServer, textOf } from '../helpers/stdio-stack.ts';

const UPSTREAM = 'https://legacy-api.example.com';
const upstreamOptions = (ttl?: number) => ({ resources: { [UPSTREAM]: { scopes: ['legacy:read'] } }, ...(ttl ? { accessTokenTtlSeconds: ttl, exchangeTtlSeconds: ttl } : {}) });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

/** POSTs an initialize with `token` (a request the upstream answers without a session). */
async function call(token: string): Promise<Response> {
  return fetch(stack!.mcpUrl, { method: 'POST', headers: { ...MCP_HEADERS, authorization: `Bearer ${token}` }, body: INITIALIZE });
}

/** The Authorization headers the upstream received, in order. */
const upstreamBearers = () => stack!.mcp.requests.map((request) => request.headers.authorization).filter((value): value is string => typeof value === 'string');

async function verifiedForUpstream(header: string) {
  expect(header).toMatch(/^Bearer /);
  const { payload } = await jwtVerify(header.slice(7), createLocalJWKSet({ keys: [stack!.as.signingKey.publicJwk] }), { issuer: stack!.as.issuer, audience: UPSTREAM });
  return payload;
}

describe('client credentials: one token for the proxy', () => {
  const start = async (auth: 'client_secret_basic' | 'private_key_jwt', extra: Record<string, unknown> = {}, ttl?: number) => {
    stack = await startStack(
      (base, as) => {
        const clients = as.upstreamClients!;
        let secret: Record<string, unknown>;
        if (auth === 'client_secret_basic') {
          process.env.WARDEN_TEST_UPSTREAM_CLIENT_SECRET = clients.basic.client_secret;
          secret = { client_id: clients.basic.client_id, client_secret: '${env:WARDEN_TEST_UPSTREAM_CLIENT_SECRET}' };
        } else {
          const file = join(mkdtempSync(join(tmpdir(), 'upstream-key-')), 'key.jwk');
          writeFileSync(file, JSON.stringify(clients.privateKeyJwt.privateJwk, null, 2));
          secret = { client_id: clients.privateKeyJwt.client_id, private_key: `\${file:${file}}` };
        }
        return { ...base, upstream: { url: (base.upstream as { url: string }).url, credential: { type: 'client_credentials', issuer: as.issuer, auth_method: auth, resource: UPSTREAM, ...secret, ...extra } } };
      },
      { upstream: upstreamOptions(ttl) },
    );
    return stack;
  };

  it.each(['client_secret_basic', 'private_key_jwt'] as const)('with %s: 200 concurrent requests at start cause one token request, and the upstream gets a token for its audience', async (auth) => {
    await start(auth);
    const token = await validToken(stack!);
    const statuses = await Promise.all(Array.from({ length: 200 }, () => call(token).then(async (response) => (await response.arrayBuffer(), response.status))));
    expect(new Set(statuses)).toEqual(new Set([200]));
    expect(stack!.as.tokenRequests('client_credentials')).toBe(1);
    const bearers = upstreamBearers();
    expect(bearers).toHaveLength(200);
    expect(new Set(bearers).size).toBe(1);
    const claims = await verifiedForUpstream(bearers[0]!);
    expect(claims.client_id).toBe(auth === 'client_secret_basic' ? stack!.as.upstreamClients!.basic.client_id : stack!.as.upstreamClients!.privateKeyJwt.client_id);
    expect(bearers[0]).not.toContain(token);
  });

  it('renews the token before it expires, and no request fails meanwhile', { timeout: 20_000 }, async () => {
    await start('client_secret_basic', { refresh_before: '2s' }, 4);
    const token = await validToken(stack!);
    const statuses: number[] = [];
    const until = Date.now() + 5_500;
    while (Date.now() < until) {
      statuses.push((await call(token)).status);
      await sleep(200);
    }
    expect(statuses.every((status) => status === 200)).toBe(true);
    expect(stack!.as.tokenRequests('client_credentials')).toBeGreaterThanOrEqual(2);
    expect(new Set(upstreamBearers()).size).toBeGreaterThanOrEqual(2);
  });

  it('keeps the last good token while the issuer is down, until it expires; then 503 and nothing upstream', { timeout: 20_000 }, async () => {
    await start('client_secret_basic', { refresh_before: '3s' }, 4);
    const issuedAt = Date.now();
    stack!.as.failTokenEndpoint('down');
    const token = await validToken(stack!);
    await sleep(2_500);
    expect((await call(token)).status).toBe(200);
    while (Date.now() - issuedAt < 4_500) await sleep(100);
    const before = stack!.mcp.requests.length;
    const refused = await call(token);
    expect(refused.status).toBe(503);
    expect(await refused.json()).toEqual({ error: 'upstream_credential_unavailable', error_description: 'the proxy has no upstream credential' });
    expect(stack!.mcp.requests.length).toBe(before);
    expect(stack!.logs).toContainEqual(expect.objectContaining({ msg: 'upstream token renewal failed, using the current one until it expires' }));
    stack!.as.failTokenEndpoint(undefined);
    await expect.poll(async () => (await call(token)).status, { timeout: 8_000, interval: 250 }).toBe(200);
  });
});

describe('token exchange (RFC 8693): the user’s token for one minted for the upstream', () => {
  const start = async (extra: Record<string, unknown> = {}) => {
    stack = await startStack(
      (base, as) => {
        process.env.WARDEN_TEST_EXCHANGE_SECRET = as.upstreamClients!.basic.client_secret;
        const credential = { type: 'token_exchange', issuer: as.issuer, client_id: as.upstreamClients!.basic.client_id, client_secret: '${env:WARDEN_TEST_EXCHANGE_SECRET}', resource: UPSTREAM, ...extra };
        return { ...base, upstream: { url: (base.upstream as { url: string }).url, credential } };
      },
      { upstream: upstreamOptions() },
    );
  };

  it('gives the upstream a token with the user’s sub and its own aud, never the client’s token', async () => {
    await start();
    const token = await validToken(stack!, { sub: 'alice' });
    expect((await call(token)).status).toBe(200);
    const [bearer] = upstreamBearers();
    const claims = await verifiedForUpstream(bearer!);
    expect(claims.sub).toBe('alice');
    for (const request of stack!.mcp.requests) expect(JSON.stringify(request.rawHeaders)).not.toContain(token);
  });

  it('exchanges once for 50 concurrent requests with one token, and gives two users two tokens', async () => {
    await start();
    const alice = await validToken(stack!, { sub: 'alice' });
    const statuses = await Promise.all(Array.from({ length: 50 }, () => call(alice).then((response) => response.status)));
    expect(new Set(statuses)).toEqual(new Set([200]));
    expect(stack!.as.tokenRequests(TOKEN_EXCHANGE_GRANT)).toBe(1);
    expect((await call(await validToken(stack!, { sub: 'bob' }))).status).toBe(200);
    expect(stack!.as.tokenRequests(TOKEN_EXCHANGE_GRANT)).toBe(2);
    const subjects = new Set(upstreamBearers().map((bearer) => decodeJwt(bearer.slice(7)).sub));
    expect(subjects).toEqual(new Set(['alice', 'bob']));
    expect(new Set(upstreamBearers()).size).toBe(2);
  });

  it('answers 403 when the exchange is refused (invalid_grant) and 503 when the endpoint is down; nothing reaches the upstream', async () => {
    await start();
    const bob = await validToken(stack!, { sub: 'denied-bob' });
    const refused = await call(bob);
    expect(refused.status).toBe(403);
    // The refusal is remembered for that token: a second request makes no second exchange.
    expect((await call(bob)).status).toBe(403);
    expect(stack!.as.tokenRequests(TOKEN_EXCHANGE_GRANT)).toBe(1);
    expect(refused.headers.get('www-authenticate')).toBeNull();
    expect(await refused.json()).toEqual({ error: 'upstream_access_denied', error_description: 'the upstream credential for this user was refused by the authorization server' });
    stack!.as.failTokenEndpoint('down');
    const down = await call(await validToken(stack!, { sub: 'carol' }));
    expect(down.status).toBe(503);
    expect(stack!.mcp.requests).toHaveLength(0);
    const metrics = await (await fetch(`${stack!.warden.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/mcp_warden_upstream_token_requests_total\{issuer="[^"]+",grant="token_exchange",result="refused"\} 1/);
    expect(metrics).toMatch(/mcp_warden_upstream_token_requests_total\{issuer="[^"]+",grant="token_exchange",result="unavailable"\} 1/);
  });
});

describe('Entra ID on-behalf-of', () => {
  it('sends the request Entra documents, with the inbound token as the assertion, and forwards the token it answers', async () => {
    const seen: Array<{ method: string; path: string; type: string | undefined; form: string[][] }> = [];
    const recorder = await startFaultyServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => (body += chunk));
      req.on('end', () => {
        seen.push({ method: req.method!, path: req.url!, type: req.headers['content-type'], form: [...new URLSearchParams(body)] });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ token_type: 'Bearer', scope: 'api://legacy/.default', expires_in: 3599, ext_expires_in: 3599, access_token: 'obo-access-token-for-alice' }));
      });
    });
    try {
      process.env.WARDEN_TEST_OBO_SECRET = 'obo-client-secret-value';
      stack = await startStack((base) => ({
        ...base,
        upstream: {
          url: (base.upstream as { url: string }).url,
          credential: { type: 'token_exchange', profile: 'entra_obo', token_endpoint: `${recorder.url}/tenant-id/oauth2/v2.0/token`, client_id: 'warden-app-id', client_secret: '${env:WARDEN_TEST_OBO_SECRET}', auth_method: 'client_secret_post', scope: ['api://legacy/.default'] },
        },
      }));
      const token = await validToken(stack, { sub: 'alice' });
      expect((await call(token)).status).toBe(200);
      expect(seen).toHaveLength(1);
      expect(seen[0]).toMatchObject({ method: 'POST', path: '/tenant-id/oauth2/v2.0/token', type: 'application/x-www-form-urlencoded' });
      expect(seen[0]!.form.sort()).toEqual(
        [
          ['assertion', token],
          ['client_id', 'warden-app-id'],
          ['client_secret', 'obo-client-secret-value'],
          ['grant_type', 'urn:ietf:params:oauth:grant-type:jwt-bearer'],
          ['requested_token_use', 'on_behalf_of'],
          ['scope', 'api://legacy/.default'],
        ].sort(),
      );
      expect(upstreamBearers()).toEqual(['Bearer obo-access-token-for-alice']);
    } finally {
      await recorder.close();
    }
  });
});

describe('token exchange refused for a reason of the setup', () => {
  it('answers 503 for an OAuth error other than invalid_grant, and asks again for that token only after a while', async () => {
    const endpoint = await startFaultyServer((req, res) => {
      req.resume();
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'invalid_scope', error_description: 'no such scope' }));
    });
    try {
      process.env.WARDEN_TEST_EXCHANGE_SECRET = 'exchange-secret-value';
      stack = await startStack((base) => ({
        ...base,
        upstream: { url: (base.upstream as { url: string }).url, credential: { type: 'token_exchange', token_endpoint: `${endpoint.url}/token`, client_id: 'w', client_secret: '${env:WARDEN_TEST_EXCHANGE_SECRET}', audience: 'legacy' } },
      }));
      const token = await validToken(stack, { sub: 'dave' });
      expect((await call(token)).status).toBe(503);
      expect((await call(token)).status).toBe(503);
      expect(endpoint.hits).toBe(1);
      expect(stack.mcp.requests).toHaveLength(0);
      expect(stack.logs).toContainEqual(expect.objectContaining({ msg: 'upstream credential unavailable', problem: expect.stringContaining('invalid_scope') }));
    } finally {
      await endpoint.close();
    }
  });
});

describe('client credentials for a stdio upstream', () => {
  it('gives each child the live token in the named variable at spawn', async () => {
    stack = await startStack(
      (base, as) => {
        process.env.WARDEN_TEST_UPSTREAM_CLIENT_SECRET = as.upstreamClients!.post.client_secret;
        const credential = { type: 'client_credentials', issuer: as.issuer, client_id: as.upstreamClients!.post.client_id, client_secret: '${env:WARDEN_TEST_UPSTREAM_CLIENT_SECRET}', auth_method: 'client_secret_post', resource: UPSTREAM, env: 'UPSTREAM_TOKEN' };
        return { ...base, upstream: { command: testServer(), credential } };
      },
      { upstream: upstreamOptions() },
    );
    const { client, close } = await connectWithToken(stack.mcpUrl, await validToken(stack));
    const { env } = JSON.parse(textOf(await client.callTool({ name: 'whoami', arguments: {} }))) as { env: Record<string, string> };
    await close();
    const { payload } = await jwtVerify(env.UPSTREAM_TOKEN!, createLocalJWKSet({ keys: [stack.as.signingKey.publicJwk] }), { issuer: stack.as.issuer, audience: UPSTREAM });
    expect(payload.client_id).toBe(stack.as.upstreamClients!.post.client_id);
  });
});
