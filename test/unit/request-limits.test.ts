import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Principal } from '../../src/auth/principal.ts';
import { validateConfig } from '../../src/config/load.ts';
import { MemoryBuckets, waitSeconds, type Draw } from '../../src/limits/bucket-store.ts';
import type { Verdict } from '../../src/limits/request-limiter.ts';
import { RequestLimits } from '../../src/limits/request-limits.ts';
import { secondsUntilToken, TokenBuckets } from '../../src/limits/token-buckets.ts';

const rate = { limit: 4, windowMs: 2_000 };

describe('token buckets', () => {
  it('start full, so a burst of the limit passes at once and the next request finds none', () => {
    let now = 0;
    const buckets = new TokenBuckets({ now: () => now });
    for (let i = 0; i < 4; i += 1) buckets.refilled('k', rate).tokens -= 1;
    expect(buckets.refilled('k', rate).tokens).toBe(0);
    now = 499;
    expect(buckets.refilled('k', rate).tokens).toBeLessThan(1);
  });

  it('refill evenly, one token every window / limit, and never past the limit', () => {
    let now = 0;
    const buckets = new TokenBuckets({ now: () => now });
    for (let i = 0; i < 4; i += 1) buckets.refilled('k', rate).tokens -= 1;
    now = 500;
    expect(buckets.refilled('k', rate).tokens).toBeCloseTo(1);
    now = 1_000;
    expect(buckets.refilled('k', rate).tokens).toBeCloseTo(2);
    now = 60_000;
    expect(buckets.refilled('k', rate).tokens).toBe(4);
  });

  it('say how many whole seconds until the next token, rounded up, and 0 while one is left', () => {
    expect(secondsUntilToken(1, rate)).toBe(0);
    expect(secondsUntilToken(0, rate)).toBe(1);
    expect(secondsUntilToken(0, { limit: 1, windowMs: 60_000 })).toBe(60);
    expect(secondsUntilToken(0.5, { limit: 1, windowMs: 60_000 })).toBe(30);
    expect(secondsUntilToken(0.99, { limit: 1, windowMs: 60_000 })).toBe(1);
  });

  it('keep at most maxKeys buckets; an evicted key comes back full', () => {
    const buckets = new TokenBuckets({ maxKeys: 2, now: () => 0 });
    buckets.refilled('a', rate).tokens = 0;
    buckets.refilled('b', rate);
    buckets.refilled('c', rate);
    expect(buckets.refilled('a', rate).tokens).toBe(4);
  });
});

describe('memory bucket store', () => {
  const draws: Draw[] = [
    { bucket: 'requests:principal', key: 'alice', rate: { limit: 10, windowMs: 60_000 } },
    { bucket: 'requests:client', key: 'app', rate: { limit: 1, windowMs: 60_000 } },
  ];

  it('allows only when every bucket has a token, and then takes one from each', () => {
    const store = new MemoryBuckets({ now: () => 0 });
    expect(store.take(draws)).toEqual({ allowed: true, levels: [9, 0] });
    const refused = store.take(draws);
    expect(refused).toEqual({ allowed: false, levels: [9, 0] });
    expect(waitSeconds(draws, refused)).toBe(60);
  });

  it('keeps tables apart: the same key in another table is another bucket', () => {
    const store = new MemoryBuckets({ now: () => 0 });
    store.take([{ bucket: 'requests:client', key: 'x', rate: { limit: 1, windowMs: 1_000 } }]);
    expect(store.take([{ bucket: 'requests:ip', key: 'x', rate: { limit: 1, windowMs: 1_000 } }]).allowed).toBe(true);
  });
});

describe('the request limiter', () => {
  const principal = (subject: string, clientId?: string): Principal => ({ issuer: 'https://idp.example', subject, clientId, scopes: new Set(), expiresAt: undefined, claims: {} });
  const configOf = (limits: Record<string, unknown>) =>
    validateConfig({ resource: { url: 'https://mcp.example.com/mcp' }, authorization_servers: [{ issuer: 'https://idp.example' }], upstream: { url: 'http://127.0.0.1:3000' }, limits });
  const limitsOf = () => new RequestLimits({ registry: new Registry(), logger: pino({ level: 'silent' }) });
  const limiterOf = (limits: Record<string, unknown>) => limitsOf().limiterFor(configOf(limits));
  beforeEach(() => vi.useFakeTimers({ now: 0 }));
  afterEach(() => vi.useRealTimers());

  it('is not built at all when no limit is configured', () => {
    expect(limiterOf({})).toBeUndefined();
    expect(limiterOf({ requests: { window: '10s' } })).toBeUndefined();
  });

  it('states the configured policies in the structured-field form of the latest RateLimit draft', () => {
    expect(limiterOf({ requests: { per_principal: 100, per_ip: 1000, window: '1m' } })!.policy).toBe('"principal";q=100;w=60, "ip";q=1000;w=60');
  });

  it('answers without a promise from memory, with the remaining quota of each scope', () => {
    const limiter = limiterOf({ requests: { per_principal: 2, per_client: 5, window: '10s' } })!;
    expect(limiter.decide(principal('alice', 'app'), '10.0.0.1', undefined)).toEqual({ kind: 'allow', rateLimit: '"principal";r=1;t=0, "client";r=4;t=0' });
    expect(limiter.decide(principal('alice', 'app'), '10.0.0.1', undefined)).toEqual({ kind: 'allow', rateLimit: '"principal";r=0;t=5, "client";r=3;t=0' });
    const refused = limiter.decide(principal('alice', 'app'), '10.0.0.1', undefined) as Verdict;
    expect(refused).toEqual({ kind: 'limit', rateLimit: '"principal";r=0;t=5, "client";r=3;t=0', retryAfter: 5 });
    vi.advanceTimersByTime(5_000);
    expect((limiter.decide(principal('alice', 'app'), '10.0.0.1', undefined) as Verdict).kind).toBe('allow');
  });

  it('gives a token naming no client no client limit, and a token without a subject its own principal bucket', () => {
    const limiter = limiterOf({ requests: { per_principal: 1, per_client: 1, window: '1m' } })!;
    const anonymous = { ...principal('x'), subject: undefined };
    expect(limiter.decide(anonymous, '10.0.0.1', 'hash-1')).toEqual({ kind: 'allow', rateLimit: '"principal";r=0;t=60' });
    expect(limiter.decide(anonymous, '10.0.0.1', 'hash-2')).toEqual({ kind: 'allow', rateLimit: '"principal";r=0;t=60' });
    expect((limiter.decide(anonymous, '10.0.0.1', 'hash-1') as Verdict).kind).toBe('limit');
  });

  it('keeps what was spent across a reload that changes the rates (the buckets outlive the limiter)', () => {
    const limits = limitsOf();
    const before = limits.limiterFor(configOf({ requests: { per_principal: 2, window: '1m' } }))!;
    before.decide(principal('alice'), '10.0.0.1', undefined);
    before.decide(principal('alice'), '10.0.0.1', undefined);
    const after = limits.limiterFor(configOf({ requests: { per_principal: 3, window: '1m' } }))!;
    expect(after.policy).toBe('"principal";q=3;w=60');
    expect(after.decide(principal('alice'), '10.0.0.1', undefined)).toEqual({ kind: 'limit', rateLimit: '"principal";r=0;t=20', retryAfter: 20 });
    expect(limits.limiterFor(configOf({}))).toBeUndefined();
  });
});
