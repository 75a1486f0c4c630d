import { importJWK, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAuthorizationServer, type StartedAuthorizationServer } from '../../demo/authorization-server.ts';
import { freePort, INITIALIZE, MCP_HEADERS, SCOPES, startStack, type Stack } from '../helpers/stack.ts';

describe('several authorization servers', () => {
  let stack: Stack;
  let second: StartedAuthorizationServer;

  beforeAll(async () => {
    const port = await freePort();
    second = await startAuthorizationServer({ resources: { [`http://127.0.0.1:${port}/mcp`]: { scopes: SCOPES } } });
    stack = await startStack(
      (base) => ({ ...base, authorization_servers: [...(base.authorization_servers as object[]), { issuer: second.issuer }] }),
      { port },
    );
  });
  afterAll(async () => {
    await stack?.close();
    await second?.close();
  });

  const call = (token: string) =>
    fetch(stack.mcpUrl, { method: 'POST', headers: { ...MCP_HEADERS, authorization: `Bearer ${token}` }, body: INITIALIZE });

  it('accepts a token from each, routed by its iss', async () => {
    for (const as of [stack.as, second]) {
      const response = await call(await as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:read' }));
      expect(response.status, as.issuer).toBe(200);
      await response.body?.cancel();
    }
    const metadata = (await (await fetch(new URL('/.well-known/oauth-protected-resource/mcp', stack.mcpUrl))).json()) as { authorization_servers: string[] };
    expect(metadata.authorization_servers).toEqual([stack.as.issuer, second.issuer]);
  });

  it("refuses a token naming one issuer but signed with the other's key", async () => {
    const before = stack.mcp.requests.length;
    const now = Math.floor(Date.now() / 1000);
    const key = await importJWK(second.signingKey.privateJwk, 'RS256');
    for (const kid of [second.signingKey.kid, stack.as.signingKey.kid]) {
      const token = await new SignJWT({ iss: stack.as.issuer, aud: stack.mcpUrl, sub: 'u', scope: 'mcp:read', iat: now, exp: now + 300 })
        .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid })
        .sign(key);
      const response = await call(token);
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toContain('error="invalid_token"');
    }
    expect(stack.mcp.requests.length).toBe(before);
  });
});
