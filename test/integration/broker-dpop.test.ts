import { calculateJwkThumbprint, decodeJwt, exportJWK, SignJWT } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerConsent, REDIRECT_URI, walkAuthorizationRedirects } from '../../demo/oauth-client.ts';
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.ts';
import { INITIALIZE, MCP_HEADERS } from '../helpers/stack.ts';

type KeyPair = Awaited<ReturnType<typeof oauth.generateKeyPair>>;

/**
 * Issue 21 (broker): a client that sends a DPoP proof to the broker's token endpoint (RFC 9449 §5) gets
 * tokens bound to the proof's key. The client is oauth4webapi, an independent DPoP implementation.
 */
describe('broker token endpoint with DPoP (RFC 9449 §5)', () => {
  let stack: BrokerStack;
  let as: oauth.AuthorizationServer;
  const insecure = { [oauth.allowInsecureRequests]: true } as const;

  beforeAll(async () => {
    stack = await startBrokerStack();
    const issuer = new URL(stack.issuer);
    as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }));
  });
  afterAll(async () => {
    await stack?.close();
  });

  interface Registered {
    readonly client: oauth.Client;
    readonly auth: oauth.ClientAuth;
  }

  const register = async (method: 'none' | 'client_secret_basic'): Promise<Registered> => {
    const response = await fetch(`${stack.issuer}/oauth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: 'dpop', redirect_uris: [REDIRECT_URI], grant_types: ['authorization_code', 'refresh_token'], token_endpoint_auth_method: method }),
    });
    expect(response.status).toBe(201);
    const body = (await response.json()) as { client_id: string; client_secret?: string };
    return { client: { client_id: body.client_id, token_endpoint_auth_method: method }, auth: method === 'none' ? oauth.None() : oauth.ClientSecretBasic(body.client_secret!) };
  };

  const thumbprintOf = async (keyPair: KeyPair) => calculateJwkThumbprint(await exportJWK(keyPair.publicKey), 'sha256');

  /** The whole code flow with PKCE; the code is exchanged with a proof of `keyPair` (or none). */
  const authorize = async ({ client, auth }: Registered, keyPair: KeyPair | undefined) => {
    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const url = new URL(as.authorization_endpoint!);
    const search = { response_type: 'code', client_id: client.client_id, redirect_uri: REDIRECT_URI, code_challenge: await oauth.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state, resource: stack.mcpUrl, scope: 'mcp:read' };
    for (const [name, value] of Object.entries(search)) url.searchParams.set(name, value);
    const callback = await walkAuthorizationRedirects(url, REDIRECT_URI, { cookies: new Map(), onPage: answerConsent('approve') });
    const params = oauth.validateAuthResponse(as, client, callback, state);
    const DPoP = keyPair && oauth.DPoP(client, keyPair);
    const response = await oauth.authorizationCodeGrantRequest(as, client, auth, params, REDIRECT_URI, verifier, { ...insecure, DPoP, additionalParameters: { resource: stack.mcpUrl } });
    return oauth.processAuthorizationCodeResponse(as, client, response);
  };

  const refresh = async ({ client, auth }: Registered, refreshToken: string, keyPair: KeyPair | undefined) => {
    const DPoP = keyPair && oauth.DPoP(client, keyPair);
    const response = await oauth.refreshTokenGrantRequest(as, client, auth, refreshToken, { ...insecure, DPoP, additionalParameters: { resource: stack.mcpUrl } });
    return oauth.processRefreshTokenResponse(as, client, response);
  };

  /** The refusal a token request got, as oauth4webapi reports it. */
  const refusal = async (attempt: Promise<unknown>) => {
    const error = await attempt.then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(oauth.ResponseBodyError);
    return error as oauth.ResponseBodyError;
  };

  /** The MCP endpoint's status for a DPoP request (oauth4webapi throws on a 401 challenge: its status is the answer). */
  const callWithProof = async (client: oauth.Client, keyPair: KeyPair, accessToken: string) => {
    try {
      const response = await oauth.protectedResourceRequest(accessToken, 'POST', new URL(stack.mcpUrl), new Headers(MCP_HEADERS), INITIALIZE, { ...insecure, DPoP: oauth.DPoP(client, keyPair) });
      await response.body?.cancel();
      return response.status;
    } catch (error) {
      if (!(error instanceof oauth.WWWAuthenticateChallengeError)) throw error;
      expect(error.cause.some((challenge) => challenge.scheme === 'dpop' && challenge.parameters.error === 'invalid_dpop_proof')).toBe(true);
      return error.status;
    }
  };
  const callAsBearer = async (accessToken: string) => {
    const response = await fetch(stack.mcpUrl, { method: 'POST', headers: { ...MCP_HEADERS, authorization: `Bearer ${accessToken}` }, body: INITIALIZE });
    await response.body?.cancel();
    return response.status;
  };

  const postToken = (form: Record<string, string>, headers: Record<string, string>) =>
    fetch(`${stack.issuer}/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(form) });

  it('the metadata lists the DPoP proof algorithms', () => {
    expect(as.dpop_signing_alg_values_supported).toEqual(expect.arrayContaining(['ES256', 'RS256']));
  });

  it('a browser client may send a proof to the token endpoint and read DPoP-Nonce (CORS)', async () => {
    const preflight = await fetch(as.token_endpoint!, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'dpop, content-type' } });
    expect(preflight.status).toBe(204);
    expect((preflight.headers.get('access-control-allow-headers') ?? '').toLowerCase().split(/\s*,\s*/)).toContain('dpop');
    expect(preflight.headers.get('access-control-expose-headers')).toMatch(/DPoP-Nonce/);
  });

  it('a code exchanged with a proof gives a DPoP token bound to that key: usable with a proof, refused as Bearer', async () => {
    const registered = await register('none');
    const keyPair = await oauth.generateKeyPair('ES256');
    const tokens = await authorize(registered, keyPair);
    expect(tokens.token_type).toBe('dpop');
    expect(decodeJwt(tokens.access_token)).toMatchObject({ cnf: { jkt: await thumbprintOf(keyPair) }, aud: stack.mcpUrl, scope: 'mcp:read' });
    expect(await callWithProof(registered.client, keyPair, tokens.access_token)).toBe(200);
    expect(await callAsBearer(tokens.access_token)).toBe(401);
    expect(await callWithProof(registered.client, await oauth.generateKeyPair('ES256'), tokens.access_token)).toBe(401);
  });

  it("a public client's refresh token is bound: another key or no proof gets invalid_dpop_proof and spends nothing; the right key refreshes", async () => {
    const registered = await register('none');
    const keyPair = await oauth.generateKeyPair('ES256');
    const tokens = await authorize(registered, keyPair);
    const jkt = await thumbprintOf(keyPair);

    const otherKey = await refusal(refresh(registered, tokens.refresh_token!, await oauth.generateKeyPair('ES256')));
    expect(otherKey.status).toBe(400);
    expect(otherKey.error).toBe('invalid_dpop_proof');
    const noProof = await refusal(refresh(registered, tokens.refresh_token!, undefined));
    expect(noProof.status).toBe(400);
    expect(noProof.error).toBe('invalid_dpop_proof');
    // The refusals revoked nothing: the access token still works.
    expect(await callWithProof(registered.client, keyPair, tokens.access_token)).toBe(200);

    const refreshed = await refresh(registered, tokens.refresh_token!, keyPair);
    expect(refreshed.token_type).toBe('dpop');
    expect(refreshed.refresh_token).toBeTruthy();
    expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
    expect(decodeJwt(refreshed.access_token)).toMatchObject({ cnf: { jkt } });
    expect(await callWithProof(registered.client, keyPair, refreshed.access_token)).toBe(200);
    // The rotated refresh token stays bound to the same key.
    const rotatedOtherKey = await refusal(refresh(registered, refreshed.refresh_token!, await oauth.generateKeyPair('ES256')));
    expect(rotatedOtherKey.error).toBe('invalid_dpop_proof');
    const again = await refresh(registered, refreshed.refresh_token!, keyPair);
    expect(decodeJwt(again.access_token)).toMatchObject({ cnf: { jkt } });
  });

  it("a confidential client's refresh binds the new access token to the key presented on refresh", async () => {
    const registered = await register('client_secret_basic');
    const first = await oauth.generateKeyPair('ES256');
    const tokens = await authorize(registered, first);
    expect(decodeJwt(tokens.access_token)).toMatchObject({ cnf: { jkt: await thumbprintOf(first) } });
    const second = await oauth.generateKeyPair('ES256');
    const refreshed = await refresh(registered, tokens.refresh_token!, second);
    expect(refreshed.token_type).toBe('dpop');
    expect(decodeJwt(refreshed.access_token)).toMatchObject({ cnf: { jkt: await thumbprintOf(second) } });
    expect(await callWithProof(registered.client, second, refreshed.access_token)).toBe(200);
  });

  it('without a proof the tokens stay Bearer tokens', async () => {
    const registered = await register('none');
    const tokens = await authorize(registered, undefined);
    expect(tokens.token_type).toBe('bearer');
    expect(decodeJwt(tokens.access_token).cnf).toBeUndefined();
    expect(await callAsBearer(tokens.access_token)).toBe(200);
  });

  it('a proof for another URL (the Host the request came to, not the issuer) or a replayed proof gets invalid_dpop_proof', async () => {
    const registered = await register('none');
    const keyPair = await oauth.generateKeyPair('ES256');
    const tokens = await authorize(registered, keyPair);
    const proofFor = async (htu: string) =>
      new SignJWT({ htm: 'POST', htu, jti: crypto.randomUUID() })
        .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: await exportJWK(keyPair.publicKey) })
        .setIssuedAt()
        .sign(keyPair.privateKey);
    const form = { grant_type: 'refresh_token', refresh_token: tokens.refresh_token!, client_id: registered.client.client_id, resource: stack.mcpUrl };
    const viaLocalhost = `${stack.issuer.replace('127.0.0.1', 'localhost')}/oauth/token`;
    const wrongHtu = await fetch(viaLocalhost, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: await proofFor(viaLocalhost) }, body: new URLSearchParams(form) });
    expect(wrongHtu.status).toBe(400);
    expect(((await wrongHtu.json()) as { error: string }).error).toBe('invalid_dpop_proof');
    const proof = await proofFor(as.token_endpoint!);
    const first = await postToken(form, { dpop: proof });
    expect(first.status).toBe(200);
    const { refresh_token: next } = (await first.json()) as { refresh_token: string };
    const replayed = await postToken({ ...form, refresh_token: next }, { dpop: proof });
    expect(replayed.status).toBe(400);
    expect(((await replayed.json()) as { error: string }).error).toBe('invalid_dpop_proof');
    // Refused before anything was spent: the rotated token still refreshes with a fresh proof.
    expect((await postToken({ ...form, refresh_token: next }, { dpop: await proofFor(as.token_endpoint!) })).status).toBe(200);
  });

  it('a malformed proof, or two DPoP headers, get 400 invalid_dpop_proof', async () => {
    const registered = await register('none');
    const form = { grant_type: 'refresh_token', refresh_token: 'x'.repeat(43), client_id: registered.client.client_id };
    const malformed = await postToken(form, { dpop: 'not-a-jwt' });
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { error: string }).error).toBe('invalid_dpop_proof');
    const headers = new Headers({ 'content-type': 'application/x-www-form-urlencoded' });
    headers.append('dpop', 'a.b.c');
    headers.append('dpop', 'd.e.f');
    const twice = await fetch(`${stack.issuer}/oauth/token`, { method: 'POST', headers, body: new URLSearchParams(form) });
    expect(twice.status).toBe(400);
    expect(((await twice.json()) as { error: string }).error).toBe('invalid_dpop_proof');
  });
});

describe('broker token endpoint with tokens.dpop.mode off', () => {
  let stack: BrokerStack;

  beforeAll(async () => {
    stack = await startBrokerStack({}, { config: (raw) => ({ ...raw, tokens: { ...(raw.tokens as object), dpop: { mode: 'off' } } }) });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('the metadata lists no DPoP algorithms, and a proof is refused with invalid_dpop_proof', async () => {
    const metadata = (await (await fetch(`${stack.issuer}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    expect(metadata.dpop_signing_alg_values_supported).toBeUndefined();
    const response = await fetch(`${stack.issuer}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: 'a.b.c' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 'x'.repeat(43), client_id: 'nobody' }),
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toBe('invalid_dpop_proof');
  });
});
