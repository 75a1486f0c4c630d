import { pino } from 'pino';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { discoverIssuerMetadata } from '../../src/auth/discovery.ts';
import { validateConfig } from '../../src/config/load.ts';
import { startWarden, type Warden } from '../../src/server.ts';
import { startFaultyServer } from '../helpers/jwks-server.ts';
import { waitFor } from '../helpers/stack.ts';
import { claims, expectRefused, keyPair, post, startKeyedIssuer, startStack, type KeyedIssuer, type Stack } from './helpers.ts';

/** Short key timings so that cooldowns, refreshes and staleness play out within a test. */
const JWKS = { timeout: '400ms', cooldown: '150ms', refresh: '300ms', max_stale: '1200ms' };

let stack: Stack;
let keyed: KeyedIssuer;
let first: Awaited<ReturnType<typeof keyPair>>;

beforeAll(async () => {
  first = await keyPair('ES256', 'first');
  keyed = await startKeyedIssuer([first.publicJwk]);
  stack = await startStack((base) => ({
    ...base,
    authorization_servers: [...(base.authorization_servers as object[]), { issuer: keyed.issuer, jwks_uri: keyed.jwksUri, algorithms: ['ES256'] }],
    tokens: { ...(base.tokens as object), jwks: JWKS },
  }));
});
afterAll(async () => {
  await stack?.close();
  await keyed?.close();
});

const sign = (pair: Awaited<ReturnType<typeof keyPair>>, header: Record<string, unknown> = { kid: pair.kid }) =>
  new SignJWT({ ...claims(stack), iss: keyed.issuer }).setProtectedHeader({ alg: pair.alg, typ: 'at+jwt', ...header }).sign(pair.privateKey);
const statusWith = async (token: string) => {
  const response = await post(stack, { authorization: `Bearer ${token}` });
  await response.body?.cancel();
  return response.status;
};
const metric = async (pattern: RegExp) => Number(pattern.exec(await (await fetch(`${stack.warden.adminUrl}/metrics`)).text())?.[1] ?? 0);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A warden whose only issuer has no reachable keys: it must start, answer 503 and stay unready. */
async function keylessWarden(jwksUri: string): Promise<Warden> {
  const config = validateConfig({
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    resource: { url: 'http://127.0.0.1:1/mcp' },
    authorization_servers: [{ issuer: 'http://127.0.0.1:2/keyless', jwks_uri: jwksUri, algorithms: ['ES256'] }],
    tokens: { jwks: JWKS },
    upstream: { url: stack.mcp.origin },
    lifecycle: { shutdown_grace: '100ms' },
  });
  return startWarden(config, { logger: pino({ level: 'silent' }) });
}

async function expectUnavailable(warden: Warden, token: string) {
  const before = stack.mcp.requests.length;
  const response = await fetch(`${warden.url}/mcp`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}' });
  expect(response.status).toBe(503);
  expect(response.headers.get('retry-after')).toBe('5');
  expect(response.headers.get('www-authenticate')).toBeNull();
  expect(stack.mcp.requests.length).toBe(before);
  expect((await fetch(`${warden.adminUrl}/readyz`)).status).toBe(503);
}

describe('C. JWKS fetching, caching and rotation', () => {
  it('SEC-C01 keys unreachable with none cached: 503 (not 401, not a pass-through), and not ready', async () => {
    const warden = await keylessWarden('http://127.0.0.1:1/jwks');
    try {
      const token = await new SignJWT({ ...claims(stack), iss: 'http://127.0.0.1:2/keyless' }).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'first' }).sign(first.privateKey);
      await expectUnavailable(warden, token);
    } finally {
      await warden.shutdown();
    }
  });

  it('SEC-C02 a 500 with no cache is 503; with cached keys they keep serving, counted, until max_stale, then 503 and not ready; recovery needs no restart', async () => {
    const failing = await startFaultyServer((_req, res) => res.writeHead(500).end());
    const warden = await keylessWarden(`${failing.url}/jwks`);
    try {
      const token = await new SignJWT({ ...claims(stack), iss: 'http://127.0.0.1:2/keyless' }).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'first' }).sign(first.privateKey);
      await expectUnavailable(warden, token);
    } finally {
      await warden.shutdown();
      await failing.close();
    }

    const token = await sign(first);
    expect(await statusWith(token)).toBe(200);
    const failuresBefore = await metric(new RegExp(`mcp_warden_jwks_fetches_total\\{issuer="${keyed.issuer}",result="status"\\} (\\d+)`));
    const fetchesBefore = keyed.fetches;
    keyed.answerWith((res) => res.writeHead(500).end());
    await waitFor(() => keyed.fetches > fetchesBefore, 'a refresh that fails', 3000);
    expect(await statusWith(token)).toBe(200);
    expect(stack.warden.readiness.ready).toBe(true);
    await waitFor(() => !stack.warden.readiness.ready, 'keys past max_stale', 4000);
    expect(await metric(new RegExp(`mcp_warden_jwks_fetches_total\\{issuer="${keyed.issuer}",result="status"\\} (\\d+)`))).toBeGreaterThan(failuresBefore);
    await expectRefused(stack, () => post(stack, { authorization: `Bearer ${token}` }), 503);
    expect((await fetch(`${stack.warden.adminUrl}/readyz`)).status).toBe(503);

    keyed.answerWith(undefined);
    await waitFor(() => stack.warden.readiness.ready, 'keys fetched again', 4000);
    expect((await fetch(`${stack.warden.adminUrl}/readyz`)).status).toBe(200);
    expect(await statusWith(token)).toBe(200);
  });

  it('SEC-C03 a hanging JWKS times out into 503, and concurrent requests share one fetch', async () => {
    const hanging = await startFaultyServer(() => undefined);
    const warden = await keylessWarden(`${hanging.url}/jwks`);
    try {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const hitsBefore = hanging.hits;
      const token = await new SignJWT({ ...claims(stack), iss: 'http://127.0.0.1:2/keyless' }).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'first' }).sign(first.privateKey);
      const started = performance.now();
      const statuses = await Promise.all(
        Array.from({ length: 10 }, async () => {
          const response = await fetch(`${warden.url}/mcp`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}' });
          return response.status;
        }),
      );
      expect(statuses).toEqual(Array(10).fill(503));
      expect(performance.now() - started).toBeLessThan(2000);
      expect(hanging.hits - hitsBefore).toBeLessThanOrEqual(1);
    } finally {
      await warden.shutdown();
      await hanging.close();
    }
  });

  it('SEC-C04 garbage JWKS answers (HTML, bad keys, unsupported kty, empty, 20 MB) are rejected and the last good keys kept', async () => {
    const token = await sign(first);
    const huge = `{"keys":[${'{"kty":"EC"},'.repeat(1_700_000)}{}]}`;
    for (const body of ['<html>oops</html>', '{"keys":"x"}', '{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}', '{"keys":[]}', huge]) {
      const before = keyed.fetches;
      keyed.answerWith((res) => res.writeHead(200, { 'content-type': 'application/json' }).end(body));
      await waitFor(() => keyed.fetches > before, 'a refresh that gets the garbage', 3000);
      await sleep(50);
      expect(await statusWith(token), body.slice(0, 20)).toBe(200);
      // Good keys again before the next garbage, so that max_stale (1.2 s here) is never reached.
      const garbageFetches = keyed.fetches;
      keyed.answerWith(undefined);
      await waitFor(() => keyed.fetches > garbageFetches, 'a refresh that gets good keys again', 3000);
      await sleep(50);
    }
    expect(await metric(new RegExp(`mcp_warden_jwks_fetches_total\\{issuer="${keyed.issuer}",result="invalid_jwks"\\} (\\d+)`))).toBeGreaterThan(0);
    expect(await metric(new RegExp(`mcp_warden_jwks_fetches_total\\{issuer="${keyed.issuer}",result="too_large"\\} (\\d+)`))).toBeGreaterThan(0);
    keyed.answerWith(undefined);
    await sleep(350);
  });

  it('SEC-C05 a JWKS redirect is not followed', async () => {
    const trap = await startFaultyServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"keys":[]}'));
    try {
      keyed.answerWith((res) => res.writeHead(302, { location: `${trap.url}/jwks` }).end());
      await sleep(600);
      expect(trap.hits).toBe(0);
      expect(await metric(new RegExp(`mcp_warden_jwks_fetches_total\\{issuer="${keyed.issuer}",result="status"\\} (\\d+)`))).toBeGreaterThan(0);
    } finally {
      keyed.answerWith(undefined);
      await trap.close();
      await sleep(350);
    }
  });

  it('SEC-C06 a new kid triggers a refetch and is accepted; once the old key is gone, its tokens are refused', async () => {
    const second = await keyPair('ES256', 'second');
    keyed.setKeys([first.publicJwk, second.publicJwk]);
    // Accepted as soon as a fetch is allowed again: at the latest one cooldown (150 ms here) after the last one.
    const newKid = await sign(second);
    let status = 0;
    for (let tries = 0; tries < 10 && status !== 200; tries += 1) {
      await sleep(200);
      status = await statusWith(newKid);
    }
    expect(status).toBe(200);
    // Verified once, then served from the verified-token cache, until its key goes away.
    const underFirst = await sign(first);
    expect(await statusWith(underFirst)).toBe(200);
    expect(await statusWith(underFirst)).toBe(200);
    keyed.setKeys([second.publicJwk]);
    await sleep(700);
    expect(await statusWith(underFirst)).toBe(401);
    expect(await statusWith(await sign(first))).toBe(401);
    expect(await statusWith(await sign(second))).toBe(200);
    keyed.setKeys([first.publicJwk]);
    await sleep(700);
  });

  it('SEC-C07 a token without kid that several keys match is refused, keys are not tried in turn', async () => {
    const twin = await keyPair('ES256', 'twin');
    keyed.setKeys([first.publicJwk, twin.publicJwk]);
    await sleep(700);
    const token = await sign(first, {});
    await expectRefused(stack, () => post(stack, { authorization: `Bearer ${token}` }), 401, 'invalid_token');
    keyed.setKeys([first.publicJwk]);
    await sleep(700);
  });

  it('SEC-C08 plain-http issuer, JWKS or introspection URLs off loopback fail the config; a discovery issuer mismatch is an error', async () => {
    for (const server of [{ issuer: 'http://as.example' }, { issuer: 'https://as.example', jwks_uri: 'http://as.example/jwks' }, { issuer: 'https://as.example', introspection: { endpoint: 'http://as.example/i', client_id: 'x', client_secret: '${env:HOME}' } }]) {
      expect(() => validateConfig({ resource: { url: 'https://r.example/mcp' }, authorization_servers: [server], upstream: { url: 'http://127.0.0.1:1' } }), JSON.stringify(server)).toThrow();
    }
    const liar = await startFaultyServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ issuer: 'http://127.0.0.1:9/someone-else', jwks_uri: 'http://127.0.0.1:9/jwks' })));
    try {
      await expect(discoverIssuerMetadata(liar.url, { timeoutMs: 1000, maxBytes: 65536 })).rejects.toThrow(/issuer/);
    } finally {
      await liar.close();
    }
  });
});
