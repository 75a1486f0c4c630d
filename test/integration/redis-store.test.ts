import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryBuckets, waitSeconds, type Draw } from '../../src/limits/bucket-store.ts';
import { RedisBuckets } from '../../src/limits/redis-buckets.ts';
import { RedisStore } from '../../src/broker/redis-store.ts';
import { skipWithoutRedis, startRedis, type StartedRedis } from '../helpers/redis-server.ts';

describe.skipIf(skipWithoutRedis)('the broker Redis store, against a real redis-server', () => {
  let redis: StartedRedis;
  let a: RedisStore;
  let b: RedisStore;
  beforeAll(async () => {
    redis = await startRedis();
    a = new RedisStore(redis.url, 'test');
    b = new RedisStore(redis.url, 'test');
    await Promise.all([a.ready(), b.ready()]);
  });
  afterAll(async () => {
    a?.close();
    b?.close();
    await redis?.close();
  });

  it('lets exactly one of 50 concurrent uses from two connections be the first', async () => {
    await a.put('code', 'c1', { grant: 'g' }, Date.now() + 60_000);
    const uses = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 ? a : b).use<{ grant: string }>('code', 'c1')));
    expect(uses.filter((use) => use?.first)).toHaveLength(1);
    expect(uses.every((use) => use?.value.grant === 'g')).toBe(true);
    expect(await a.use('code', 'missing')).toBeUndefined();
  });

  it('expires records by their own time, and writes ifAbsent once', async () => {
    await a.put('transaction', 't', { x: 1 }, Date.now() + 150);
    expect(await b.get('transaction', 't')).toEqual({ x: 1 });
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(await b.get('transaction', 't')).toBeUndefined();
    const writes = await Promise.all([a, b, a, b].map((store, i) => store.put('signing_key', 'current', { k: i }, undefined, { ifAbsent: true })));
    expect(writes.filter(Boolean)).toHaveLength(1);
    await a.put('revoked', 'jti:1', {}, Date.now() + 60_000);
    await a.put('revoked', 'grant:2', {}, Date.now() + 60_000);
    expect((await b.list('revoked')).map((record) => record.key).sort()).toEqual(['grant:2', 'jti:1']);
    expect((await b.list('revoked'))[0]!.expiresAt).toBeGreaterThan(Date.now());
    expect(await b.count('revoked')).toBe(2);
    await b.delete('revoked', 'jti:1');
    expect(await a.count('revoked')).toBe(1);
  });

  it('shares rate-limit buckets between replicas, and takes nothing from a request it refuses', async () => {
    const one = new RedisBuckets(a.client, 'test');
    const two = new RedisBuckets(b.client, 'test');
    const perMinute = (limit: number) => ({ limit, windowMs: 60_000 });
    const draw: Draw[] = [{ bucket: 'token:ip', key: '10.0.0.1', rate: perMinute(4) }];
    const waits = [];
    for (let i = 0; i < 6; i += 1) waits.push(waitSeconds(draw, await (i % 2 ? one : two).take(draw)));
    expect(waits.slice(0, 4)).toEqual([0, 0, 0, 0]);
    expect(waits[4]).toBeGreaterThan(0);
    // A refusal on the client bucket leaves the IP bucket untouched.
    const client: Draw[] = [{ bucket: 'token:ip', key: '10.0.0.2', rate: perMinute(10) }, { bucket: 'token:client', key: 'c', rate: perMinute(1) }];
    expect((await one.take(client)).allowed).toBe(true);
    const refused = await two.take(client);
    expect(refused.allowed).toBe(false);
    expect(refused.levels[0]).toBeGreaterThanOrEqual(9);
    expect(waitSeconds(client, refused)).toBeGreaterThan(0);
    const memory = new MemoryBuckets();
    expect(memory.take(draw).allowed).toBe(true);
  });
});
