import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AuthFailure } from '../../src/auth/failure.ts';
import { IntrospectionCache } from '../../src/auth/introspection-cache.ts';
import type { Principal } from '../../src/auth/principal.ts';

beforeEach(() => {
  vi.useFakeTimers({ now: 1_800_000_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

const principal = (expiresInSeconds: number | undefined): Principal => ({
  issuer: 'https://as.example',
  subject: 'u',
  clientId: 'c',
  scopes: new Set(['mcp:read']),
  expiresAt: expiresInSeconds === undefined ? undefined : Date.now() / 1000 + expiresInSeconds,
  claims: { sub: 'u' },
});

function cacheWith(introspect: (token: string) => Promise<Principal>, options: { maxEntries?: number } = {}) {
  const calls: string[] = [];
  const cache = new IntrospectionCache({
    maxEntries: options.maxEntries ?? 100,
    maxTtlMs: 60_000,
    negativeTtlMs: 5_000,
    clockToleranceSeconds: 0,
    introspect: async (token) => {
      calls.push(token);
      return introspect(token);
    },
    now: () => Date.now(),
  });
  return { cache, calls };
}

describe('introspection cache', () => {
  it('keeps an active token until its exp when that comes before max_ttl, and not a moment longer', async () => {
    const { cache, calls } = cacheWith(async () => principal(2));
    await cache.verify('t');
    await vi.advanceTimersByTimeAsync(1_900);
    await cache.verify('t');
    expect(calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(200);
    expect(cache.size).toBe(0);
  });

  it('keeps an active token without exp for max_ttl only', async () => {
    const { cache, calls } = cacheWith(async () => principal(undefined));
    await cache.verify('t');
    await vi.advanceTimersByTimeAsync(59_000);
    await cache.verify('t');
    await vi.advanceTimersByTimeAsync(1_100);
    expect(cache.size).toBe(0);
    await cache.verify('t');
    expect(calls).toHaveLength(2);
  });

  it('keeps an inactive verdict for negative_ttl', async () => {
    const { cache, calls } = cacheWith(async () => {
      throw new AuthFailure('inactive');
    });
    await expect(cache.verify('t')).rejects.toMatchObject({ reason: 'inactive' });
    await expect(cache.verify('t')).rejects.toMatchObject({ reason: 'inactive' });
    expect(calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(5_100);
    await expect(cache.verify('t')).rejects.toMatchObject({ reason: 'inactive' });
    expect(calls).toHaveLength(2);
  });

  it('does not cache an outage', async () => {
    let down = true;
    const { cache, calls } = cacheWith(async () => {
      if (down) throw new AuthFailure('verifier_unavailable');
      return principal(60);
    });
    await expect(cache.verify('t')).rejects.toMatchObject({ reason: 'verifier_unavailable' });
    down = false;
    await expect(cache.verify('t')).resolves.toMatchObject({ subject: 'u' });
    expect(calls).toHaveLength(2);
  });

  it('shares one introspection among concurrent lookups of one token', async () => {
    let release: (value: Principal) => void = () => undefined;
    const { cache, calls } = cacheWith(() => new Promise((resolve) => (release = resolve)));
    const lookups = Array.from({ length: 100 }, () => cache.verify('t'));
    release(principal(60));
    await Promise.all(lookups);
    expect(calls).toHaveLength(1);
  });

  it('never holds more than max_entries', async () => {
    const { cache } = cacheWith(async () => principal(60), { maxEntries: 10 });
    for (let i = 0; i < 50; i += 1) await cache.verify(`token-${i}`);
    expect(cache.size).toBe(10);
  });

  it('keys entries by the SHA-256 of the token and keeps no raw token', async () => {
    const { cache } = cacheWith(async () => principal(60));
    const token = 'raw-opaque-token-value';
    await cache.verify(token);
    const entries = cache.entries();
    expect(entries.map(([key]) => key)).toEqual([createHash('sha256').update(token).digest('base64url')]);
    expect(JSON.stringify(entries, (_key, value: unknown) => (value instanceof Set ? [...value] : value))).not.toContain(token);
  });
});
