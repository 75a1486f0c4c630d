import { createHmac, createPublicKey } from 'node:crypto';
import { connect } from 'node:net';
import { extractWWWAuthenticateParams } from '@modelcontextprotocol/sdk/client/auth.js';
import { generateKeyPair, importJWK, SignJWT, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INITIALIZE, MCP_HEADERS, startStack, type Stack } from '../helpers/stack.ts';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack((base) => ({ ...base, tokens: { ...(base.tokens as object), required_scopes: ['mcp:read'] } }));
});
afterAll(async () => {
  await stack?.close();
});

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** Claims as oidc-provider puts them in an access token for our resource. */
function claims(extra: JWTPayload = {}): JWTPayload {
  const now = Math.floor(Date.now() / 1000);
  return { iss: stack.as.issuer, aud: stack.mcpUrl, sub: 'demo-user', client_id: 'c1', scope: 'mcp:read', iat: now, exp: now + 300, jti: 'j1', ...extra };
}

/** Signs with the authorization server's own key, so only the named defect is wrong. */
async function forge(payload: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  const key = await importJWK(stack.as.signingKey.privateJwk, 'RS256');
  return new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: stack.as.signingKey.kid, typ: 'at+jwt', ...header }).sign(key);
}

async function call(headers: Record<string, string> = {}, path = '/mcp') {
  return fetch(new URL(path, stack.mcpUrl), { method: 'POST', headers: { ...MCP_HEADERS, ...headers }, body: INITIALIZE });
}

/** Sends exactly these bytes; fetch cannot send two Authorization headers. */
function rawRequest(text: string): Promise<string> {
  const { port } = new URL(stack.mcpUrl);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1', () => socket.end(text));
    let response = '';
    socket.on('data', (chunk) => (response += chunk.toString()));
    socket.on('end', () => resolve(response));
    socket.on('error', reject);
  });
}

describe('token rejection, end to end with oidc-provider', () => {
  const cases: Array<[string, () => Promise<Record<string, string>>, number, string | undefined, string]> = [
    ['no Authorization header', async () => ({}), 401, undefined, 'missing_token'],
    ['Basic credentials', async () => ({ authorization: 'Basic dXNlcjpwYXNz' }), 401, undefined, 'missing_token'],
    ['a malformed header', async () => ({ authorization: 'Bearer a b' }), 400, 'invalid_request', 'malformed_header'],
    ['a token oidc-provider minted for another resource', async () => ({ authorization: `Bearer ${await stack.as.mintToken({ resource: 'http://127.0.0.1:1/other', scope: 'mcp:read' })}` }), 401, 'invalid_token', 'wrong_audience'],
    ['an expired token', async () => ({ authorization: `Bearer ${await forge(claims({ iat: 1_000, exp: 2_000 }))}` }), 401, 'invalid_token', 'expired'],
    ['a token that is not valid yet', async () => ({ authorization: `Bearer ${await forge(claims({ nbf: Math.floor(Date.now() / 1000) + 600 }))}` }), 401, 'invalid_token', 'not_yet_valid'],
    ['a token without exp', async () => ({ authorization: `Bearer ${await forge(claims({ exp: undefined }))}` }), 401, 'invalid_token', 'missing_claim'],
    ['a tampered token', async () => {
      const [header, , signature] = (await forge(claims())).split('.');
      return { authorization: `Bearer ${header}.${b64(claims({ scope: 'mcp:read mcp:admin' }))}.${signature}` };
    }, 401, 'invalid_token', 'invalid_signature'],
    ['an alg:none token', async () => ({ authorization: `Bearer ${b64({ alg: 'none', typ: 'at+jwt' })}.${b64(claims())}.` }), 401, 'invalid_token', 'unsupported_algorithm'],
    ['an HS256 token keyed with the issuer public key', async () => {
      const pem = createPublicKey({ key: stack.as.signingKey.publicJwk as import('node:crypto').JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
      const input = `${b64({ alg: 'HS256', typ: 'at+jwt', kid: stack.as.signingKey.kid })}.${b64(claims())}`;
      return { authorization: `Bearer ${input}.${createHmac('sha256', pem).update(input).digest('base64url')}` };
    }, 401, 'invalid_token', 'unsupported_algorithm'],
    ['a token typed JWT (an ID token, say)', async () => ({ authorization: `Bearer ${await forge(claims(), { typ: 'JWT' })}` }), 401, 'invalid_token', 'wrong_type'],
    ['a token from an unknown issuer', async () => {
      const { privateKey } = await generateKeyPair('RS256');
      const token = await new SignJWT(claims({ iss: 'http://127.0.0.1:9/unknown' })).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt' }).sign(privateKey);
      return { authorization: `Bearer ${token}` };
    }, 401, 'invalid_token', 'wrong_issuer'],
    ['an issuer that differs by a trailing slash', async () => ({ authorization: `Bearer ${await forge(claims({ iss: `${stack.as.issuer}/` }))}` }), 401, 'invalid_token', 'wrong_issuer'],
    ['a token signed by a key not in the JWKS', async () => {
      const { privateKey } = await generateKeyPair('RS256');
      return { authorization: `Bearer ${await new SignJWT(claims()).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: stack.as.signingKey.kid }).sign(privateKey)}` };
    }, 401, 'invalid_token', 'invalid_signature'],
    ['a JWE-shaped token', async () => ({ authorization: 'Bearer a.b.c.d.e' }), 401, 'invalid_token', 'malformed_token'],
    ['a token without the required scope', async () => ({ authorization: `Bearer ${await forge(claims({ scope: 'mcp:other' }))}` }), 403, 'insufficient_scope', 'insufficient_scope'],
    ['scopes in scp from an issuer not configured to use it', async () => ({ authorization: `Bearer ${await forge(claims({ scope: undefined, scp: 'mcp:read' }))}` }), 403, 'insufficient_scope', 'insufficient_scope'],
  ];

  it.each(cases)('refuses %s, and the upstream receives nothing', async (_name, headers, status, error, reason) => {
    const before = stack.mcp.requests.length;
    const response = await call(await headers());
    expect(response.status).toBe(status);
    const params = extractWWWAuthenticateParams(response);
    expect(params.resourceMetadataUrl?.href).toBe(new URL('/.well-known/oauth-protected-resource/mcp', stack.mcpUrl).href);
    expect(params.error).toBe(error);
    expect(await response.json()).toMatchObject(error ? { error } : { error: 'unauthorized' });
    expect(stack.mcp.requests.length).toBe(before);
    const line = stack.logs.findLast((log) => log.msg === 'request');
    expect(line).toMatchObject({ status, reason, outcome: 'denied' });
  });

  it('challenges a missing scope with what the token has plus what the request needs', async () => {
    const response = await call({ authorization: `Bearer ${await forge(claims({ scope: 'mcp:other' }))}` });
    expect(response.headers.get('www-authenticate')).toContain('scope="mcp:other mcp:read"');
  });

  it('refuses a token in the query with 400 even beside a valid header, and never forwards it', async () => {
    const before = stack.mcp.requests.length;
    const token = await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:read' });
    const response = await call({ authorization: `Bearer ${token}` }, `/mcp?access_token=${token}`);
    expect(response.status).toBe(400);
    expect(extractWWWAuthenticateParams(response).error).toBe('invalid_request');
    expect(stack.mcp.requests.length).toBe(before);
  });

  it('refuses two Authorization headers with 400, read from the raw header lines', async () => {
    const before = stack.mcp.requests.length;
    const token = await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:read' });
    const response = await rawRequest(
      `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: ${INITIALIZE.length}\r\nConnection: close\r\n\r\n${INITIALIZE}`,
    );
    expect(response).toMatch(/^HTTP\/1\.1 400 /);
    expect(response).toContain('error="invalid_request"');
    expect(stack.mcp.requests.length).toBe(before);
  });

  it('lets a valid token oidc-provider minted for this resource through', async () => {
    const token = await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:read' });
    const response = await call({ authorization: `Bearer ${token}` });
    expect(response.status).toBe(200);
    await response.body?.cancel();
  });

  it('counts each refusal by reason and issuer, and never logs a token', async () => {
    const metrics = await (await fetch(`${stack.warden.adminUrl}/metrics`)).text();
    expect(metrics).toContain(`mcp_warden_auth_failures_total{reason="expired",issuer="${stack.as.issuer}"} 1`);
    expect(metrics).toContain('mcp_warden_auth_failures_total{reason="wrong_issuer",issuer="unknown"} 2');
    expect(metrics).toMatch(/mcp_warden_requests_total\{outcome="denied",status_class="4xx"\} \d+/);
    const logText = JSON.stringify(stack.logs);
    expect(logText).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/);
  });
});

describe('an issuer configured with scope_claim: scp (Entra ID, Okta)', () => {
  let scpStack: Stack;
  beforeAll(async () => {
    scpStack = await startStack((base) => ({
      ...base,
      authorization_servers: (base.authorization_servers as object[]).map((server) => ({ ...server, scope_claim: 'scp' })),
      tokens: { ...(base.tokens as object), required_scopes: ['mcp:read'] },
    }));
  });
  afterAll(async () => {
    await scpStack?.close();
  });

  const send = async (extra: JWTPayload) => {
    const now = Math.floor(Date.now() / 1000);
    const payload = { iss: scpStack.as.issuer, aud: scpStack.mcpUrl, sub: 'u', iat: now, exp: now + 300, ...extra };
    const key = await importJWK(scpStack.as.signingKey.privateJwk, 'RS256');
    const token = await new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: scpStack.as.signingKey.kid, typ: 'at+jwt' }).sign(key);
    const response = await fetch(scpStack.mcpUrl, { method: 'POST', headers: { ...MCP_HEADERS, authorization: `Bearer ${token}` }, body: INITIALIZE });
    await response.body?.cancel();
    return response.status;
  };

  it('reads scopes from scp as a string (Entra ID) or an array (Okta), and ignores scope', async () => {
    expect(await send({ scp: 'openid mcp:read' })).toBe(200);
    expect(await send({ scp: ['openid', 'mcp:read'] })).toBe(200);
    expect(await send({ scope: 'mcp:read' })).toBe(403);
    expect(await send({ scp: 'mcp:readwrite' })).toBe(403);
    expect(await send({ scp: ['mcp:read', 7] })).toBe(403);
  });
});

describe('protected resource metadata', () => {
  it.each(['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource'])(
    'is served at %s without a token, CORS-readable, and never forwarded',
    async (path) => {
      const before = stack.mcp.requests.length;
      const response = await fetch(new URL(path, stack.mcpUrl), { headers: { origin: 'https://inspector.example', host: 'evil.example' } });
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('application/json');
      expect(response.headers.get('access-control-allow-origin')).toBe('*');
      expect(await response.json()).toEqual({
        resource: stack.mcpUrl,
        authorization_servers: [stack.as.issuer],
        bearer_methods_supported: ['header'],
        scopes_supported: ['mcp:read', 'mcp:write'],
        resource_name: 'Test MCP server',
        // DPoP is allowed by default (tokens.dpop.mode: allowed): the proofs accepted are advertised.
        dpop_signing_alg_values_supported: ['RS256', 'PS256', 'ES256', 'EdDSA'],
      });
      expect(stack.mcp.requests.length).toBe(before);
    },
  );

  it('needs a token for every other path, however it is spelled', async () => {
    for (const path of ['/', '/mcp/', '/.well-known/oauth-protected-resource/other', '/healthz', '/metrics', '/MCP']) {
      const response = await fetch(new URL(path, stack.mcpUrl));
      expect(response.status, path).toBe(401);
    }
  });
});
