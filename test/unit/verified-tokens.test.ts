import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeySet } from '../../src/auth/key-set.ts';
import type { Principal } from '../../src/auth/principal.ts';
import { VerifiedTokens } from '../../src/auth/verified-tokens.ts';
import { startFaultyServer } from '../helpers/jwks-server.ts';

let jwks: Awaited<ReturnType<typeof startFaultyServer>>;
let published: JWK[] = [];
let keyA: JWK;
let keyB: JWK;
let keyAReplaced: JWK;
let clock = 1_000_000_000_000;
const now = () => clock;

beforeAll(async () => {
  const publicJwk = async (kid: string) => ({ ...(await exportJWK((await generateKeyPair('ES256', { extractable: true })).publicKey)), kid, alg: 'ES256' });
  [keyA, keyB, keyAReplaced] = await Promise.all([publicJwk('a'), publicJwk('b'), publicJwk('a')]);
  jwks = await startFaultyServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: published })));
});
afterAll(async () => {
  await jwks?.close();
});

async function freshKeySet(keys: JWK[]): Promise<KeySet> {
  published = keys;
  const keySet = new KeySet({ jwksUri: async () => `${jwks.url}/jwks`, timeoutMs: 1000, cooldownMs: 0, refreshMs: 60_000, maxStaleMs: 3_600_000, now });
  await keySet.refresh();
  return keySet;
}

const principal = (expiresInSeconds: number): Principal => ({
  issuer: 'https://as.example',
  subject: 'u',
  clientId: 'c',
  scopes: new Set(['mcp:read']),
  expiresAt: Math.floor(clock / 1000) + expiresInSeconds,
  claims: {},
});

describe('the verified-token cache', () => {
  it('serves a verified token until its exp and never after', async () => {
    const keySet = await freshKeySet([keyA]);
    const cache = new VerifiedTokens({ maxEntries: 10, now });
    cache.set('token-1', principal(60), 'a', keySet);
    expect(cache.get('token-1')?.subject).toBe('u');
    clock += 59_000;
    expect(cache.get('token-1')).toBeDefined();
    clock += 1_000;
    expect(cache.get('token-1')).toBeUndefined();
  });

  it('drops an entry once its key is removed, or replaced under the same kid, at the next refresh', async () => {
    const keySet = await freshKeySet([keyA, keyB]);
    const cache = new VerifiedTokens({ maxEntries: 10, now });
    cache.set('signed-by-a', principal(600), 'a', keySet);
    cache.set('signed-by-b', principal(600), 'b', keySet);
    published = [keyB];
    await keySet.refresh();
    expect(cache.get('signed-by-a')).toBeUndefined();
    expect(cache.get('signed-by-b')).toBeDefined();

    cache.set('signed-by-b', principal(600), 'b', keySet);
    published = [keyAReplaced, keyB];
    await keySet.refresh();
    expect(cache.get('signed-by-b')).toBeDefined();
    cache.set('signed-by-new-a', principal(600), 'a', keySet);
    published = [keyA, keyB];
    await keySet.refresh();
    expect(cache.get('signed-by-new-a'), 'same kid, different key').toBeUndefined();
  });

  it('trusts a token without kid only until the key set changes, and nothing once the keys are past max_stale', async () => {
    const keySet = await freshKeySet([keyA]);
    const cache = new VerifiedTokens({ maxEntries: 10, now });
    cache.set('no-kid', principal(600), undefined, keySet);
    expect(cache.get('no-kid')).toBeDefined();
    await keySet.refresh();
    expect(cache.get('no-kid')).toBeUndefined();

    cache.set('with-kid', principal(7200), 'a', keySet);
    clock += 3_600_001;
    expect(cache.get('with-kid')).toBeUndefined();
  });

  it('is bounded, keyed by a hash, and does not keep tokens that are already expired', async () => {
    const keySet = await freshKeySet([keyA]);
    const cache = new VerifiedTokens({ maxEntries: 5, now });
    for (let i = 0; i < 50; i += 1) cache.set(`token-${i}`, principal(600), 'a', keySet);
    expect(cache.size).toBe(5);
    const small = new VerifiedTokens({ maxEntries: 5, now });
    small.set('expired', principal(-1), 'a', keySet);
    expect(small.size).toBe(0);
  });
});
