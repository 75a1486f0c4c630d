import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AS_METADATA_MAX_STALE_MS, AS_METADATA_REFRESH_MS, AS_METADATA_RETRY_MS, AuthorizationServerMetadata } from '../../src/metadata/authorization-server.ts';

const START = 1_800_000_000_000;

/** An issuer on 127.0.0.1 whose answers each test sets: the RFC 8414 and OpenID Connect locations apart. */
interface Issuer {
  readonly url: string;
  /** Path → status and body (a function of the issuer URL); anything else is 404. */
  routes: Record<string, { status: number; body?: (url: string) => unknown }>;
  readonly paths: string[];
}

describe('AuthorizationServerMetadata', () => {
  let server: Server;
  let issuer: Issuer;

  beforeEach(async () => {
    const paths: string[] = [];
    server = createServer((req, res) => {
      paths.push(req.url ?? '');
      const route = issuer.routes[req.url ?? ''];
      res.writeHead(route?.status ?? 404, { 'content-type': 'application/json' });
      res.end(route?.body ? JSON.stringify(route.body(issuer.url)) : '');
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    issuer = { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, routes: {}, paths };
    vi.useFakeTimers({ toFake: ['Date'], now: START });
  });
  afterEach(async () => {
    vi.useRealTimers();
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
  });

  const document = (extra: Record<string, unknown> = {}) => (url: string) => ({ issuer: url, authorization_endpoint: `${url}/authorize`, ...extra });
  const rfc8414 = '/.well-known/oauth-authorization-server';
  const oidc = '/.well-known/openid-configuration';

  it('serves the RFC 8414 document as the issuer wrote it, members and order kept', async () => {
    issuer.routes[rfc8414] = { status: 200, body: (url) => ({ token_endpoint: `${url}/t`, issuer: url, x_custom: { nested: [1, 'two'] } }) };
    const result = await new AuthorizationServerMetadata(issuer.url, { timeoutMs: 2000 }).get();
    expect(result.ok && result.body).toBe(JSON.stringify({ token_endpoint: `${issuer.url}/t`, issuer: issuer.url, x_custom: { nested: [1, 'two'] } }));
  });

  it('falls back to OpenID Connect discovery when the issuer has no RFC 8414 document', async () => {
    issuer.routes[oidc] = { status: 200, body: document({ from: 'oidc' }) };
    const result = await new AuthorizationServerMetadata(issuer.url, { timeoutMs: 2000 }).get();
    expect(result.ok && result.metadata.from).toBe('oidc');
    expect(issuer.paths).toEqual([rfc8414, oidc]);
  });

  it('refuses a document that names another issuer', async () => {
    issuer.routes[rfc8414] = { status: 200, body: () => ({ issuer: 'https://someone-else.example' }) };
    const failures: string[] = [];
    const result = await new AuthorizationServerMetadata(issuer.url, { timeoutMs: 2000, onFailure: (message) => failures.push(message) }).get();
    expect(result).toEqual({ ok: false, retryAfterSeconds: AS_METADATA_RETRY_MS / 1000 });
    expect(failures[0]).toMatch(/someone-else/);
  });

  it('fails closed while the issuer is down, and does not ask it again before the retry time', async () => {
    issuer.routes[rfc8414] = { status: 503 };
    issuer.routes[oidc] = { status: 503 };
    const source = new AuthorizationServerMetadata(issuer.url, { timeoutMs: 2000 });
    expect(await source.get()).toEqual({ ok: false, retryAfterSeconds: 10 });
    const asked = issuer.paths.length;
    vi.setSystemTime(START + 4_000);
    expect(await source.get()).toEqual({ ok: false, retryAfterSeconds: 6 });
    expect(issuer.paths.length).toBe(asked);
    issuer.routes[rfc8414] = { status: 200, body: document() };
    vi.setSystemTime(START + AS_METADATA_RETRY_MS);
    expect((await source.get()).ok).toBe(true);
  });

  it('asks the issuer once for many concurrent callers', async () => {
    issuer.routes[rfc8414] = { status: 200, body: document() };
    const source = new AuthorizationServerMetadata(issuer.url, { timeoutMs: 2000 });
    const results = await Promise.all(Array.from({ length: 20 }, () => source.get()));
    expect(results.every((result) => result.ok)).toBe(true);
    expect(issuer.paths).toEqual([rfc8414]);
  });

  it('keeps a document for the refresh time, then serves it while a fresh one is fetched', async () => {
    issuer.routes[rfc8414] = { status: 200, body: document({ version: 1 }) };
    const source = new AuthorizationServerMetadata(issuer.url, { timeoutMs: 2000 });
    await source.get();
    issuer.routes[rfc8414] = { status: 200, body: document({ version: 2 }) };
    vi.setSystemTime(START + AS_METADATA_REFRESH_MS - 1);
    expect(await source.get()).toMatchObject({ ok: true, metadata: { version: 1 } });
    expect(issuer.paths).toHaveLength(1);
    vi.setSystemTime(START + AS_METADATA_REFRESH_MS);
    expect(await source.get()).toMatchObject({ ok: true, metadata: { version: 1 } });
    await vi.waitFor(() => expect(issuer.paths).toHaveLength(2));
    await vi.waitFor(async () => expect(await source.get()).toMatchObject({ ok: true, metadata: { version: 2 } }));
  });

  it('serves the last good document while the issuer is down, up to the staleness bound, then 503', async () => {
    issuer.routes[rfc8414] = { status: 200, body: document() };
    const source = new AuthorizationServerMetadata(issuer.url, { timeoutMs: 2000 });
    await source.get();
    issuer.routes[rfc8414] = { status: 503 };
    issuer.routes[oidc] = { status: 503 };
    vi.setSystemTime(START + AS_METADATA_REFRESH_MS + 1);
    expect((await source.get()).ok).toBe(true);
    await vi.waitFor(() => expect(issuer.paths.length).toBe(3));
    vi.setSystemTime(START + AS_METADATA_MAX_STALE_MS - 1);
    expect((await source.get()).ok).toBe(true);
    vi.setSystemTime(START + AS_METADATA_MAX_STALE_MS);
    const result = await source.get();
    expect(result.ok).toBe(false);
  });
});
