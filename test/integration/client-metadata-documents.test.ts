import { once } from 'node:events';
import { createServer as createHttpServer, type ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientMetadataDocuments, ClientMetadataFailure } from '../../src/broker/client-metadata-documents.ts';
import { validateConfig } from '../../src/config/load.ts';
import { REDIRECT_URI } from '../../demo/oauth-client.ts';
import { makeTestCertificates, type TestCertificates } from '../helpers/test-ca.ts';

/**
 * Client ID metadata documents fetched from a real https server on 127.0.0.1, its certificate issued by
 * a throwaway CA that only these fetches trust. Each path serves one kind of document.
 */
describe('client ID metadata documents', () => {
  let certs: TestCertificates;
  let server: Server;
  let origin: string;
  const served = new Map<string, number>();

  const document = (path: string, overrides: Record<string, unknown> = {}) =>
    JSON.stringify({ client_id: `${origin}${path}`, client_name: 'CIMD client', redirect_uris: [REDIRECT_URI], grant_types: ['authorization_code', 'refresh_token'], token_endpoint_auth_method: 'none', ...overrides });

  beforeAll(async () => {
    certs = makeTestCertificates();
    server = createServer({ key: certs.key, cert: certs.cert }, (req, res: ServerResponse) => {
      const path = req.url ?? '/';
      served.set(path, (served.get(path) ?? 0) + 1);
      const json = (body: string, headers: Record<string, string> = {}) => {
        res.writeHead(200, { 'content-type': 'application/json', ...headers });
        res.end(body);
      };
      if (path === '/client.json') return json(document(path), { 'cache-control': 'max-age=60' });
      if (path === '/no-store.json') return json(document(path), { 'cache-control': 'no-store' });
      if (path === '/redirect.json') {
        res.writeHead(302, { location: `${origin}/client.json` });
        return res.end();
      }
      if (path === '/huge.json') {
        res.writeHead(200, { 'content-type': 'application/json' });
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        for (let i = 0; i < 80; i += 1) res.write(chunk);
        return res.end('{}');
      }
      if (path === '/other-id.json') return json(document(path, { client_id: `${origin}/client.json` }));
      if (path === '/secret.json') return json(document(path, { token_endpoint_auth_method: 'client_secret_basic' }));
      if (path === '/bad-redirect.json') return json(document(path, { redirect_uris: ['http://attacker.example/cb'] }));
      res.writeHead(404);
      res.end();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server?.closeAllConnections();
    server?.close();
    certs?.remove();
  });

  const resolver = (overrides: Record<string, unknown> = {}) => {
    const config = validateConfig({
      resource: { url: 'http://127.0.0.1:8080/mcp' },
      upstream: { url: 'http://127.0.0.1:3000' },
      broker: {
        identity_provider: { issuer: 'http://127.0.0.1:4444', client_id: 'x', client_secret: '${env:UNUSED}' },
        client_metadata: { allow_private_addresses: true, extra_ca_file: certs.caFile, ...overrides },
      },
    });
    return new ClientMetadataDocuments(config.broker!.client_metadata);
  };

  const refusal = async (documents: ClientMetadataDocuments, clientId: string): Promise<string> => {
    try {
      await documents.resolve(clientId);
    } catch (error) {
      expect(error).toBeInstanceOf(ClientMetadataFailure);
      return (error as Error).message;
    }
    throw new Error(`${clientId} was accepted`);
  };

  it('resolves a document whose client_id is its own URL, and caches it within its max-age', async () => {
    const documents = resolver();
    try {
      const client = await documents.resolve(`${origin}/client.json`);
      expect(client).toMatchObject({ client_id: `${origin}/client.json`, client_name: 'CIMD client', redirect_uris: [REDIRECT_URI], token_endpoint_auth_method: 'none' });
      await documents.resolve(`${origin}/client.json`);
      expect(served.get('/client.json')).toBe(1);
      await documents.resolve(`${origin}/no-store.json`);
      await documents.resolve(`${origin}/no-store.json`);
      expect(served.get('/no-store.json')).toBe(2);
    } finally {
      await documents.close();
    }
  });

  it('refuses a redirect, a private address when not allowed, 5 MB, another client_id, a shared secret and unsafe redirect URIs, each saying why', async () => {
    const documents = resolver();
    const strict = resolver({ allow_private_addresses: false });
    try {
      expect(await refusal(documents, `${origin}/redirect.json`)).toMatch(/redirects/);
      expect(await refusal(strict, `${origin}/client.json`)).toMatch(/private address/);
      expect(await refusal(strict, `https://localhost:${new URL(origin).port}/client.json`)).toMatch(/resolves to a private address/);
      expect(await refusal(documents, `${origin}/huge.json`)).toMatch(/larger than 5120 bytes/);
      expect(await refusal(documents, `${origin}/other-id.json`)).toMatch(/names another client_id/);
      expect(await refusal(documents, `${origin}/secret.json`)).toMatch(/shared secret/);
      expect(await refusal(documents, `${origin}/bad-redirect.json`)).toMatch(/not usable/);
      expect(await refusal(documents, `http://127.0.0.1:1/client.json`)).toMatch(/must be https/);
      expect(await refusal(documents, `${origin}/`)).toMatch(/with a path/);
      expect(await refusal(documents, `${origin}/missing.json`)).toMatch(/answered 404/);
    } finally {
      await Promise.all([documents.close(), strict.close()]);
    }
  });

  it('takes plain http only on loopback, and only with insecure_allow_http_loopback', async () => {
    const plain = createHttpServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ client_id: `http://127.0.0.1:${(plain.address() as AddressInfo).port}${req.url}`, redirect_uris: [REDIRECT_URI] }));
    });
    plain.listen(0, '127.0.0.1');
    await once(plain, 'listening');
    const url = `http://127.0.0.1:${(plain.address() as AddressInfo).port}/client.json`;
    const insecure = resolver({ insecure_allow_http_loopback: true });
    const secure = resolver();
    try {
      expect((await insecure.resolve(url)).client_id).toBe(url);
      expect(await refusal(secure, url)).toMatch(/must be https/);
    } finally {
      await Promise.all([insecure.close(), secure.close()]);
      plain.close();
    }
  });

  it('refuses a server whose certificate nobody trusts', async () => {
    const untrusting = resolver({ extra_ca_file: undefined });
    try {
      expect(await refusal(untrusting, `${origin}/client.json`)).toMatch(/failed/);
    } finally {
      await untrusting.close();
    }
  });
});
