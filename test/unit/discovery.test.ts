import { afterEach, describe, expect, it } from 'vitest';
import { discoverIssuerMetadata, discoveryUrls } from '../../src/auth/discovery.ts';
import { startFaultyServer } from '../helpers/jwks-server.ts';

const servers: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

describe('issuer discovery', () => {
  it('tries RFC 8414 first, then OpenID Connect, path-inserted before appended', () => {
    expect(discoveryUrls('https://idp.example.com/t1')).toEqual([
      'https://idp.example.com/.well-known/oauth-authorization-server/t1',
      'https://idp.example.com/.well-known/openid-configuration/t1',
      'https://idp.example.com/t1/.well-known/openid-configuration',
    ]);
    expect(discoveryUrls('https://idp.example.com')).toEqual([
      'https://idp.example.com/.well-known/oauth-authorization-server',
      'https://idp.example.com/.well-known/openid-configuration',
    ]);
  });

  it('falls back to the next URL on a 404 and returns the first document found', async () => {
    const paths: string[] = [];
    const server = await startFaultyServer((req, res) => {
      paths.push(req.url!);
      if (req.url === '/t1/.well-known/openid-configuration') res.writeHead(200).end(JSON.stringify({ issuer: `${server.url}/t1`, jwks_uri: 'x' }));
      else res.writeHead(404).end();
    });
    servers.push(server);
    await expect(discoverIssuerMetadata(`${server.url}/t1`, { timeoutMs: 1000, maxBytes: 10_000 })).resolves.toMatchObject({ jwks_uri: 'x' });
    expect(paths).toEqual(['/.well-known/oauth-authorization-server/t1', '/.well-known/openid-configuration/t1', '/t1/.well-known/openid-configuration']);
  });

  it('refuses metadata that names another issuer', async () => {
    const server = await startFaultyServer((_req, res) => res.writeHead(200).end(JSON.stringify({ issuer: 'https://evil.example', jwks_uri: 'x' })));
    servers.push(server);
    await expect(discoverIssuerMetadata(server.url, { timeoutMs: 1000, maxBytes: 10_000 })).rejects.toThrow(/not the configured/);
  });
});
