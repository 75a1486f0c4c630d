import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisStore } from '../../src/broker/redis-store.ts';
import { SqliteStore } from '../../src/broker/sqlite-store.ts';
import type { BrokerStore } from '../../src/broker/store.ts';
import { skipWithoutRedis, startRedis, type StartedRedis } from '../helpers/redis-server.ts';

/**
 * `peek` is how a refresh request is judged before its token is spent (issue 20): it must tell used from
 * unused, mark nothing, and leave `use` the one atomic arbiter.
 */
const stores: Array<{ name: string; skip: boolean; open: () => Promise<{ store: BrokerStore; close: () => Promise<void> }> }> = [
  {
    name: 'SQLite',
    skip: false,
    open: async () => {
      const dir = mkdtempSync(join(tmpdir(), 'mcp-warden-peek-'));
      const store = new SqliteStore(join(dir, 'peek.db'));
      return {
        store,
        close: async () => {
          store.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: 'Redis',
    skip: skipWithoutRedis,
    open: async () => {
      const redis: StartedRedis = await startRedis();
      const store = new RedisStore(redis.url, 'peek');
      await store.ready();
      return {
        store,
        close: async () => {
          store.close();
          await redis.close();
        },
      };
    },
  },
];

for (const backend of stores) {
  describe.skipIf(backend.skip)(`the broker ${backend.name} store's peek`, () => {
    let store: BrokerStore;
    let close: (() => Promise<void>) | undefined;
    beforeAll(async () => {
      ({ store, close } = await backend.open());
    });
    afterAll(async () => {
      await close?.();
    });

    it('reads a record and whether it was used, and marks nothing', async () => {
      await store.put('refresh', 'p1', { grantId: 'g' }, Date.now() + 60_000);
      expect(await store.peek('refresh', 'p1')).toEqual({ value: { grantId: 'g' }, used: false });
      expect(await store.peek('refresh', 'p1')).toEqual({ value: { grantId: 'g' }, used: false });
      expect(await store.use('refresh', 'p1')).toEqual({ value: { grantId: 'g' }, first: true });
      expect(await store.peek('refresh', 'p1')).toEqual({ value: { grantId: 'g' }, used: true });
      expect(await store.peek('refresh', 'missing')).toBeUndefined();
    });

    it('leaves exactly one of 20 concurrent uses first after any number of peeks', async () => {
      await store.put('refresh', 'p2', { grantId: 'g' }, Date.now() + 60_000);
      const racing = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? store.peek('refresh', 'p2') : store.use('refresh', 'p2'))));
      expect(racing.filter((result) => result !== undefined && 'first' in result && result.first)).toHaveLength(1);
      expect(await store.peek('refresh', 'p2')).toMatchObject({ used: true });
    });

    it('never returns an expired record', async () => {
      await store.put('refresh', 'p3', { grantId: 'g' }, Date.now() + 100);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(await store.peek('refresh', 'p3')).toBeUndefined();
    });
  });
}
