import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerConsent, connectWithOAuth, followAuthorizationRedirects, REDIRECT_URI } from '../../demo/oauth-client.ts';
import { pkce, startBrokerStack, type BrokerStack } from '../helpers/broker-stack.ts';
import { skipWithoutRedis, startRedis, type StartedRedis } from '../helpers/redis-server.ts';
import { INITIALIZE, MCP_HEADERS } from '../helpers/stack.ts';

const REDIS_URL_ENV = 'WARDEN_TEST_REDIS_URL';

/** Two broker replicas sharing one real redis-server, behind one public URL (replica A's). */
describe.skipIf(skipWithoutRedis)('two broker replicas sharing a Redis store', () => {
  let redis: StartedRedis;
  let stack: BrokerStack;
  let a: string;
  let b: string;
  let clientId: string;

  const form = (replica: string, path: string, params: Record<string, string>) =>
    fetch(`${replica}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(params) });
  const refresh = (replica: string, refreshToken: string) => form(replica, '/oauth/token', { grant_type: 'refresh_token', client_id: clientId, refresh_token: refreshToken });
  const register = (replica: string) =>
    fetch(`${replica}/oauth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ redirect_uris: [REDIRECT_URI], grant_types: ['authorization_code', 'refresh_token'], token_endpoint_auth_method: 'none' }) });
  const code = async () => {
    const { verifier, challenge } = pkce();
    const url = new URL(`${a}/oauth/authorize`);
    for (const [name, value] of Object.entries({ response_type: 'code', client_id: clientId, redirect_uri: REDIRECT_URI, code_challenge: challenge, code_challenge_method: 'S256', scope: 'mcp:read' })) url.searchParams.set(name, value);
    return { code: await followAuthorizationRedirects(url, REDIRECT_URI, { cookies: new Map(), onPage: answerConsent('approve') }), verifier };
  };
  const redeem = (replica: string, grant: { code: string; verifier: string }) =>
    form(replica, '/oauth/token', { grant_type: 'authorization_code', client_id: clientId, code: grant.code, code_verifier: grant.verifier, redirect_uri: REDIRECT_URI });
  const callMcp = (replica: string, token: string) => fetch(`${replica}/mcp`, { method: 'POST', headers: { ...MCP_HEADERS, authorization: `Bearer ${token}` }, body: INITIALIZE });

  beforeAll(async () => {
    redis = await startRedis();
    process.env[REDIS_URL_ENV] = redis.url;
    stack = await startBrokerStack(
      { store: { type: 'redis', url: `\${env:${REDIS_URL_ENV}}`, key_prefix: 'replicas' }, rate_limits: { registration: { per_ip: 5 }, authorize: { per_ip: 1000 }, token: { per_ip: 1000 } } },
      { replicas: 2 },
    );
    [a, b] = stack.replicaUrls as [string, string];
    clientId = ((await (await register(b)).json()) as { client_id: string }).client_id;
  });
  afterAll(async () => {
    await stack?.close();
    await redis?.close();
  });

  it('signs with one key, and refreshes through replica B a token obtained through replica A', async () => {
    expect(await (await fetch(`${b}/oauth/jwks`)).json()).toEqual(await (await fetch(`${a}/oauth/jwks`)).json());
    const connection = await connectWithOAuth(stack.mcpUrl, { clientName: 'replica A', browser: { cookies: new Map(), onPage: answerConsent('approve') } });
    try {
      const tokens = connection.tokens();
      const viaB = await form(b, '/oauth/token', { grant_type: 'refresh_token', client_id: connection.clientInformation().client_id, refresh_token: tokens.refresh_token! });
      expect(viaB.status).toBe(200);
      const fresh = (await viaB.json()) as { access_token: string };
      expect(decodeJwt(fresh.access_token)).toMatchObject({ iss: stack.issuer, aud: stack.mcpUrl, sub: 'idp-user-1' });
      expect((await callMcp(b, fresh.access_token)).status).toBe(200);
      expect((await callMcp(a, fresh.access_token)).status).toBe(200);
    } finally {
      await connection.close();
    }
  });

  it('answers exactly one of 50 concurrent redemptions of one code across both replicas', async () => {
    const grant = await code();
    const responses = await Promise.all(Array.from({ length: 50 }, (_, i) => redeem(i % 2 ? a : b, grant)));
    const statuses = responses.map((response) => response.status);
    expect(statuses.filter((status) => status === 200)).toHaveLength(1);
    expect(statuses.filter((status) => status === 400)).toHaveLength(49);
  });

  it('rotates one refresh token exactly once under 20 concurrent uses, and the reuse revokes the family on both replicas', async () => {
    const first = (await (await redeem(a, await code())).json()) as { refresh_token: string };
    const responses = await Promise.all(Array.from({ length: 20 }, (_, i) => refresh(i % 2 ? a : b, first.refresh_token)));
    const winners = responses.filter((response) => response.status === 200);
    expect(winners).toHaveLength(1);
    const rotated = (await winners[0]!.json()) as { access_token: string; refresh_token: string };
    for (const replica of [a, b]) expect(((await (await refresh(replica, rotated.refresh_token)).json()) as { error: string }).error).toBe('invalid_grant');
    // The resource-server path of both replicas learns the revocation within the sync period.
    const deadline = Date.now() + 5000;
    let statuses: number[] = [];
    while (Date.now() < deadline) {
      statuses = await Promise.all([a, b].map(async (replica) => (await callMcp(replica, rotated.access_token)).status));
      if (statuses.every((status) => status === 401)) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(statuses).toEqual([401, 401]);
  });

  it('shares the rate limits: registrations per IP count across both replicas (429 with Retry-After)', async () => {
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 10 && !statuses.includes(429); i += 1) {
      const response = await register(i % 2 ? a : b);
      statuses.push(response.status);
      if (response.status === 429) retryAfter = response.headers.get('retry-after');
    }
    // Five per minute in all, two used above (one raw, one by the SDK client); kept apart, the replicas would allow ten.
    expect(statuses.filter((status) => status === 201).length).toBeLessThanOrEqual(4);
    expect(statuses.at(-1)).toBe(429);
    expect(Number(retryAfter)).toBeGreaterThan(0);
  });
});
