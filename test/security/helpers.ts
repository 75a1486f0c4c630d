import { createPrivateKey, createSign } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { exportJWK, generateKeyPair, importJWK, SignJWT, type JWK, type JWTPayload } from 'jose';
import { expect } from 'vitest';
import { startFaultyServer } from '../helpers/jwks-server.ts';
import type { Stack } from '../helpers/stack.ts';

export { INITIALIZE, MCP_HEADERS, startStack, type Stack } from '../helpers/stack.ts';

export const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** Claims as oidc-provider puts them in an access token for the stack's resource. */
export function claims(stack: Stack, extra: JWTPayload = {}): JWTPayload {
  const now = Math.floor(Date.now() / 1000);
  return { iss: stack.as.issuer, aud: stack.mcpUrl, sub: 'user-1', client_id: 'c1', scope: 'mcp:read', iat: now, exp: now + 300, jti: 'j1', ...extra };
}

/** Signs with the authorization server's own key, so that only the defect under test is wrong. */
export async function forge(stack: Stack, payload: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  const key = await importJWK(stack.as.signingKey.privateJwk, 'RS256');
  return new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: stack.as.signingKey.kid, typ: 'at+jwt', ...header }).sign(key);
}

export const validToken = (stack: Stack, extra: JWTPayload = {}) => forge(stack, claims(stack, extra));

/** The challenge every 401/403 must carry, per SECURITY-CASES conventions. */
export function expectedChallenge(stack: Stack, error?: 'invalid_token' | 'invalid_request' | 'insufficient_scope'): RegExp {
  const metadataUrl = new URL('/.well-known/oauth-protected-resource/mcp', stack.mcpUrl).href.replace(/[.?]/g, '\\$&');
  return error ? new RegExp(`^Bearer resource_metadata="${metadataUrl}".*error="${error}"`) : new RegExp(`^Bearer resource_metadata="${metadataUrl}"(, scope="[^"]*")?$`);
}

/**
 * Runs `attempt` and checks the refusal: the status, the challenge (or its absence), a body that never
 * echoes the token, and an upstream that received nothing.
 */
export async function expectRefused(
  stack: Stack,
  attempt: () => Promise<Response>,
  status: number,
  error?: 'invalid_token' | 'invalid_request' | 'insufficient_scope' | 'none',
): Promise<Response> {
  const before = stack.mcp.requests.length;
  const response = await attempt();
  expect(response.status).toBe(status);
  const challenge = response.headers.get('www-authenticate');
  if (error === 'none' || status === 503 || status === 429 || status === 431 || status === 404) expect(challenge).toBeNull();
  else expect(challenge).toMatch(expectedChallenge(stack, error));
  const body = await response.text();
  expect(body).not.toMatch(/eyJ[A-Za-z0-9_-]{8,}/);
  expect(body).not.toMatch(/\bat [^ ]+ \(/);
  expect(stack.mcp.requests.length, 'the upstream received nothing').toBe(before);
  return response;
}

/** POSTs an initialize to the MCP endpoint with these headers. */
export function post(stack: Stack, headers: Record<string, string> = {}, path = '/mcp', body = INITIALIZE_BODY): Promise<Response> {
  return fetch(new URL(path, stack.mcpUrl), { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers }, body });
}

const INITIALIZE_BODY = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'security-test', version: '1' } },
});

/**
 * Sends exactly these bytes and collects what comes back until the server closes or `waitMs` passes:
 * fetch and undici normalize away the malformed input these cases need.
 */
export function rawExchange(url: string, text: string | Buffer, waitMs = 2000): Promise<{ response: string; closed: boolean }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(text));
    let response = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ response, closed: false });
    }, waitMs);
    socket.on('data', (chunk) => (response += chunk.toString('latin1')));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ response, closed: true });
    });
    socket.on('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' ? undefined : reject(error)));
  });
}

export const statusOf = (response: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1] ?? 0);

/**
 * A hand-made issuer whose JWKS the test controls (keys of any type and strength, outages, garbage):
 * fault injection beside the real authorization server, never instead of it.
 */
export async function startKeyedIssuer(initialKeys: JWK[]) {
  let keys = initialKeys;
  let answer: ((res: ServerResponse) => void) | undefined;
  const server = await startFaultyServer((_req, res) => {
    if (answer) return answer(res);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }));
  });
  return {
    issuer: `${server.url}/keyed`,
    jwksUri: `${server.url}/jwks`,
    get fetches() {
      return server.hits;
    },
    setKeys(next: JWK[]) {
      keys = next;
      answer = undefined;
    },
    /** Replace the JWKS answer (500, hang, garbage); undefined restores the keys. */
    answerWith(next: ((res: ServerResponse) => void) | undefined) {
      answer = next;
    },
    close: () => server.close(),
  };
}

export type KeyedIssuer = Awaited<ReturnType<typeof startKeyedIssuer>>;

/** A key pair whose public half goes into a KeyedIssuer's JWKS. */
export async function keyPair(alg: string, kid: string, options: { modulusLength?: number; crv?: string } = {}) {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...options });
  return { alg, kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } as JWK };
}

/** Signs any protected header and payload bytes with node:crypto, for headers jose refuses to produce (crit, b64). */
export function signRaw(privateJwk: JWK, header: Record<string, unknown>, payload: string | Buffer): string {
  const input = `${b64(header)}.${Buffer.from(payload).toString('base64url')}`;
  const key = createPrivateKey({ key: privateJwk as import('node:crypto').JsonWebKey, format: 'jwk' });
  return `${input}.${createSign('RSA-SHA256').update(input).sign(key).toString('base64url')}`;
}
