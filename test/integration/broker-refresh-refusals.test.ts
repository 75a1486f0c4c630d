import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerConsent, followAuthorizationRedirects, REDIRECT_URI } from '../../demo/oauth-client.ts';
import { pkce, startBrokerStack, type BrokerStack } from '../helpers/broker-stack.ts';
import { skipWithoutRedis, startRedis, type StartedRedis } from '../helpers/redis-server.ts';
import { INITIALIZE, MCP_HEADERS } from '../helpers/stack.ts';

const REDIS_URL_ENV = 'WARDEN_TEST_REFRESH_REFUSALS_REDIS_URL';

/**
 * Issue 20: a refresh request the broker refuses must not use up the refresh token (RFC 9700 §4.14.2:
 * rotation happens when a new token is issued), so the client's corrected retry is not taken for a
 * replay. A token that was rotated still revokes its grant when it comes back. Run against each store.
 */
const stores: Array<{ name: string; skip: boolean; start: () => Promise<{ stack: BrokerStack; stop: () => Promise<void> }> }> = [
  {
    name: 'SQLite',
    skip: false,
    start: async () => {
      const stack = await startBrokerStack();
      return { stack, stop: () => stack.close() };
    },
  },
  {
    name: 'Redis',
    skip: skipWithoutRedis,
    start: async () => {
      const redis: StartedRedis = await startRedis();
      process.env[REDIS_URL_ENV] = redis.url;
      const stack = await startBrokerStack({ store: { type: 'redis', url: `\${env:${REDIS_URL_ENV}}`, key_prefix: 'refusals' } });
      return {
        stack,
        stop: async () => {
          await stack.close();
          await redis.close();
        },
      };
    },
  },
];

for (const store of stores) {
  describe.skipIf(store.skip)(`broker refresh refusals leave the refresh token usable (${store.name} store)`, () => {
    let stack: BrokerStack;
    let stop: (() => Promise<void>) | undefined;

    beforeAll(async () => {
      ({ stack, stop } = await store.start());
    });
    afterAll(async () => {
      await stop?.();
    });

    const post = (form: Record<string, string>, headers: Record<string, string> = {}) =>
      fetch(`${stack.issuer}/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(form) });

    interface Client {
      readonly id: string;
      /** Client authentication for a token request: client_id for a public client, Basic for a confidential one. */
      readonly auth: (secret?: string) => { form: Record<string, string>; headers: Record<string, string> };
    }

    const register = async (method: 'none' | 'client_secret_basic' = 'none'): Promise<Client> => {
      const response = await fetch(`${stack.issuer}/oauth/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ client_name: 'refusals', redirect_uris: [REDIRECT_URI], grant_types: ['authorization_code', 'refresh_token'], token_endpoint_auth_method: method }),
      });
      expect(response.status).toBe(201);
      const body = (await response.json()) as { client_id: string; client_secret?: string };
      const basic = (secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(body.client_id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
      return {
        id: body.client_id,
        auth: (secret = body.client_secret): { form: Record<string, string>; headers: Record<string, string> } =>
          method === 'none' ? { form: { client_id: body.client_id }, headers: {} } : { form: {}, headers: { authorization: basic(secret!) } },
      };
    };

    /** A grant for `mcp:read` on the MCP resource, through the whole browser flow. */
    const tokensFor = async (client: Client) => {
      const { verifier, challenge } = pkce();
      const url = new URL(`${stack.issuer}/oauth/authorize`);
      const search = { response_type: 'code', client_id: client.id, redirect_uri: REDIRECT_URI, code_challenge: challenge, code_challenge_method: 'S256', state: 'st', resource: stack.mcpUrl, scope: 'mcp:read' };
      for (const [name, value] of Object.entries(search)) url.searchParams.set(name, value);
      const code = await followAuthorizationRedirects(url, REDIRECT_URI, { cookies: new Map(), onPage: answerConsent('approve') });
      const { form, headers } = client.auth();
      const response = await post({ grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: REDIRECT_URI, resource: stack.mcpUrl, ...form }, headers);
      expect(response.status).toBe(200);
      return (await response.json()) as { access_token: string; refresh_token: string };
    };

    const refresh = async (client: Client, refreshToken: string, extra: Record<string, string> = {}, secret?: string) => {
      const { form, headers } = client.auth(secret);
      const response = await post({ grant_type: 'refresh_token', refresh_token: refreshToken, resource: stack.mcpUrl, ...form, ...extra }, headers);
      return { status: response.status, body: (await response.json()) as { error?: string; access_token?: string; refresh_token?: string; scope?: string } };
    };

    const callMcp = async (token: string) => (await fetch(stack.mcpUrl, { method: 'POST', headers: { ...MCP_HEADERS, authorization: `Bearer ${token}` }, body: INITIALIZE })).status;

    /** After a refusal: the grant is not revoked, and the same refresh token still refreshes, once. */
    const expectStillUsable = async (client: Client, tokens: { access_token: string; refresh_token: string }) => {
      expect(await callMcp(tokens.access_token)).toBe(200);
      const retry = await refresh(client, tokens.refresh_token);
      expect(retry.status).toBe(200);
      expect(retry.body.refresh_token).toBeTruthy();
      expect(retry.body.refresh_token).not.toBe(tokens.refresh_token);
      expect(decodeJwt(retry.body.access_token!)).toMatchObject({ client_id: client.id, aud: stack.mcpUrl, scope: 'mcp:read' });
      expect(await callMcp(retry.body.access_token!)).toBe(200);
      return retry.body as { access_token: string; refresh_token: string };
    };

    it('a refresh asking for a scope beyond the grant gets invalid_scope, and the same refresh token then refreshes', async () => {
      const client = await register();
      const tokens = await tokensFor(client);
      const wider = await refresh(client, tokens.refresh_token, { scope: 'mcp:read mcp:write' });
      expect(wider.status).toBe(400);
      expect(wider.body.error).toBe('invalid_scope');
      await expectStillUsable(client, tokens);
    });

    it('a refresh for a resource the grant was not for gets invalid_target, and the same refresh token then refreshes', async () => {
      const client = await register();
      const tokens = await tokensFor(client);
      const elsewhere = await refresh(client, tokens.refresh_token, { resource: 'https://other.example/mcp' });
      expect(elsewhere.status).toBe(400);
      expect(elsewhere.body.error).toBe('invalid_target');
      await expectStillUsable(client, tokens);
    });

    it("a public client presenting another public client's refresh token gets invalid_grant, and the owner then refreshes with it", async () => {
      const owner = await register();
      const other = await register();
      const tokens = await tokensFor(owner);
      const stolen = await refresh(other, tokens.refresh_token);
      expect(stolen.status).toBe(400);
      expect(stolen.body.error).toBe('invalid_grant');
      await expectStillUsable(owner, tokens);
    });

    it("a confidential client presenting another confidential client's refresh token with its own credentials gets invalid_grant, and the owner then refreshes", async () => {
      const owner = await register('client_secret_basic');
      const other = await register('client_secret_basic');
      const tokens = await tokensFor(owner);
      const stolen = await refresh(other, tokens.refresh_token);
      expect(stolen.status).toBe(400);
      expect(stolen.body.error).toBe('invalid_grant');
      await expectStillUsable(owner, tokens);
    });

    it('a confidential client with a wrong secret gets invalid_client (401), and the same refresh token then refreshes', async () => {
      const client = await register('client_secret_basic');
      const tokens = await tokensFor(client);
      const wrong = await refresh(client, tokens.refresh_token, {}, 'not-the-secret');
      expect(wrong.status).toBe(401);
      expect(wrong.body.error).toBe('invalid_client');
      // A public client id named in the form beside the owner's Basic credentials: refused the same way.
      const mixed = await refresh(client, tokens.refresh_token, { client_id: (await register()).id });
      expect(mixed.status).toBe(401);
      expect(mixed.body.error).toBe('invalid_client');
      await expectStillUsable(client, tokens);
    });

    it('refusals in a row, then the corrected retry: each refusal has its own error and the retry succeeds', async () => {
      const client = await register();
      const other = await register();
      const tokens = await tokensFor(client);
      expect((await refresh(client, tokens.refresh_token, { scope: 'mcp:write' })).body.error).toBe('invalid_scope');
      expect((await refresh(client, tokens.refresh_token, { resource: `${stack.mcpUrl}/` })).body.error).toBe('invalid_target');
      expect((await refresh(other, tokens.refresh_token)).body.error).toBe('invalid_grant');
      expect((await refresh(client, tokens.refresh_token, { scope: 'mcp:read mcp:write' })).body.error).toBe('invalid_scope');
      await expectStillUsable(client, tokens);
    });

    it('a refresh token rotated after a refusal still revokes the whole grant when it is presented again', async () => {
      const client = await register();
      const tokens = await tokensFor(client);
      expect((await refresh(client, tokens.refresh_token, { scope: 'mcp:read mcp:write' })).body.error).toBe('invalid_scope');
      const rotated = await expectStillUsable(client, tokens);
      const replay = await refresh(client, tokens.refresh_token);
      expect(replay.status).toBe(400);
      expect(replay.body.error).toBe('invalid_grant');
      // The family is gone: the newest refresh token and the access tokens of the grant.
      expect((await refresh(client, rotated.refresh_token)).body.error).toBe('invalid_grant');
      expect(await callMcp(rotated.access_token)).toBe(401);
      expect(await callMcp(tokens.access_token)).toBe(401);
    });

    it('a rotated refresh token presented again with a request that would be refused anyway still revokes the grant', async () => {
      const client = await register();
      const tokens = await tokensFor(client);
      const rotated = await expectStillUsable(client, tokens);
      const replay = await refresh(client, tokens.refresh_token, { scope: 'mcp:read mcp:write', resource: 'https://other.example/mcp' });
      expect(replay.status).toBe(400);
      expect(replay.body.error).toBe('invalid_grant');
      expect((await refresh(client, rotated.refresh_token)).body.error).toBe('invalid_grant');
      expect(await callMcp(rotated.access_token)).toBe(401);
    });

    it('narrowing the scope is no refusal: it issues, rotates, and the old token is then a replay', async () => {
      const client = await register();
      const tokens = await tokensFor(client);
      const narrowed = await refresh(client, tokens.refresh_token, { scope: 'mcp:read' });
      expect(narrowed.status).toBe(200);
      expect(narrowed.body.scope).toBe('mcp:read');
      expect((await refresh(client, tokens.refresh_token)).body.error).toBe('invalid_grant');
      expect((await refresh(client, narrowed.body.refresh_token!)).body.error).toBe('invalid_grant');
    });

    it('answers exactly one of 10 concurrent valid refreshes of one token with new tokens', async () => {
      const client = await register();
      const tokens = await tokensFor(client);
      const results = await Promise.all(Array.from({ length: 10 }, () => refresh(client, tokens.refresh_token)));
      expect(results.filter((result) => result.status === 200)).toHaveLength(1);
      expect(results.filter((result) => result.status === 400 && result.body.error === 'invalid_grant')).toHaveLength(9);
    });
  });
}
