import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/broker/sqlite-store.ts';

describe('the broker SQLite store', () => {
  let now = 1_000_000;
  const dir = mkdtempSync(join(tmpdir(), 'mcp-warden-store-'));
  const stores: SqliteStore[] = [];
  const open = (name = 'a.db') => {
    const store = new SqliteStore(join(dir, name), () => now);
    stores.push(store);
    return store;
  };
  afterEach(() => {
    for (const store of stores.splice(0)) store.close();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('lets exactly one caller use a record first, and still answers replays with the value', async () => {
    const store = open();
    await store.put('code', 'h1', { grant: 'g' }, now + 60_000);
    const uses = await Promise.all(Array.from({ length: 20 }, () => store.use<{ grant: string }>('code', 'h1')));
    expect(uses.filter((use) => use?.first)).toHaveLength(1);
    expect(uses.every((use) => use?.value.grant === 'g')).toBe(true);
    expect(await store.use('code', 'unknown')).toBeUndefined();
  });

  it('never returns an expired record, and purges it', async () => {
    const store = open();
    await store.put('transaction', 't', { a: 1 }, now + 1000);
    await store.put('client', 'c', { id: 'c' }, undefined);
    now += 1001;
    expect(await store.get('transaction', 't')).toBeUndefined();
    expect(await store.use('transaction', 't')).toBeUndefined();
    expect(await store.count('transaction')).toBe(0);
    expect(await store.purgeExpired()).toBe(1);
    expect(await store.get('client', 'c')).toEqual({ id: 'c' });
  });

  it('writes ifAbsent only over nothing or an expired record', async () => {
    const store = open();
    expect(await store.put('signing_key', 'current', { k: 1 }, undefined, { ifAbsent: true })).toBe(true);
    expect(await store.put('signing_key', 'current', { k: 2 }, undefined, { ifAbsent: true })).toBe(false);
    expect(await store.get('signing_key', 'current')).toEqual({ k: 1 });
    await store.put('session', 's', { v: 1 }, now + 10);
    now += 11;
    expect(await store.put('session', 's', { v: 2 }, now + 10, { ifAbsent: true })).toBe(true);
    expect(await store.get('session', 's')).toEqual({ v: 2 });
  });

  it('keeps its records across a reopen of the file', async () => {
    const first = open('persist.db');
    await first.put('refresh', 'r', { family: 'f' }, now + 60_000);
    await first.use('refresh', 'r');
    first.close();
    stores.splice(stores.indexOf(first), 1);
    const second = open('persist.db');
    expect(await second.use('refresh', 'r')).toEqual({ value: { family: 'f' }, first: false });
    expect((await second.list('refresh')).map((record) => record.key)).toEqual(['r']);
  });
});
