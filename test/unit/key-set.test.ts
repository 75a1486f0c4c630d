import { generateKeyPairSync } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, jwtVerify, type JWK } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { AuthFailure } from '../../src/auth/failure.ts';
import { KeySet, type KeyFetchResult } from '../../src/auth/key-set.ts';
import { startFaultyServer } from '../helpers/jwks-server.ts';

async function signingKey(kid: string) {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } as JWK };
}

const sign = (key: Awaited<ReturnType<typeof signingKey>>) =>
  new SignJWT({ sub: 'u' }).setProtectedHeader({ alg: 'ES256', kid: key.kid }).setExpirationTime('5m').sign(key.privateKey);

const servers: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

async function setup(keys: JWK[], options: { now?: () => number; timeoutMs?: number; maxStaleMs?: number } = {}) {
  let body = JSON.stringify({ keys });
  const server = await startFaultyServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(body);
  });
  servers.push(server);
  const fetches: KeyFetchResult[] = [];
  const keySet = new KeySet({
    jwksUri: async () => `${server.url}/jwks`,
    timeoutMs: options.timeoutMs ?? 2000,
    cooldownMs: 30_000,
    refreshMs: 600_000,
    maxStaleMs: options.maxStaleMs ?? 3_600_000,
    onFetch: (result) => fetches.push(result),
    ...(options.now ? { now: options.now } : {}),
  });
  return { server, keySet, fetches, setKeys: (next: JWK[]) => (body = JSON.stringify({ keys: next })) };
}

const verifyWith = (keySet: KeySet, token: string) => jwtVerify(token, keySet.getKey, { algorithms: ['ES256'] });

describe('KeySet', () => {
  it('fetches once for many concurrent first verifications', async () => {
    const key = await signingKey('a');
    const { server, keySet } = await setup([key.jwk]);
    const token = await sign(key);
    await Promise.all(Array.from({ length: 20 }, () => verifyWith(keySet, token)));
    expect(server.hits).toBe(1);
  });

  it('refetches for an unknown kid once per cooldown, however many tokens name one', async () => {
    let now = 1_000_000;
    const known = await signingKey('known');
    const rotated = await signingKey('rotated');
    const { server, keySet, setKeys } = await setup([known.jwk], { now: () => now });
    await verifyWith(keySet, await sign(known));
    const stranger = await sign(await signingKey('stranger'));
    now += 31_000;
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => verifyWith(keySet, stranger)));
    expect(results.every((result) => result.status === 'rejected' && (result.reason as AuthFailure).reason === 'unknown_key')).toBe(true);
    expect(server.hits).toBe(2);
    // Rotation: a new kid within the cooldown is refused; after it, the refetch finds the key.
    setKeys([known.jwk, rotated.jwk]);
    await expect(verifyWith(keySet, await sign(rotated))).rejects.toMatchObject({ reason: 'unknown_key' });
    now += 31_000;
    await expect(verifyWith(keySet, await sign(rotated))).resolves.toBeDefined();
    expect(server.hits).toBe(3);
  });

  it('keeps the last good keys when a refresh fails', async () => {
    let now = 1_000_000;
    const key = await signingKey('a');
    const { server, keySet, fetches } = await setup([key.jwk], { now: () => now });
    const token = await sign(key);
    await verifyWith(keySet, token);
    server.respondWith((_req, res) => {
      res.writeHead(500);
      res.end('down');
    });
    now += 700_000;
    await verifyWith(keySet, token);
    await keySet.refresh().catch(() => undefined);
    await expect(verifyWith(keySet, token)).resolves.toBeDefined();
    expect(fetches).toContain('status');
    expect(keySet.ready).toBe(true);
  });

  it.each([
    ['a 500', (res: import('node:http').ServerResponse) => res.writeHead(500).end()],
    ['a redirect (not followed)', (res: import('node:http').ServerResponse) => res.writeHead(302, { location: 'http://127.0.0.1:1/jwks' }).end()],
    ['HTML', (res: import('node:http').ServerResponse) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>')],
    ['{"keys":"x"}', (res: import('node:http').ServerResponse) => res.writeHead(200).end('{"keys":"x"}')],
    ['an empty key list', (res: import('node:http').ServerResponse) => res.writeHead(200).end('{"keys":[]}')],
    ['a 1 MB body', (res: import('node:http').ServerResponse) => res.writeHead(200).end(`{"keys":[],"pad":"${'x'.repeat(1_000_000)}"}`)],
  ])('with no keys yet, %s makes verification unavailable', async (_name, respond) => {
    const key = await signingKey('a');
    const { server, keySet } = await setup([key.jwk]);
    server.respondWith((_req, res) => respond(res));
    await expect(verifyWith(keySet, await sign(key))).rejects.toMatchObject({ reason: 'verifier_unavailable' });
    expect(keySet.ready).toBe(false);
  });

  it('gives up on a JWKS endpoint that hangs after the timeout', async () => {
    const key = await signingKey('a');
    const { server, keySet } = await setup([key.jwk], { timeoutMs: 200 });
    server.respondWith(() => undefined);
    const started = performance.now();
    await expect(verifyWith(keySet, await sign(key))).rejects.toMatchObject({ reason: 'verifier_unavailable' });
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('skips RSA keys under 2048 bits and private keys', async () => {
    const weak = { ...(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' }) as JWK), kid: 'weak' };
    const leaked = { ...(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }) as JWK), kid: 'private' };
    const { keySet } = await setup([weak, leaked]);
    await expect(keySet.refresh()).rejects.toThrow(/no usable public signature keys/);
  });
});
