// DPoP from a browser (CORS lets the proof in and the nonce out), and the challenge of a DPoP-scheme request whose token is refused.
import { createHash, randomUUID } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forge, claims, INITIALIZE, MCP_HEADERS, startStack, validToken, type Stack } from './helpers.ts';

const BROWSER_ORIGIN = 'http://127.0.0.1:5999';

async function boundKey(stack: Stack) {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(publicKey);
  const jkt = await calculateJwkThumbprint(jwk, 'sha256');
  const proof = (token: string) =>
    new SignJWT({ jti: randomUUID(), htm: 'POST', htu: stack.mcpUrl, iat: Math.floor(Date.now() / 1000), ath: createHash('sha256').update(token).digest('base64url') })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk })
      .sign(privateKey);
  return { jkt, proof };
}

describe('H (pending). DPoP for browser clients and DPoP-scheme token errors', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack((base) => ({ ...base, cors: { allowed_origins: [BROWSER_ORIGIN] }, tokens: { ...(base.tokens as object), dpop: { mode: 'allowed', nonce: true } } }));
  });
  afterAll(async () => {
    await stack?.close();
  });

  // src/proxy/cors.ts: ALLOWED_REQUEST_HEADERS has no DPoP and EXPOSED no DPoP-Nonce, so a browser can
  // neither send a proof (the preflight does not allow the header) nor read the nonce it is asked for.
  it('SEC-H60 the CORS preflight allows the DPoP request header', async () => {
    const preflight = await fetch(stack.mcpUrl, {
      method: 'OPTIONS',
      headers: { origin: BROWSER_ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type, dpop' },
      signal: AbortSignal.timeout(5000),
    });
    expect(preflight.status).toBe(204);
    const allowed = (preflight.headers.get('access-control-allow-headers') ?? '').toLowerCase().split(/\s*,\s*/);
    expect(allowed).toContain('dpop');
  });

  it('SEC-H61 a browser can read DPoP-Nonce on a use_dpop_nonce refusal', async () => {
    const key = await boundKey(stack);
    const token = await validToken(stack, { cnf: { jkt: key.jkt }, jti: randomUUID() });
    const response = await fetch(stack.mcpUrl, {
      method: 'POST',
      headers: { ...MCP_HEADERS, origin: BROWSER_ORIGIN, authorization: `DPoP ${token}`, dpop: await key.proof(token) },
      body: INITIALIZE,
      signal: AbortSignal.timeout(5000),
    });
    expect(response.status).toBe(401);
    expect(response.headers.get('dpop-nonce')).toBeTruthy();
    await response.body?.cancel();
    const exposed = (response.headers.get('access-control-expose-headers') ?? '').toLowerCase().split(/\s*,\s*/);
    expect(exposed).toContain('dpop-nonce');
  });

  // RFC 9449 §7.1: a request made with the DPoP scheme is answered with a DPoP challenge; an expired
  // DPoP-bound token sent as DPoP gets only `Bearer ..., error="invalid_token"` today (in allowed mode).
  it('SEC-H62 an expired DPoP-bound token sent with the DPoP scheme gets a DPoP challenge with invalid_token', async () => {
    const key = await boundKey(stack);
    const now = Math.floor(Date.now() / 1000);
    const token = await forge(stack, claims(stack, { cnf: { jkt: key.jkt }, jti: randomUUID(), iat: now - 600, exp: now - 300 }));
    const response = await fetch(stack.mcpUrl, {
      method: 'POST',
      headers: { ...MCP_HEADERS, authorization: `DPoP ${token}`, dpop: await key.proof(token) },
      body: INITIALIZE,
      signal: AbortSignal.timeout(5000),
    });
    expect(response.status).toBe(401);
    await response.body?.cancel();
    expect(response.headers.get('www-authenticate')).toMatch(/(^|, )DPoP [^]*error="invalid_token"/);
  });
});
