import type { IncomingMessage } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { SecretSource } from '../../src/config/secret-source.ts';
import { introspect, type IntrospectionResult } from '../../src/auth/introspection.ts';
import { startFaultyServer } from '../helpers/jwks-server.ts';

const servers: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

const secret = (value: string): SecretSource => ({ current: () => ({ ok: true, value }), close: () => undefined });
const now = Math.floor(Date.now() / 1000);
const good = { active: true, iss: 'https://as.example', aud: 'https://mcp.example/mcp', sub: 'u', client_id: 'c', scope: 'mcp:read mcp:write', exp: now + 60 };

async function setup(answer: unknown, authMethod: 'client_secret_basic' | 'client_secret_post' = 'client_secret_basic') {
  const seen: Array<{ headers: IncomingMessage['headers']; body: string }> = [];
  const server = await startFaultyServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      seen.push({ headers: req.headers, body });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
    });
  });
  servers.push(server);
  const results: IntrospectionResult[] = [];
  const rules = {
    issuer: 'https://as.example',
    endpoint: async () => `${server.url}/introspect`,
    clientId: 'mcp warden',
    clientSecret: secret('s3cr&t'),
    authMethod,
    timeoutMs: 1000,
    audiences: ['https://mcp.example/mcp'],
    clockToleranceSeconds: 0,
    onResult: (result: IntrospectionResult) => results.push(result),
  };
  return { seen, results, check: (token = 'tok&en=x') => introspect(token, rules) };
}

describe('introspection', () => {
  it('posts one form-encoded token with the hint and Basic client authentication (RFC 7662 §2.1)', async () => {
    const { seen, check } = await setup(good);
    const principal = await check();
    expect(principal).toMatchObject({ issuer: 'https://as.example', subject: 'u', clientId: 'c', expiresAt: now + 60 });
    expect([...principal.scopes]).toEqual(['mcp:read', 'mcp:write']);
    expect(seen[0]!.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(Object.fromEntries(new URLSearchParams(seen[0]!.body))).toEqual({ token: 'tok&en=x', token_type_hint: 'access_token' });
    expect(Buffer.from(seen[0]!.headers.authorization!.slice(6), 'base64').toString()).toBe('mcp+warden:s3cr%26t');
  });

  it('sends the client credentials in the body with client_secret_post', async () => {
    const { seen, check } = await setup(good, 'client_secret_post');
    await check();
    expect(seen[0]!.headers.authorization).toBeUndefined();
    expect(new URLSearchParams(seen[0]!.body).get('client_secret')).toBe('s3cr&t');
  });

  it.each([
    ['{"active": false}', { active: false }, 'inactive'],
    ['active as the string "true"', { ...good, active: 'true' }, 'inactive'],
    ['active as 1', { ...good, active: 1 }, 'inactive'],
    ['no active member', { ...good, active: undefined }, 'inactive'],
    ['another issuer', { ...good, iss: 'https://evil.example' }, 'wrong_issuer'],
    ['another audience', { ...good, aud: 'https://other.example/mcp' }, 'wrong_audience'],
    ['no audience', { ...good, aud: undefined }, 'wrong_audience'],
    ['an audience list without us', { ...good, aud: ['https://a.example', 7] }, 'wrong_audience'],
    ['a passed exp', { ...good, exp: now - 10 }, 'expired'],
    ['a future nbf', { ...good, nbf: now + 600 }, 'not_yet_valid'],
    ['a non-numeric exp', { ...good, exp: '9999999999' }, 'missing_claim'],
    ['a refresh token', { ...good, token_type: 'refresh_token' }, 'wrong_type'],
  ])('refuses %s as invalid_token', async (_name, answer, reason) => {
    const { check } = await setup(answer);
    await expect(check()).rejects.toMatchObject({ reason });
  });

  it('accepts an audience list that contains the resource and a token without exp', async () => {
    const { check } = await setup({ ...good, aud: ['https://a.example', 'https://mcp.example/mcp'], exp: undefined });
    await expect(check()).resolves.toMatchObject({ expiresAt: undefined });
  });

  it('reports a JSON answer that is not an object as unavailable, and counts the result', async () => {
    const { check, results } = await setup([1, 2]);
    await expect(check()).rejects.toMatchObject({ reason: 'verifier_unavailable' });
    expect(results).toEqual(['invalid_json']);
  });

  it('never puts the token in an error message', async () => {
    const server = await startFaultyServer((_req, res) => res.writeHead(500).end());
    servers.push(server);
    const error = await introspect('secret-token-value', {
      issuer: 'https://as.example',
      endpoint: async () => server.url,
      clientId: 'c',
      clientSecret: secret('s'),
      authMethod: 'client_secret_basic',
      timeoutMs: 1000,
      audiences: [],
      clockToleranceSeconds: 0,
    }).catch((caught: Error) => caught);
    expect(String((error as Error).message)).not.toContain('secret-token-value');
  });
});
