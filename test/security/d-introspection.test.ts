import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.ts';
import { validateConfig } from '../../src/config/load.ts';
import { startWarden } from '../../src/server.ts';
import { startFaultyServer } from '../helpers/jwks-server.ts';
import { claims, expectRefused, forge, post, startStack, type Stack } from './helpers.ts';

const SECRET = 'introspection-secret-d-41b7';
const INTROSPECTION = '/token/introspection';

/** The real authorization server issuing opaque tokens, checked by introspection only. */
let real: Stack;
/** The same proxy in front of a hand-made introspection endpoint, for the faults a real one will not produce. */
let faked: Stack;
let endpoint: Awaited<ReturnType<typeof startFaultyServer>>;
let answer: (form: URLSearchParams, req: IncomingMessage, res: ServerResponse) => void;
const seen: Array<{ form: URLSearchParams; authorization: string | undefined }> = [];

const json = (res: ServerResponse, body: unknown, status = 200) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
const active = (extra: Record<string, unknown> = {}) => ({ active: true, aud: faked.mcpUrl, scope: 'mcp:read', sub: 'u', exp: Math.floor(Date.now() / 1000) + 300, ...extra });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const opaque = () => `opaque-${randomUUID()}`;

beforeAll(async () => {
  process.env.WARDEN_TEST_D_SECRET = SECRET;
  endpoint = await startFaultyServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      const form = new URLSearchParams(body);
      seen.push({ form, authorization: req.headers.authorization });
      answer(form, req, res);
    });
  });
  answer = (_form, _req, res) => json(res, active());
  faked = await startStack((base) => ({
    ...base,
    authorization_servers: [
      {
        issuer: `${endpoint.url}/fake`,
        verify_jwt: false,
        introspection: { endpoint: `${endpoint.url}/introspect`, client_id: 'resource-server', client_secret: '${env:WARDEN_TEST_D_SECRET}', timeout: '300ms' },
      },
    ],
    tokens: { ...(base.tokens as object), required_scopes: ['mcp:read'], cache: { max_ttl: '5m', negative_ttl: '10s' } },
    limits: { introspections_per_client: 10, max_concurrent_introspections: 3 },
  }));
  real = await startStack(
    (base, as) => {
      process.env.WARDEN_TEST_D_REAL_SECRET = as.introspectionClient.client_secret;
      return {
        ...base,
        authorization_servers: [{ issuer: as.issuer, introspection: { client_id: as.introspectionClient.client_id, client_secret: '${env:WARDEN_TEST_D_REAL_SECRET}' } }],
        tokens: { ...(base.tokens as object), required_scopes: ['mcp:read'] },
      };
    },
    { format: 'opaque' },
  );
});
afterAll(async () => {
  await faked?.close();
  await real?.close();
  await endpoint?.close();
});

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const statusOn = async (stack: Stack, token: string) => {
  const response = await post(stack, bearer(token));
  await response.body?.cancel();
  return response.status;
};

describe('D. opaque tokens via introspection', () => {
  it('SEC-D01 active: false is 401 invalid_token, remembered briefly by the token hash', async () => {
    const token = opaque();
    const before = real.as.requestCount(INTROSPECTION);
    await expectRefused(real, () => post(real, bearer(token)), 401, 'invalid_token');
    await expectRefused(real, () => post(real, bearer(token)), 401, 'invalid_token');
    expect(real.as.requestCount(INTROSPECTION) - before).toBe(1);
  });

  it('SEC-D02 active missing or not the boolean true is never active', async () => {
    for (const value of [undefined, 'true', 1, 'yes', {}]) {
      answer = (_form, _req, res) => json(res, { ...active(), active: value });
      await expectRefused(faked, () => post(faked, bearer(opaque())), 401, 'invalid_token');
    }
  });

  it('SEC-D03 a cached active answer does not outlive the token exp', async () => {
    const token = opaque();
    // At least a second of validity whatever the sub-second clock, so both requests below fall before exp.
    const exp = Math.floor(Date.now() / 1000) + 2;
    answer = (_form, _req, res) => json(res, active({ exp }));
    expect(await statusOn(faked, token)).toBe(200);
    const before = seen.length;
    expect(await statusOn(faked, token)).toBe(200);
    expect(seen.length, 'served from the cache while valid').toBe(before);
    await sleep(exp * 1000 - Date.now() + 300);
    // The entry's TTL ended at exp (not the 5 min max_ttl): the endpoint is asked again, and its answer is past exp.
    await expectRefused(faked, () => post(faked, bearer(token)), 401, 'invalid_token');
    expect(seen.length).toBe(before + 1);
  });

  it('SEC-D04 an active token for another audience or from another issuer is refused', async () => {
    const other = await real.as.mintToken({ resource: 'http://127.0.0.1:1/other', scope: 'mcp:read' });
    await expectRefused(real, () => post(real, bearer(other)), 401, 'invalid_token');
    for (const extra of [{ aud: 'http://127.0.0.1:1/other' }, { aud: [] }, { iss: 'https://someone-else.example' }]) {
      answer = (_form, _req, res) => json(res, active(extra));
      await expectRefused(faked, () => post(faked, bearer(opaque())), 401, 'invalid_token');
    }
  });

  it('SEC-D05 a refresh token, an ID token or a DPoP-bound token is not a bearer access token', async () => {
    for (const extra of [{ token_type: 'refresh_token' }, { token_type: 'id_token' }, { token_type: 'DPoP' }, { cnf: { jkt: 'x' } }]) {
      answer = (_form, _req, res) => json(res, active(extra));
      await expectRefused(faked, () => post(faked, bearer(opaque())), 401, 'invalid_token');
    }
  });

  it('SEC-D06 every call authenticates with the configured credentials; a missing secret stops the start', async () => {
    answer = (_form, _req, res) => json(res, active());
    const before = seen.length;
    expect(await statusOn(faked, opaque())).toBe(200);
    expect(seen.length).toBe(before + 1);
    expect(seen.at(-1)!.authorization).toBe(`Basic ${Buffer.from(`resource-server:${SECRET}`).toString('base64')}`);
    expect(JSON.stringify(faked.logs)).not.toContain(SECRET);
    const config = validateConfig({
      resource: { url: 'http://127.0.0.1:1/mcp' },
      listen: { port: 0 },
      admin: { port: 0 },
      authorization_servers: [{ issuer: 'http://127.0.0.1:2', introspection: { endpoint: 'http://127.0.0.1:2/i', client_id: 'x', client_secret: '${env:WARDEN_TEST_D_UNSET}' } }],
      upstream: { url: 'http://127.0.0.1:3' },
    });
    await expect(startWarden(config, { logger: pino({ level: 'silent' }) })).rejects.toBeInstanceOf(ConfigError);
  });

  it('SEC-D08 a redirecting endpoint is not followed: 503, and the credentials go nowhere else', async () => {
    const trap = await startFaultyServer((_req, res) => json(res, active()));
    try {
      answer = (_form, _req, res) => res.writeHead(302, { location: `${trap.url}/introspect` }).end();
      await expectRefused(faked, () => post(faked, bearer(opaque())), 503);
      expect(trap.hits).toBe(0);
    } finally {
      await trap.close();
    }
  });

  it('SEC-D09 tokens are form-encoded: the endpoint gets exactly one token parameter, byte for byte', async () => {
    answer = (_form, _req, res) => json(res, active());
    for (const token of ['abc+def/ghi==', 'a.b-c_d~e+f/g=']) {
      expect(await statusOn(faked, token)).toBe(200);
      expect(seen.at(-1)!.form.getAll('token')).toEqual([token]);
    }
    await expectRefused(faked, () => post(faked, bearer('abc&token=victim')), 400, 'invalid_request');
  });

  it('SEC-D10 one new token asked by many at once is one call; a flood of random tokens is limited per client and in flight', async () => {
    await sleep(2100);
    answer = (_form, _req, res) => setTimeout(() => json(res, active()), 100);
    const token = opaque();
    const before = seen.length;
    const statuses = await Promise.all(Array.from({ length: 20 }, () => statusOn(faked, token)));
    expect(statuses).toEqual(Array(20).fill(200));
    expect(seen.length - before).toBe(1);

    answer = (_form, _req, res) => setTimeout(() => json(res, active()), 300);
    const concurrent = await Promise.all(Array.from({ length: 6 }, () => post(faked, bearer(opaque()))));
    expect(concurrent.map((response) => response.status).filter((status) => status === 503).length).toBeGreaterThan(0);
    expect(faked.logs.some((line) => line.msg === 'request' && line.reason === 'overloaded')).toBe(true);

    answer = (_form, _req, res) => json(res, active());
    await sleep(2100);
    // One client asking about new tokens faster than 10 a second (bursts of 20) soon gets 429.
    const flood: number[] = [];
    while (flood.length < 200 && !flood.includes(429)) flood.push(await statusOn(faked, opaque()));
    expect(flood.filter((status) => status === 200).length).toBeGreaterThanOrEqual(15);
    expect(flood.at(-1)).toBe(429);
    const limited = await post(faked, bearer(opaque()));
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('5');
    expect(faked.logs.findLast((line) => line.msg === 'request')).toMatchObject({ reason: 'rate_limited' });
  });

  it('SEC-D11 a JWT-shaped token that fails its signature never falls back to introspection', async () => {
    const before = real.as.requestCount(INTROSPECTION);
    const [header, payload] = (await forge(real, claims(real))).split('.');
    await expectRefused(real, () => post(real, bearer(`${header}.${payload}.${'A'.repeat(342)}`)), 401, 'invalid_token');
    expect(real.as.requestCount(INTROSPECTION)).toBe(before);
  });

  it('SEC-D11 a JWT from an unknown issuer is refused without asking any introspection endpoint', async () => {
    const before = real.as.requestCount(INTROSPECTION);
    const fakeCalls = seen.length;
    const unknown = await forge(real, claims(real, { iss: 'https://unknown-issuer.example' }));
    await expectRefused(real, () => post(real, bearer(unknown)), 401, 'invalid_token');
    await expectRefused(faked, () => post(faked, bearer(unknown)), 401, 'invalid_token');
    expect(real.as.requestCount(INTROSPECTION)).toBe(before);
    expect(seen.length).toBe(fakeCalls);
  });

  it('SEC-D07 a 400 from the endpoint is a verdict on that token (401), not an outage: it never opens the breaker', async () => {
    await sleep(1500);
    answer = (_form, _req, res) => json(res, { error: 'unsupported_token_type' }, 400);
    for (let i = 0; i < 7; i += 1) await expectRefused(faked, () => post(faked, bearer(opaque())), 401, 'invalid_token');
    answer = (_form, _req, res) => json(res, active());
    expect(await statusOn(faked, opaque())).toBe(200);
  });

  // Last: it leaves the breaker open for a few seconds.
  it('SEC-D07 5xx, timeouts, resets and HTML are 503 and never cached; repeated failures open a circuit breaker', async () => {
    await sleep(2100);
    const token = opaque();
    const faults: Array<(res: ServerResponse, req: IncomingMessage) => void> = [
      (res) => json(res, { error: 'server_error' }, 500),
      () => undefined,
      (_res, req) => req.socket.destroy(),
      (res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>login</html>'),
    ];
    for (const fault of faults) {
      answer = (_form, req, res) => fault(res, req);
      const before = seen.length;
      await expectRefused(faked, () => post(faked, bearer(token)), 503);
      expect(seen.length, 'not served from a cache').toBe(before + 1);
    }
    answer = (_form, _req, res) => json(res, { error: 'server_error' }, 500);
    await expectRefused(faked, () => post(faked, bearer(token)), 503);
    const afterFive = seen.length;
    for (let i = 0; i < 3; i += 1) await expectRefused(faked, () => post(faked, bearer(opaque())), 503);
    expect(seen.length, 'the breaker holds calls back').toBe(afterFive);
    const metrics = await (await fetch(`${faked.warden.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/mcp_warden_introspection_requests_total\{issuer="[^"]+",result="circuit_open"\} [1-9]/);
  });
});
