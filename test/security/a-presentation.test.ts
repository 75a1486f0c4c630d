import { CompactSign, importJWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { b64, claims, expectRefused, post, rawExchange, startStack, statusOf, validToken, type Stack } from './helpers.ts';

const UPSTREAM_KEY = 'upstream-key-a-7f3c9e';
let stack: Stack;

beforeAll(async () => {
  process.env.WARDEN_TEST_A_UPSTREAM_KEY = UPSTREAM_KEY;
  stack = await startStack((base) => ({
    ...base,
    tokens: { ...(base.tokens as object), required_scopes: ['mcp:read'] },
    upstream: {
      ...(base.upstream as object),
      credential: { type: 'header', name: 'X-Api-Key', value: '${env:WARDEN_TEST_A_UPSTREAM_KEY}' },
      identity_headers: { 'X-Auth-Subject': 'sub' },
    },
  }));
});
afterAll(async () => {
  await stack?.close();
});

const lastRecorded = () => stack.mcp.requests.at(-1)!;

describe('A. token presentation and transport', () => {
  it('SEC-A01 no Authorization header gets a bare 401 challenge', async () => {
    await expectRefused(stack, () => post(stack), 401);
  });

  it('SEC-A02 Basic and Digest get a bare Bearer challenge, and a JWT inside Basic is never used; DPoP without its proof is refused', async () => {
    const jwt = await validToken(stack);
    for (const authorization of ['Basic dXNlcjpwYXNz', `Basic ${Buffer.from(`user:${jwt}`).toString('base64')}`, 'Digest username="u", response="x"']) {
      await expectRefused(stack, () => post(stack, { authorization }), 401);
    }
    // DPoP is allowed by default (RFC 9449): the scheme is ours, and a token without its proof header goes nowhere.
    const before = stack.mcp.requests.length;
    const response = await post(stack, { authorization: `DPoP ${jwt}` });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toMatch(/DPoP resource_metadata="[^"]+", (scope="[^"]*", )?algs="[^"]+", error="invalid_dpop_proof"/);
    expect(stack.mcp.requests.length).toBe(before);
  });

  it('SEC-A03 the scheme is case-insensitive; extra words, no token or illegal characters get 400 invalid_request', async () => {
    const token = await validToken(stack);
    for (const scheme of ['bearer', 'BEARER', 'Bearer', 'bEaReR']) {
      const response = await post(stack, { authorization: `${scheme} ${token}` });
      expect(response.status, scheme).toBe(200);
      await response.body?.cancel();
    }
    for (const authorization of [`Bearer ${token} extra`, 'Bearer', 'Bearer ', 'Bearer abc$def', 'Bearer a"b', `Bearer  ${token}`]) {
      await expectRefused(stack, () => post(stack, { authorization }), 400, 'invalid_request');
    }
  });

  it('SEC-A04 a token in the query gets 400 even beside a valid header; one in a form body is never read', async () => {
    const token = await validToken(stack);
    await expectRefused(stack, () => post(stack, { authorization: `Bearer ${token}` }, `/mcp?access_token=${token}`), 400, 'invalid_request');
    await expectRefused(
      stack,
      () => fetch(stack.mcpUrl, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `access_token=${token}` }),
      401,
    );
    expect(JSON.stringify(stack.logs)).not.toContain(token.slice(-20));
  });

  it('SEC-A05 two Authorization lines, same or different, get 400 from the raw header lines', async () => {
    const token = await validToken(stack);
    const before = stack.mcp.requests.length;
    for (const second of [token, 'Bearer other']) {
      const { response } = await rawExchange(
        stack.mcpUrl,
        `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nauthorization: ${second.startsWith('Bearer') ? second : `Bearer ${second}`}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`,
      );
      expect(statusOf(response)).toBe(400);
      expect(response).toContain('error="invalid_request"');
    }
    expect(stack.mcp.requests.length).toBe(before);
  });

  it('SEC-A06 a 64 KiB token gets 431 from the header limit; a 9 KiB one 401 before any decoding or key fetch', async () => {
    const jwksFetches = stack.as.requestCount('/jwks');
    const huge = 'a'.repeat(64 * 1024);
    const { response } = await rawExchange(stack.mcpUrl, `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${huge}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
    expect(statusOf(response)).toBe(431);
    // Well-formed but over max_token_bytes, with an unknown kid that would otherwise trigger a key fetch.
    const large = `${b64({ alg: 'RS256', typ: 'at+jwt', kid: 'never-seen' })}.${b64(claims(stack, { pad: 'x'.repeat(9000) }))}.sig`;
    await expectRefused(stack, () => post(stack, { authorization: `Bearer ${large}` }), 401, 'invalid_token');
    expect(stack.logs.findLast((line) => line.msg === 'request')).toMatchObject({ reason: 'token_too_large' });
    expect(stack.as.requestCount('/jwks')).toBe(jwksFetches);
  });

  it('SEC-A07 JWE and nested JWTs get 401 invalid_token; a JSON-serialized JWS cannot even be a bearer token (400)', async () => {
    // A properly signed outer JWS whose payload is another JWT (RFC 7519 §5.2 cty: JWT).
    const key = await importJWK(stack.as.signingKey.privateJwk, 'RS256');
    const nested = await new CompactSign(new TextEncoder().encode(await validToken(stack)))
      .setProtectedHeader({ alg: 'RS256', kid: stack.as.signingKey.kid, typ: 'at+jwt', cty: 'JWT' })
      .sign(key);
    for (const token of ['eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d', nested]) {
      await expectRefused(stack, () => post(stack, { authorization: `Bearer ${token}` }), 401, 'invalid_token');
    }
    // RFC 6750's b64token has no room for JSON: the request is malformed before it is a token at all.
    const json = JSON.stringify({ payload: b64(claims(stack)), signatures: [{ protected: b64({ alg: 'RS256' }), signature: 'x' }] });
    await expectRefused(stack, () => post(stack, { authorization: `Bearer ${json}` }), 400, 'invalid_request');
  });

  it('SEC-A08 the upstream sees no client token anywhere, and exactly one injected credential', async () => {
    const token = await validToken(stack);
    const response = await post(stack, { authorization: `Bearer ${token}` });
    expect(response.status).toBe(200);
    await response.body?.cancel();
    const seen = lastRecorded();
    expect(JSON.stringify(seen.rawHeaders) + seen.url).not.toContain(token);
    expect(JSON.stringify(seen.rawHeaders)).not.toContain(token.split('.')[2]!);
    expect(seen.headers.authorization).toBeUndefined();
    const keys = rawValues(seen.rawHeaders, 'x-api-key');
    expect(keys).toEqual([UPSTREAM_KEY]);
  });

  it('SEC-A09 every case and underscore variant of the credential header is removed before ours is injected', async () => {
    const token = await validToken(stack);
    const { response } = await rawExchange(
      stack.mcpUrl,
      `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nX-Api-Key: client-1\r\nx_api_key: client-2\r\nX-API-KEY: client-3\r\nx-api_key: client-4\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]`,
    );
    expect(statusOf(response)).toBeGreaterThan(0);
    expect(rawValues(lastRecorded().rawHeaders, 'x-api-key')).toEqual([UPSTREAM_KEY]);
  });

  it('SEC-A10 identity headers a client sends are stripped on every route; unauthenticated routes never reach the upstream', async () => {
    const spoof = { 'X-Auth-Subject': 'admin', x_auth_subject: 'admin' };
    const before = stack.mcp.requests.length;
    for (const path of ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource']) {
      const response = await fetch(new URL(path, stack.mcpUrl), { headers: spoof });
      expect(response.status).toBe(200);
    }
    const preflight = await fetch(stack.mcpUrl, { method: 'OPTIONS', headers: { ...spoof, origin: 'http://127.0.0.1', 'access-control-request-method': 'POST' } });
    expect(preflight.status).toBe(204);
    expect(stack.mcp.requests.length).toBe(before);
    const response = await post(stack, { authorization: `Bearer ${await validToken(stack)}`, ...spoof });
    await response.body?.cancel();
    expect(rawValues(lastRecorded().rawHeaders, 'x-auth-subject')).toEqual(['user-1']);
  });

  it('SEC-A11 a sender-constrained token (cnf) is refused as a plain bearer token', async () => {
    const token = await validToken(stack, { cnf: { jkt: '0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I' } });
    await expectRefused(stack, () => post(stack, { authorization: `Bearer ${token}` }), 401, 'invalid_token');
    expect(stack.logs.findLast((line) => line.msg === 'request')).toMatchObject({ reason: 'sender_constrained' });
  });
});

/** Values of one header in raw header lines, matching every case and `_`/`-` spelling of its name. */
function rawValues(rawHeaders: readonly string[], name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase().replaceAll('_', '-') === name) values.push(rawHeaders[i + 1]!);
  return values;
}
