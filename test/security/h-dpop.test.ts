// RFC 9449 DPoP at the resource: sender-constrained tokens from a real authorization server (oidc-provider)
// used by a real, independent DPoP client (oauth4webapi), and every defect of a hand-made proof refused
// with its own reason, a DPoP challenge beside the Bearer one, and nothing reaching the upstream.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAuthorizationServer, type StartedAuthorizationServer } from '../../demo/authorization-server.ts';
import { freePort, SCOPES, waitFor } from '../helpers/stack.ts';
import { b64, expectRefused, INITIALIZE, MCP_HEADERS, post, rawExchange, startStack, statusOf, validToken, type Stack } from './helpers.ts';

type RawConfig = Record<string, unknown>;
type DpopMode = { mode?: 'off' | 'allowed' | 'required'; nonce?: boolean; max_age?: string };

const TIMEOUT_MS = 5000;
const sha256 = (value: string) => createHash('sha256').update(value).digest('base64url');
const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** The stack's config with `tokens.dpop` set (clock tolerance stays the stack's 0s). */
const withDpop =
  (dpop: DpopMode, more: (base: RawConfig) => RawConfig = (base) => base) =>
  (base: RawConfig): RawConfig =>
    more({ ...base, tokens: { ...(base.tokens as object), dpop } });

// ---------------------------------------------------------------------------------------------------
// Hand-made proofs

interface ProofKey {
  readonly alg: string;
  readonly privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
  readonly publicJwk: JWK;
  readonly privateJwk: JWK;
  /** RFC 7638 thumbprint of the public key: what a token bound to this key carries in cnf.jkt. */
  readonly jkt: string;
}

async function proofKey(alg = 'ES256', options: { crv?: string } = {}): Promise<ProofKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...options });
  const publicJwk = await exportJWK(publicKey);
  return { alg, privateKey, publicJwk, privateJwk: await exportJWK(privateKey), jkt: await calculateJwkThumbprint(publicJwk, 'sha256') };
}

interface ProofOptions {
  /** Added to (or, when undefined, removing from) the protected header. */
  readonly header?: Record<string, unknown>;
  /** Added to (or, when undefined, removing from) the claims. */
  readonly claims?: Record<string, unknown>;
  /** Sign with this key instead (the header keeps `key`'s jwk unless `header.jwk` says otherwise). */
  readonly signer?: ProofKey;
}

/** A proof for POST to the stack's MCP URL about `token`, correct unless `options` make it otherwise. */
async function makeProof(stack: Stack, key: ProofKey, token: string | undefined, options: ProofOptions = {}): Promise<string> {
  const claims = dropUndefined({
    jti: randomUUID(),
    htm: 'POST',
    htu: stack.mcpUrl,
    iat: Math.floor(Date.now() / 1000),
    ...(token === undefined ? {} : { ath: sha256(token) }),
    ...options.claims,
  });
  const header = dropUndefined({ alg: key.alg, typ: 'dpop+jwt', jwk: key.publicJwk, ...options.header });
  return new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign((options.signer ?? key).privateKey);
}

function dropUndefined(record: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).filter(([, value]) => value !== undefined));
}

/** An unsigned proof (`alg: none`): jose will not make one. */
function unsignedProof(stack: Stack, key: ProofKey, token: string): string {
  const header = { alg: 'none', typ: 'dpop+jwt', jwk: key.publicJwk };
  const claims = { jti: randomUUID(), htm: 'POST', htu: stack.mcpUrl, iat: Math.floor(Date.now() / 1000), ath: sha256(token) };
  return `${b64(header)}.${b64(claims)}.`;
}

/** POSTs an initialize with `Authorization: DPoP <token>` and these proofs (none, one, or several values). */
function dpopPost(stack: Stack, token: string, proof?: string | string[], path = '/mcp'): Promise<Response> {
  const headers = new Headers({ ...MCP_HEADERS, authorization: `DPoP ${token}` });
  for (const value of proof === undefined ? [] : [proof].flat()) headers.append('dpop', value);
  return fetch(new URL(path, stack.mcpUrl), { method: 'POST', headers, body: INITIALIZE, signal: AbortSignal.timeout(TIMEOUT_MS) });
}

/** A token the stack's authorization server signed, bound to `key`. */
const boundToken = (stack: Stack, key: ProofKey, extra: Record<string, unknown> = {}) => validToken(stack, { cnf: { jkt: key.jkt }, jti: randomUUID(), ...extra });

// ---------------------------------------------------------------------------------------------------
// What a refusal must look like

const metadataUrl = (stack: Stack) => new URL('/.well-known/oauth-protected-resource/mcp', stack.mcpUrl).href;
const algs = (stack: Stack) => stack.config.tokens.dpop.algorithms.join(' ');

/**
 * The WWW-Authenticate value as fetch joins its lines: `Bearer resource_metadata=...` then the DPoP challenge
 * carrying the error (RFC 9449 §7.1), or the DPoP challenge alone when only DPoP tokens are accepted.
 */
function dpopChallenge(stack: Stack, error: string | undefined, dpopOnly = false): RegExp {
  const scope = '(, scope="[^"]*")?';
  const metadata = `resource_metadata="${escape(metadataUrl(stack))}"${scope}`;
  const dpop = `DPoP ${metadata}, algs="${escape(algs(stack))}"${error ? `, error="${error}", error_description="[^"]+"` : ''}`;
  return new RegExp(dpopOnly ? `^${dpop}$` : `^Bearer ${metadata}, ${dpop}$`);
}

async function failureCount(stack: Stack, reason: string): Promise<number> {
  const metrics = await (await fetch(`${stack.warden.adminUrl}/metrics`, { signal: AbortSignal.timeout(TIMEOUT_MS) })).text();
  const pattern = new RegExp(`^mcp_warden_auth_failures_total\\{reason="${reason}"[^}]*\\} (\\d+)$`, 'gm');
  return [...metrics.matchAll(pattern)].reduce((sum, match) => sum + Number(match[1]), 0);
}

const accessLogs = (stack: Stack) => stack.logs.filter((line) => line.msg === 'request');

/** The access log line of the next request, once written (bounded wait). */
async function nextAccessLog(stack: Stack, countBefore: number): Promise<Record<string, unknown>> {
  await waitFor(() => accessLogs(stack).length > countBefore, 'the access log line', 2000);
  return accessLogs(stack).at(-1)!;
}

/**
 * Runs `attempt` and checks a DPoP refusal: 401, the challenge with its error, the JSON body's error, the
 * reason in the access log and in mcp_warden_auth_failures_total, no token echoed, nothing upstream.
 */
async function expectDpopRefused(
  stack: Stack,
  attempt: () => Promise<Response>,
  reason: string,
  error: 'invalid_dpop_proof' | 'use_dpop_nonce' | 'invalid_token' = 'invalid_dpop_proof',
  dpopOnly = false,
): Promise<Response> {
  const upstreamBefore = stack.mcp.requests.length;
  const failuresBefore = await failureCount(stack, reason);
  const logsBefore = accessLogs(stack).length;
  const response = await attempt();
  expect(response.status, reason).toBe(401);
  expect(response.headers.get('www-authenticate'), reason).toMatch(dpopChallenge(stack, error, dpopOnly));
  const body = await response.text();
  expect(body).not.toMatch(/eyJ[A-Za-z0-9_-]{8,}/);
  expect(JSON.parse(body), reason).toMatchObject({ error });
  expect(await nextAccessLog(stack, logsBefore), reason).toMatchObject({ reason });
  expect(await failureCount(stack, reason), `mcp_warden_auth_failures_total{reason="${reason}"}`).toBe(failuresBefore + 1);
  expect(stack.mcp.requests.length, `${reason}: the upstream received nothing`).toBe(upstreamBefore);
  return response;
}

/** The last request the upstream received carries neither the client's token nor a DPoP proof or header. */
function expectUpstreamClean(stack: Stack, secrets: readonly string[]): void {
  const seen = stack.mcp.requests.at(-1)!;
  const names = seen.rawHeaders.filter((_, index) => index % 2 === 0).map((name) => name.toLowerCase().replaceAll('_', '-'));
  expect(names).not.toContain('dpop');
  expect(names).not.toContain('authorization');
  const text = JSON.stringify(seen.rawHeaders) + seen.url;
  for (const secret of secrets) expect(text).not.toContain(secret.split('.').at(-1)!);
}

async function protectedResourceMetadata(stack: Stack): Promise<Record<string, unknown>> {
  const response = await fetch(metadataUrl(stack), { signal: AbortSignal.timeout(TIMEOUT_MS) });
  expect(response.status).toBe(200);
  return (await response.json()) as Record<string, unknown>;
}

async function expectOk(response: Response): Promise<void> {
  const text = await response.text();
  expect(response.status, text.slice(0, 300)).toBe(200);
}

// ---------------------------------------------------------------------------------------------------
// A real DPoP client: oauth4webapi against oidc-provider, then through mcp-warden

interface InteropStack {
  readonly stack: Stack;
  readonly dpopAs: StartedAuthorizationServer;
  close(): Promise<void>;
}

/**
 * A stack whose warden also trusts a second oidc-provider started with the demo's `dpop` option, issuing
 * tokens (JWT, or opaque ones checked by introspection) for the stack's MCP URL.
 */
async function startInteropStack(
  dpop: boolean | { nonce?: boolean },
  wardenDpop: DpopMode,
  format: 'jwt' | 'opaque' = 'jwt',
): Promise<InteropStack> {
  const port = await freePort();
  const mcpUrl = `http://127.0.0.1:${port}/mcp`;
  const dpopAs = await startAuthorizationServer({ resources: { [mcpUrl]: { scopes: SCOPES, format } }, dpop });
  try {
    const secretName = `WARDEN_TEST_H_INTROSPECTION_${port}`;
    process.env[secretName] = dpopAs.introspectionClient.client_secret;
    const issuer =
      format === 'jwt'
        ? { issuer: dpopAs.issuer }
        : { issuer: dpopAs.issuer, verify_jwt: false, introspection: { client_id: dpopAs.introspectionClient.client_id, client_secret: `\${env:${secretName}}` } };
    const stack = await startStack(
      withDpop(wardenDpop, (base) => ({ ...base, authorization_servers: [...(base.authorization_servers as object[]), issuer] })),
      { port },
    );
    return {
      stack,
      dpopAs,
      async close() {
        await stack.close();
        await dpopAs.close();
      },
    };
  } catch (error) {
    await dpopAs.close();
    throw error;
  }
}

interface DpopClient {
  readonly dpop: oauth.DPoPHandle;
  /** Every DPoP proof this client sent, to the AS and to the resource. */
  readonly proofs: string[];
  /** Token requests answered use_dpop_nonce (then retried with the nonce). */
  tokenNonceRetries: number;
  token(resource: string): Promise<oauth.TokenEndpointResponse>;
  call(stack: Stack, token: string): Promise<Response>;
}

/** Registers a DPoP-bound client_credentials client at `issuer` and wraps oauth4webapi around it. */
async function dpopClient(issuer: string): Promise<DpopClient> {
  const proofs: string[] = [];
  const recordingFetch: typeof fetch = (input, init) => {
    const proof = new Headers(init?.headers).get('dpop');
    if (proof) proofs.push(proof);
    return fetch(input, init);
  };
  const options = { [oauth.allowInsecureRequests]: true, [oauth.customFetch]: recordingFetch, signal: AbortSignal.timeout(TIMEOUT_MS) };
  const issuerUrl = new URL(issuer);
  const as = await oauth.processDiscoveryResponse(issuerUrl, await oauth.discoveryRequest(issuerUrl, { ...options, algorithm: 'oidc' }));
  expect(as.dpop_signing_alg_values_supported).toContain('ES256');
  const registration = await fetch(as.registration_endpoint!, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: 'h-dpop oauth4webapi',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      dpop_bound_access_tokens: true,
    }),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  const registered = (await registration.json()) as { client_id?: string; client_secret?: string; error_description?: string };
  if (!registered.client_id || !registered.client_secret) throw new Error(`registration failed: ${JSON.stringify(registered)}`);
  const client: oauth.Client = { client_id: registered.client_id, dpop_bound_access_tokens: true };
  const clientAuth = oauth.ClientSecretBasic(registered.client_secret);
  const dpop = oauth.DPoP(client, await oauth.generateKeyPair('ES256'));
  const self: DpopClient = {
    dpop,
    proofs,
    tokenNonceRetries: 0,
    async token(resource) {
      const request = async () =>
        oauth.processClientCredentialsResponse(
          as,
          client,
          await oauth.clientCredentialsGrantRequest(as, client, clientAuth, { resource, scope: 'mcp:read' }, { ...options, signal: AbortSignal.timeout(TIMEOUT_MS), DPoP: dpop }),
        );
      try {
        return await request();
      } catch (error) {
        if (!oauth.isDPoPNonceError(error)) throw error;
        // The handle cached the AS's DPoP-Nonce: the next proof carries it.
        self.tokenNonceRetries += 1;
        return request();
      }
    },
    call(stack, token) {
      return oauth.protectedResourceRequest(token, 'POST', new URL(stack.mcpUrl), new Headers(MCP_HEADERS), INITIALIZE, {
        ...options,
        signal: AbortSignal.timeout(TIMEOUT_MS),
        DPoP: dpop,
      });
    },
  };
  return self;
}

const payloadOf = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;

describe('H. DPoP (RFC 9449) with oidc-provider and oauth4webapi', () => {
  let interop: InteropStack;
  beforeAll(async () => {
    interop = await startInteropStack(true, { mode: 'allowed' });
  });
  afterAll(async () => {
    await interop?.close();
  });

  it('SEC-H01 a DPoP-bound at+jwt from oidc-provider gets 200 with oauth4webapi proofs; as Bearer 401 sender_constrained; the upstream sees neither token nor proof', async () => {
    const { stack, dpopAs } = interop;
    const client = await dpopClient(dpopAs.issuer);
    const tokens = await client.token(stack.mcpUrl);
    expect(tokens.token_type.toLowerCase()).toBe('dpop');
    const token = tokens.access_token;
    const claims = payloadOf(token);
    expect(claims).toMatchObject({ iss: dpopAs.issuer, aud: stack.mcpUrl, cnf: { jkt: await client.dpop.calculateThumbprint() } });

    const before = stack.mcp.requests.length;
    const response = await client.call(stack, token);
    await expectOk(response);
    expect(stack.mcp.requests.length).toBe(before + 1);
    const proof = client.proofs.at(-1)!;
    expect(payloadOf(proof)).toMatchObject({ htm: 'POST', htu: stack.mcpUrl, ath: sha256(token) });
    expectUpstreamClean(stack, [token, proof]);

    // A second call makes a new proof (new jti) and passes too.
    await expectOk(await client.call(stack, token));
    expectUpstreamClean(stack, [token, client.proofs.at(-1)!]);

    await expectRefused(stack, () => post(stack, { authorization: `Bearer ${token}` }), 401, 'invalid_token');
    expect(stack.logs.findLast((line) => line.msg === 'request')).toMatchObject({ reason: 'sender_constrained' });

    // oauth4webapi's own proof, sent again verbatim, is a replay.
    await expectDpopRefused(stack, () => dpopPost(stack, token, proof), 'dpop_replayed');
  });

  it('SEC-H02 the protected resource metadata lists the proof algorithms, and does not require DPoP in allowed mode', async () => {
    const metadata = await protectedResourceMetadata(interop.stack);
    expect(metadata.dpop_signing_alg_values_supported).toEqual(interop.stack.config.tokens.dpop.algorithms);
    expect(metadata.dpop_bound_access_tokens_required).not.toBe(true);
  });

  it('SEC-H03 a plain bearer token still passes in allowed mode, with its usual challenges', async () => {
    const { stack } = interop;
    const token = await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:read' });
    await expectOk(await post(stack, { authorization: `Bearer ${token}` }));
    expectUpstreamClean(stack, [token]);
    // No credentials at all: the Bearer challenge as before (the DPoP one goes only with DPoP refusals).
    await expectRefused(stack, () => post(stack), 401);
  });
});

describe('H. DPoP with opaque tokens: cnf from introspection', () => {
  let interop: InteropStack;
  beforeAll(async () => {
    interop = await startInteropStack(true, { mode: 'allowed' }, 'opaque');
  });
  afterAll(async () => {
    await interop?.close();
  });

  it('SEC-H04 a DPoP-bound opaque token (introspection answers token_type DPoP, cnf.jkt) gets 200 with its proof; as Bearer 401 sender_constrained', async () => {
    const { stack, dpopAs } = interop;
    const client = await dpopClient(dpopAs.issuer);
    const tokens = await client.token(stack.mcpUrl);
    expect(tokens.token_type.toLowerCase()).toBe('dpop');
    const token = tokens.access_token;
    expect(token).not.toMatch(/^eyJ/);
    const before = stack.mcp.requests.length;
    await expectOk(await client.call(stack, token));
    expect(stack.mcp.requests.length).toBe(before + 1);
    expectUpstreamClean(stack, [token, client.proofs.at(-1)!]);
    await expectRefused(stack, () => post(stack, { authorization: `Bearer ${token}` }), 401, 'invalid_token');
    expect(stack.logs.findLast((line) => line.msg === 'request')).toMatchObject({ reason: 'sender_constrained' });
    // Bound by introspection's cnf: another key's proof is refused.
    const other = await proofKey();
    await expectDpopRefused(stack, async () => dpopPost(stack, token, await makeProof(stack, other, token)), 'dpop_key_mismatch');
  });
});

describe('H. each defect of a DPoP proof has its own refusal', () => {
  let stack: Stack;
  let key: ProofKey;
  let token: string;
  beforeAll(async () => {
    stack = await startStack(withDpop({ mode: 'allowed' }));
    key = await proofKey();
    token = await boundToken(stack, key);
  });
  afterAll(async () => {
    await stack?.close();
  });

  const proof = (options: ProofOptions = {}, forToken: string = token) => makeProof(stack, key, forToken, options);
  const refused = (reason: string, makeProofValue: () => Promise<string | string[] | undefined>, error?: 'invalid_dpop_proof' | 'invalid_token') =>
    expectDpopRefused(stack, async () => dpopPost(stack, token, await makeProofValue()), reason, error);

  it('SEC-H10 a correct hand-made proof passes (ES256, RS256, EdDSA keys), and the upstream sees neither token nor proof', async () => {
    for (const [alg, options] of [['ES256', {}], ['RS256', {}], ['EdDSA', { crv: 'Ed25519' }]] as const) {
      const own = await proofKey(alg, options);
      const ownToken = await boundToken(stack, own);
      const ownProof = await makeProof(stack, own, ownToken);
      const before = stack.mcp.requests.length;
      await expectOk(await dpopPost(stack, ownToken, ownProof));
      expect(stack.mcp.requests.length, alg).toBe(before + 1);
      expectUpstreamClean(stack, [ownToken, ownProof]);
    }
    // htu compares as a URL: scheme and host case do not matter.
    await expectOk(await dpopPost(stack, token, await proof({ claims: { htu: stack.mcpUrl.replace('http://', 'HTTP://') } })));
  });

  it('SEC-H11 no DPoP header: dpop_proof_missing, with two WWW-Authenticate lines on the wire', async () => {
    await refused('dpop_proof_missing', async () => undefined);
    const { response } = await rawExchange(
      stack.mcpUrl,
      `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: DPoP ${token}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: ${INITIALIZE.length}\r\nConnection: close\r\n\r\n${INITIALIZE}`,
    );
    expect(statusOf(response)).toBe(401);
    const challenges = response.split('\r\n\r\n')[0]!.split('\r\n').filter((line) => /^www-authenticate:/i.test(line));
    expect(challenges).toHaveLength(2);
    expect(challenges[0]).toMatch(/^www-authenticate: Bearer resource_metadata="[^"]+"(, scope="[^"]*")?$/i);
    expect(challenges[1]).toMatch(/^www-authenticate: DPoP resource_metadata="[^"]+".*, algs="[^"]+", error="invalid_dpop_proof", error_description="[^"]+"$/i);
  });

  it('SEC-H12 two DPoP header lines: dpop_duplicate_proof, even when both are valid', async () => {
    const upstreamBefore = stack.mcp.requests.length;
    const failuresBefore = await failureCount(stack, 'dpop_duplicate_proof');
    const logsBefore = accessLogs(stack).length;
    const [first, second] = [await proof(), await proof()];
    const { response } = await rawExchange(
      stack.mcpUrl,
      `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: DPoP ${token}\r\nDPoP: ${first}\r\ndpop: ${second}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: ${INITIALIZE.length}\r\nConnection: close\r\n\r\n${INITIALIZE}`,
    );
    expect(statusOf(response)).toBe(401);
    expect(response).toContain('error="invalid_dpop_proof"');
    expect(await nextAccessLog(stack, logsBefore)).toMatchObject({ reason: 'dpop_duplicate_proof' });
    expect(await failureCount(stack, 'dpop_duplicate_proof')).toBe(failuresBefore + 1);
    expect(stack.mcp.requests.length).toBe(upstreamBefore);
    // The same two values folded into one line by the client (fetch joins them with ", "): DPoP is no list
    // field (RFC 9110 §5.3), so either reading holds, as long as it is a proof refusal and nothing goes up.
    const folded = await dpopPost(stack, token, [await proof(), await proof()]);
    expect(folded.status).toBe(401);
    expect(folded.headers.get('www-authenticate')).toMatch(dpopChallenge(stack, 'invalid_dpop_proof'));
    await folded.body?.cancel();
    expect(['dpop_duplicate_proof', 'dpop_invalid_proof']).toContain((await nextAccessLog(stack, logsBefore + 1)).reason);
    expect(stack.mcp.requests.length).toBe(upstreamBefore);
  });

  it('SEC-H13 a proof that is not a valid dpop+jwt: dpop_invalid_proof', async () => {
    const other = await proofKey();
    const tampered = async () => {
      const [header, payload, signature] = (await proof()).split('.');
      return `${header}.${payload}.${signature!.slice(0, -4)}${signature!.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
    };
    const cases: Array<[string, () => Promise<string>]> = [
      ['garbage', async () => 'not-a-jws'],
      ['typ JWT', () => proof({ header: { typ: 'JWT' } })],
      ['no typ', () => proof({ header: { typ: undefined } })],
      ['no jwk', () => proof({ header: { jwk: undefined } })],
      ['tampered signature', tampered],
      ['signed by another key than its jwk', () => proof({ signer: other })],
      ['no jti', () => proof({ claims: { jti: undefined } })],
      ['no iat', () => proof({ claims: { iat: undefined } })],
    ];
    for (const [what, make] of cases) {
      await refused('dpop_invalid_proof', make).catch((error: Error) => {
        throw new Error(`${what}: ${error.message}`);
      });
    }
  });

  it('SEC-H14 alg none, HS256 and an algorithm outside the allowlist: dpop_algorithm', async () => {
    await refused('dpop_algorithm', async () => unsignedProof(stack, key, token));
    await refused('dpop_algorithm', () =>
      new SignJWT({ jti: randomUUID(), htm: 'POST', htu: stack.mcpUrl, iat: Math.floor(Date.now() / 1000), ath: sha256(token) })
        .setProtectedHeader({ alg: 'HS256', typ: 'dpop+jwt', jwk: key.publicJwk })
        .sign(randomBytes(32)),
    );
    expect(stack.config.tokens.dpop.algorithms).not.toContain('ES384');
    const es384 = await proofKey('ES384');
    const es384Token = await boundToken(stack, es384);
    await expectDpopRefused(stack, async () => dpopPost(stack, es384Token, await makeProof(stack, es384, es384Token)), 'dpop_algorithm');
  });

  it('SEC-H15 a jwk with private members: dpop_private_key', async () => {
    await refused('dpop_private_key', () => proof({ header: { jwk: key.privateJwk } }));
    await refused('dpop_private_key', () => proof({ header: { jwk: { ...key.publicJwk, d: key.privateJwk.d } } }));
  });

  it('SEC-H16 htm of another method: dpop_method_mismatch', async () => {
    for (const htm of ['GET', 'DELETE', 'post']) await refused('dpop_method_mismatch', () => proof({ claims: { htm } }));
    await refused('dpop_method_mismatch', () => proof({ claims: { htm: undefined } }));
  });

  it('SEC-H17 htu of another path, another host, or with a query or fragment: dpop_url_mismatch', async () => {
    const { origin, port } = new URL(stack.mcpUrl);
    for (const htu of [
      `${origin}/other`,
      `${origin}/mcp/`,
      `http://localhost:${port}/mcp`,
      `http://evil.example/mcp`,
      `https://127.0.0.1:${port}/mcp`,
      `${stack.mcpUrl}?x=1`,
      `${stack.mcpUrl}?`,
      `${stack.mcpUrl}#frag`,
      'mcp',
    ]) {
      await refused('dpop_url_mismatch', () => proof({ claims: { htu } })).catch((error: Error) => {
        throw new Error(`${htu}: ${error.message}`);
      });
    }
    await refused('dpop_url_mismatch', () => proof({ claims: { htu: undefined } }));
    // A proof for the stack's URL sent to another path of the same origin.
    await expectDpopRefused(stack, async () => dpopPost(stack, token, await proof(), '/mcp/other'), 'dpop_url_mismatch');
  });

  it('SEC-H18 the expected htu comes from resource.url, never from the Host header', async () => {
    const upstreamBefore = stack.mcp.requests.length;
    const logsBefore = accessLogs(stack).length;
    const spoofed = await proof({ claims: { htu: 'http://evil.example/mcp' } });
    const { response } = await rawExchange(
      stack.mcpUrl,
      `POST /mcp HTTP/1.1\r\nHost: evil.example\r\nAuthorization: DPoP ${token}\r\nDPoP: ${spoofed}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: ${INITIALIZE.length}\r\nConnection: close\r\n\r\n${INITIALIZE}`,
    );
    const status = statusOf(response);
    expect([401, 421]).toContain(status);
    if (status === 401) expect(await nextAccessLog(stack, logsBefore)).toMatchObject({ reason: 'dpop_url_mismatch' });
    expect(stack.mcp.requests.length).toBe(upstreamBefore);
  });

  it('SEC-H19 an iat older than max_age or in the future: dpop_stale', async () => {
    const now = Math.floor(Date.now() / 1000);
    for (const iat of [now - 120, now - 3600, now + 120, now + 3600]) await refused('dpop_stale', () => proof({ claims: { iat } }));
  });

  it('SEC-H20 the same proof twice: the first passes, the second is dpop_replayed', async () => {
    const once = await proof();
    await expectOk(await dpopPost(stack, token, once));
    await expectDpopRefused(stack, () => dpopPost(stack, token, once), 'dpop_replayed');
    // A new proof with the replayed jti is a replay too.
    await refused('dpop_replayed', () => proof({ claims: { jti: payloadOf(once).jti } }));
  });

  it('SEC-H21 a proof refused for a defect does not burn its jti', async () => {
    const jti = randomUUID();
    await refused('dpop_method_mismatch', () => proof({ claims: { jti, htm: 'GET' } }));
    await expectOk(await dpopPost(stack, token, await proof({ claims: { jti } })));
  });

  it('SEC-H22 ath of another token or none: dpop_token_hash_mismatch', async () => {
    const otherToken = await boundToken(stack, key);
    await refused('dpop_token_hash_mismatch', () => proof({}, otherToken));
    await refused('dpop_token_hash_mismatch', () => proof({ claims: { ath: undefined } }));
    await refused('dpop_token_hash_mismatch', () => proof({ claims: { ath: createHash('sha256').update(token).digest('base64') } }));
  });

  it('SEC-H23 a proof by another key than the token cnf.jkt: dpop_key_mismatch', async () => {
    const other = await proofKey();
    await expectDpopRefused(stack, async () => dpopPost(stack, token, await makeProof(stack, other, token)), 'dpop_key_mismatch');
    // The thumbprint of the right key, spelled otherwise (standard base64), is not the thumbprint.
    const misspelled = await validToken(stack, { cnf: { jkt: Buffer.from(key.jkt, 'base64url').toString('base64') }, jti: randomUUID() });
    await expectDpopRefused(stack, async () => dpopPost(stack, misspelled, await makeProof(stack, key, misspelled)), 'dpop_key_mismatch');
  });

  it('SEC-H24 the DPoP scheme with a token bound to no key: dpop_token_unbound (error invalid_token)', async () => {
    const bearer = await validToken(stack, { jti: randomUUID() });
    await expectDpopRefused(stack, async () => dpopPost(stack, bearer, await makeProof(stack, key, bearer)), 'dpop_token_unbound', 'invalid_token');
  });

  it('SEC-H25 a DPoP-bound token as Bearer, even with a valid proof beside it: sender_constrained', async () => {
    await expectRefused(stack, () => post(stack, { authorization: `Bearer ${token}` }), 401, 'invalid_token');
    expect(stack.logs.findLast((line) => line.msg === 'request')).toMatchObject({ reason: 'sender_constrained' });
    await expectRefused(stack, async () => post(stack, { authorization: `Bearer ${token}`, dpop: await proof() }), 401, 'invalid_token');
    expect(stack.logs.findLast((line) => line.msg === 'request')).toMatchObject({ reason: 'sender_constrained' });
  });
});

describe('H. DPoP nonces (tokens.dpop.nonce: true)', () => {
  let interop: InteropStack;
  beforeAll(async () => {
    // The authorization server asks for its own nonces too: oauth4webapi keeps one per origin.
    interop = await startInteropStack({ nonce: true }, { mode: 'allowed', nonce: true });
  });
  afterAll(async () => {
    await interop?.close();
  });

  it('SEC-H30 oauth4webapi gets use_dpop_nonce with DPoP-Nonce first, and its retry with the nonce passes', async () => {
    const { stack, dpopAs } = interop;
    const client = await dpopClient(dpopAs.issuer);
    const token = (await client.token(stack.mcpUrl)).access_token;
    expect(client.tokenNonceRetries, 'the AS asked for its nonce').toBe(1);

    const upstreamBefore = stack.mcp.requests.length;
    const failuresBefore = await failureCount(stack, 'dpop_nonce_required');
    const logsBefore = accessLogs(stack).length;
    const first = await client.call(stack, token).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(oauth.isDPoPNonceError(first), String(first)).toBe(true);
    const challenged = (first as oauth.WWWAuthenticateChallengeError).response;
    expect(challenged.status).toBe(401);
    expect(challenged.headers.get('dpop-nonce')).toMatch(/^[A-Za-z0-9_-]{16,}$/);
    expect(challenged.headers.get('www-authenticate')).toMatch(dpopChallenge(stack, 'use_dpop_nonce'));
    expect(await nextAccessLog(stack, logsBefore)).toMatchObject({ reason: 'dpop_nonce_required' });
    expect(await failureCount(stack, 'dpop_nonce_required')).toBe(failuresBefore + 1);
    expect(stack.mcp.requests.length).toBe(upstreamBefore);

    await expectOk(await client.call(stack, token));
    expect(payloadOf(client.proofs.at(-1)!).nonce).toBe(challenged.headers.get('dpop-nonce'));
    expect(stack.mcp.requests.length).toBe(upstreamBefore + 1);
    expectUpstreamClean(stack, [token, client.proofs.at(-1)!]);
    // The nonce stays good for the next call.
    await expectOk(await client.call(stack, token));
  });

  it('SEC-H31 by hand: no nonce or a made-up one is dpop_nonce_required with a DPoP-Nonce; the nonce given passes', async () => {
    const { stack } = interop;
    const key = await proofKey();
    const token = await boundToken(stack, key);
    const response = await expectDpopRefused(stack, async () => dpopPost(stack, token, await makeProof(stack, key, token)), 'dpop_nonce_required', 'use_dpop_nonce');
    const nonce = response.headers.get('dpop-nonce');
    expect(nonce).toBeTruthy();
    await expectDpopRefused(
      stack,
      async () => dpopPost(stack, token, await makeProof(stack, key, token, { claims: { nonce: 'made-up-nonce' } })),
      'dpop_nonce_required',
      'use_dpop_nonce',
    );
    await expectOk(await dpopPost(stack, token, await makeProof(stack, key, token, { claims: { nonce } })));
    expectUpstreamClean(stack, [token]);
  });
});

describe('H. tokens.dpop.mode: required', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack(withDpop({ mode: 'required' }));
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('SEC-H40 a plain bearer token is dpop_required, with the DPoP challenge alone', async () => {
    const bearer = await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:read' });
    await expectDpopRefused(stack, () => post(stack, { authorization: `Bearer ${bearer}` }), 'dpop_required', 'invalid_token', true);
  });

  it('SEC-H41 no credentials: 401 with the DPoP challenge alone; a correct DPoP request passes', async () => {
    const upstreamBefore = stack.mcp.requests.length;
    const response = await post(stack);
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toMatch(dpopChallenge(stack, undefined, true));
    await response.body?.cancel();
    expect(stack.mcp.requests.length).toBe(upstreamBefore);

    const key = await proofKey();
    const token = await boundToken(stack, key);
    await expectOk(await dpopPost(stack, token, await makeProof(stack, key, token)));
    expectUpstreamClean(stack, [token]);
    // Sent as Bearer, the bound token is refused all the same.
    const before = stack.mcp.requests.length;
    const asBearer = await post(stack, { authorization: `Bearer ${token}` });
    expect(asBearer.status).toBe(401);
    await asBearer.body?.cancel();
    expect(stack.mcp.requests.length).toBe(before);
  });

  it('SEC-H42 the protected resource metadata says dpop_bound_access_tokens_required', async () => {
    const metadata = await protectedResourceMetadata(stack);
    expect(metadata.dpop_bound_access_tokens_required).toBe(true);
    expect(metadata.dpop_signing_alg_values_supported).toEqual(stack.config.tokens.dpop.algorithms);
  });
});

describe('H. tokens.dpop.mode: off', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack(withDpop({ mode: 'off' }));
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('SEC-H50 a DPoP-bound token is sender_constrained as Bearer, and the DPoP scheme is missing_token with a bare Bearer challenge', async () => {
    const key = await proofKey();
    const token = await boundToken(stack, key);
    await expectRefused(stack, () => post(stack, { authorization: `Bearer ${token}` }), 401, 'invalid_token');
    expect(stack.logs.findLast((line) => line.msg === 'request')).toMatchObject({ reason: 'sender_constrained' });
    const logsBefore = accessLogs(stack).length;
    const response = await expectRefused(stack, async () => dpopPost(stack, token, await makeProof(stack, key, token)), 401);
    expect(response.headers.get('dpop-nonce')).toBeNull();
    expect(await nextAccessLog(stack, logsBefore)).toMatchObject({ reason: 'missing_token' });
    // Plain bearer tokens are unaffected.
    await expectOk(await post(stack, { authorization: `Bearer ${await validToken(stack, { jti: randomUUID() })}` }));
  });

  it('SEC-H51 the protected resource metadata says nothing of DPoP', async () => {
    const metadata = await protectedResourceMetadata(stack);
    expect(metadata).not.toHaveProperty('dpop_signing_alg_values_supported');
    expect(metadata).not.toHaveProperty('dpop_bound_access_tokens_required');
  });
});
