// Machine clients of the broker (the MCP OAuth client credentials extension, SEP-1046), proved from the
// outside: the SDK 2.x client's own ClientCredentialsProvider and PrivateKeyJwtProvider get tokens from
// mcp-warden and call a tool through it; the refusals an attacker or a misconfigured client meets are
// OAuth errors, each counted and logged with its reason, and none lets anything reach the upstream; and
// policy rules that match on the principal kind tell a machine's token from a user's.
import { randomBytes, randomUUID } from 'node:crypto';
import { Client as Sdk1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as Sdk1Transport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Client, ClientCredentialsProvider, PrivateKeyJwtProvider, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { decodeJwt, exportJWK, exportSPKI, generateKeyPair, SignJWT, UnsecuredJWT, type JWK, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerConsent, followAuthorizationRedirects, REDIRECT_URI } from '../../demo/oauth-client.ts';
import { pkce, startBrokerStack, type BrokerStack } from '../helpers/broker-stack.ts';
import { assertNothingSecretLogged, MCP_HEADERS } from '../helpers/stack.ts';

const TIMEOUT_MS = 5_000;
const CC = 'client_credentials';
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** Secrets come only from the environment; WARDEN_TEST_* values are also checked absent from the logs. */
const SECRETS = {
  WARDEN_TEST_MACHINE_SECRET: randomBytes(24).toString('base64url'),
  WARDEN_TEST_READER_SECRET: randomBytes(24).toString('base64url'),
  WARDEN_TEST_WEB_APP_SECRET: randomBytes(24).toString('base64url'),
  /** What `openssl rand -base64` gives: "+" and "/" that a form decoder reads differently. */
  WARDEN_TEST_PLUS_SECRET: `a+b/c${randomBytes(18).toString('base64url')}==`,
};

/** Full scopes, client_secret_basic. */
const SECRET_BOT = 'ci-bot';
/** Full scopes, private_key_jwt with an ES256 key. */
const SIGNING_BOT = 'signing-bot';
/** Only mcp:read: the operator's ceiling for a machine nobody consents for. */
const READER_BOT = 'reader-bot';
/** A secret with characters form-encoding changes. */
const PLUS_BOT = 'plus-bot';
/** A confidential client for people (authorization_code only): it must not get machine tokens. */
const WEB_APP = 'web-app';

let stack: BrokerStack;
let signingKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
let publicJwk: JWK;
let privateJwk: JWK;
let publicPem: string;

beforeAll(async () => {
  const pair = await generateKeyPair('ES256', { extractable: true });
  signingKey = pair.privateKey;
  publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'signing-bot-1', alg: 'ES256', use: 'sig' };
  privateJwk = { ...(await exportJWK(pair.privateKey)), kid: 'signing-bot-1', alg: 'ES256' };
  publicPem = await exportSPKI(pair.publicKey);
  Object.assign(process.env, SECRETS);
  stack = await startBrokerStack(
    {
      clients: [
        { client_id: SECRET_BOT, grant_types: [CC], client_secret: '${env:WARDEN_TEST_MACHINE_SECRET}' },
        { client_id: SIGNING_BOT, grant_types: [CC], jwks: { keys: [publicJwk] } },
        { client_id: READER_BOT, grant_types: [CC], client_secret: '${env:WARDEN_TEST_READER_SECRET}', scopes: ['mcp:read'] },
        { client_id: WEB_APP, grant_types: ['authorization_code'], redirect_uris: [REDIRECT_URI], client_secret: '${env:WARDEN_TEST_WEB_APP_SECRET}' },
        { client_id: PLUS_BOT, grant_types: [CC], client_secret: '${env:WARDEN_TEST_PLUS_SECRET}' },
      ],
    },
    {
      config: (raw) => ({
        ...raw,
        policy: {
          rules: [
            // The same scopes, two outcomes: a machine needs mcp:write to echo, a user to read files.
            { match: { method: 'tools/call', tool: 'echo', principal: 'machine' }, scopes: ['mcp:write'] },
            { match: { method: 'tools/call', tool: 'read_file', principal: 'user' }, scopes: ['mcp:write'] },
          ],
        },
      }),
    },
  );
}, 20_000);

afterAll(async () => {
  await stack?.close();
  if (stack) assertNothingSecretLogged(stack.logs, Object.values(SECRETS));
  for (const name of Object.keys(SECRETS)) delete process.env[name];
});

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

const tokenRequest = (form: Record<string, string>, headers: Record<string, string> = {}) =>
  fetch(`${stack.issuer}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });

/** A machine token by client_secret_basic, straight from the token endpoint. */
async function secretToken(clientId: string, secret: string, scope?: string): Promise<Record<string, unknown>> {
  const response = await tokenRequest({ grant_type: CC, resource: stack.mcpUrl, ...(scope ? { scope } : {}) }, { authorization: basic(clientId, secret) });
  const body = (await response.json()) as Record<string, unknown>;
  expect(response.status, JSON.stringify(body)).toBe(200);
  return body;
}

/** An RFC 7523 client assertion for signing-bot, good unless the overrides spoil it. */
function clientAssertion(claims: JWTPayload = {}, header: Record<string, unknown> = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ iss: SIGNING_BOT, sub: SIGNING_BOT, aud: `${stack.issuer}/oauth/token`, iat: now, exp: now + 60, jti: randomUUID(), ...claims })
    .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: 'signing-bot-1', ...header })
    .sign(signingKey);
}

const assertionForm = (assertion: string, extra: Record<string, string> = {}) => ({
  grant_type: CC,
  client_assertion_type: ASSERTION_TYPE,
  client_assertion: assertion,
  resource: stack.mcpUrl,
  ...extra,
});

async function brokerEvents(event: string, result: string): Promise<number> {
  const text = await (await fetch(`${stack.warden.adminUrl}/metrics`, { signal: AbortSignal.timeout(TIMEOUT_MS) })).text();
  const line = text.split('\n').find((candidate) => candidate.startsWith('mcp_warden_broker_events_total{') && candidate.includes(`event="${event}"`) && candidate.includes(`result="${result}"`));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

interface Refusal {
  readonly status: number;
  readonly error: string;
  readonly reason: string;
  /** What the log line names as the client: the id the request presented (Basic, client_id, or the assertion's iss). */
  readonly clientId: string | undefined;
}

/**
 * Runs `send` (a token request that must be refused) and checks everything a refusal leaves: the OAuth
 * error, the metric counted once with its reason, the log line, and nothing at the upstream.
 */
async function expectRefused(send: () => Promise<Response>, expected: Refusal): Promise<Record<string, unknown>> {
  const upstreamBefore = stack.mcp.requests.length;
  const logsBefore = stack.logs.length;
  const counted = await brokerEvents(`token:${CC}`, expected.reason);
  const response = await send();
  const body = (await response.json()) as Record<string, unknown>;
  expect({ status: response.status, error: body.error }, JSON.stringify(body)).toEqual({ status: expected.status, error: expected.error });
  expect(body.access_token).toBeUndefined();
  expect(await brokerEvents(`token:${CC}`, expected.reason)).toBe(counted + 1);
  const refusals = stack.logs.slice(logsBefore).filter((log) => log.msg === 'broker: token request refused');
  expect(refusals).toHaveLength(1);
  expect(refusals[0]).toMatchObject({ grant_type: CC, error: expected.error, reason: expected.reason });
  expect(refusals[0]!.client_id).toBe(expected.clientId);
  expect(stack.mcp.requests.length).toBe(upstreamBefore);
  return body;
}

/** The token endpoint's answers to an SDK client, read beside it (the SDK keeps only what it parses). */
interface TokenExchange {
  /** The scheme of the request's Authorization header, if it had one. */
  readonly scheme: string | undefined;
  readonly form: URLSearchParams;
  readonly body: Record<string, unknown>;
}

function recordingFetch(answers: TokenExchange[]): typeof fetch {
  return async (input, init) => {
    const response = await fetch(input, { ...init, signal: init?.signal ?? AbortSignal.timeout(TIMEOUT_MS) });
    if (String(input instanceof Request ? input.url : input) === `${stack.issuer}/oauth/token`) {
      answers.push({
        scheme: new Headers(init?.headers).get('authorization')?.split(' ')[0],
        form: new URLSearchParams(String(init?.body ?? '')),
        body: (await response.clone().json()) as Record<string, unknown>,
      });
    }
    return response;
  };
}

const callTool = (id: number, name: string, args: Record<string, unknown>) => JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });

/** One raw MCP POST with a bearer token; a refused one never needs a session. */
const postMcp = (token: string, body: string) =>
  fetch(stack.mcpUrl, { method: 'POST', headers: { ...MCP_HEADERS, authorization: `Bearer ${token}` }, body, signal: AbortSignal.timeout(TIMEOUT_MS) });

/**
 * A person's token through the whole browser flow: a dynamically registered public client, consent
 * approved, login at the identity provider, the code redeemed; exactly `scope`, as a machine may get it.
 */
async function userToken(scope: string): Promise<string> {
  const registration = await fetch(`${stack.issuer}/oauth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: 'a person’s client', redirect_uris: [REDIRECT_URI], token_endpoint_auth_method: 'none' }),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  const clientId = ((await registration.json()) as { client_id: string }).client_id;
  const { verifier, challenge } = pkce();
  const authorize = new URL(`${stack.issuer}/oauth/authorize`);
  const params = { response_type: 'code', client_id: clientId, redirect_uri: REDIRECT_URI, code_challenge: challenge, code_challenge_method: 'S256', state: 's', resource: stack.mcpUrl, scope };
  for (const [name, value] of Object.entries(params)) authorize.searchParams.set(name, value);
  const code = await followAuthorizationRedirects(authorize, REDIRECT_URI, { cookies: new Map(), onPage: answerConsent('approve') });
  const response = await tokenRequest({ grant_type: 'authorization_code', client_id: clientId, code, code_verifier: verifier, redirect_uri: REDIRECT_URI, resource: stack.mcpUrl });
  expect(response.status).toBe(200);
  return ((await response.json()) as { access_token: string }).access_token;
}

/** An SDK 1.x client holding a token it was handed (no auth provider, so a 403 is an error, not a step-up). */
async function connectWithToken(token: string): Promise<Sdk1Client> {
  const client = new Sdk1Client({ name: 'machine-clients-test', version: '1.0.0' });
  await client.connect(new Sdk1Transport(new URL(stack.mcpUrl), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
  return client;
}

describe('machine clients: the SDK 2.x client credentials providers through mcp-warden', () => {
  it('advertises client_credentials and private_key_jwt, with asymmetric signing algorithms only, in the broker metadata', async () => {
    const metadata = (await (await fetch(`${stack.issuer}/.well-known/oauth-authorization-server`, { signal: AbortSignal.timeout(TIMEOUT_MS) })).json()) as Record<string, string[]>;
    expect(metadata.grant_types_supported).toContain(CC);
    expect(metadata.token_endpoint_auth_methods_supported).toContain('private_key_jwt');
    expect(metadata.token_endpoint_auth_signing_alg_values_supported).toEqual(expect.arrayContaining(['ES256']));
    expect(metadata.token_endpoint_auth_signing_alg_values_supported!.filter((alg) => alg === 'none' || alg.startsWith('HS'))).toEqual([]);
  });

  it('connects with ClientCredentialsProvider (client_secret_basic) and calls echo, with a token whose sub and client_id are the client and no refresh token', async () => {
    const answers: TokenExchange[] = [];
    const provider = new ClientCredentialsProvider({ clientId: SECRET_BOT, clientSecret: SECRETS.WARDEN_TEST_MACHINE_SECRET, expectedIssuer: stack.issuer });
    const client = new Client({ name: 'ci-bot', version: '1.0.0' });
    const before = stack.mcp.requests.length;
    await client.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl), { authProvider: provider, fetch: recordingFetch(answers) }));
    try {
      const result = await client.callTool({ name: 'echo', arguments: { text: 'from a machine with a secret' } });
      expect(result.content).toEqual([{ type: 'text', text: 'from a machine with a secret' }]);
    } finally {
      await client.close();
    }
    expect(stack.mcp.requests.length).toBeGreaterThan(before);
    expect(answers).toHaveLength(1);
    expect(answers[0]!.scheme).toBe('Basic');
    expect(answers[0]!.form.get('grant_type')).toBe(CC);
    expect(answers[0]!.form.get('client_secret')).toBeNull();
    expect(answers[0]!.body.refresh_token).toBeUndefined();
    expect(answers[0]!.body.token_type).toBe('Bearer');
    const claims = decodeJwt(provider.tokens()!.access_token);
    expect(claims).toMatchObject({ iss: stack.issuer, aud: stack.mcpUrl, sub: SECRET_BOT, client_id: SECRET_BOT });
    expect(String(claims.scope).split(' ').sort()).toEqual(['mcp:read', 'mcp:write']);
  });

  it('connects with PrivateKeyJwtProvider (an ES256 key whose public half is configured) and calls echo', async () => {
    const answers: TokenExchange[] = [];
    const provider = new PrivateKeyJwtProvider({ clientId: SIGNING_BOT, privateKey: privateJwk as Record<string, unknown>, algorithm: 'ES256', expectedIssuer: stack.issuer });
    const client = new Client({ name: 'signing-bot', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl), { authProvider: provider, fetch: recordingFetch(answers) }));
    try {
      const result = await client.callTool({ name: 'echo', arguments: { text: 'from a machine with a key' } });
      expect(result.content).toEqual([{ type: 'text', text: 'from a machine with a key' }]);
    } finally {
      await client.close();
    }
    expect(answers).toHaveLength(1);
    expect(answers[0]!.scheme).toBeUndefined();
    // The SDK names the broker's issuer as the audience, from its metadata.
    expect(decodeJwt(answers[0]!.form.get('client_assertion')!)).toMatchObject({ iss: SIGNING_BOT, sub: SIGNING_BOT, aud: stack.issuer });
    expect(answers[0]!.body.refresh_token).toBeUndefined();
    expect(decodeJwt(provider.tokens()!.access_token)).toMatchObject({ iss: stack.issuer, aud: stack.mcpUrl, sub: SIGNING_BOT, client_id: SIGNING_BOT });
  });
});

describe('machine token requests that are refused', () => {
  it('refuses a wrong client secret: 401 invalid_client, reason bad_secret', async () => {
    const body = await expectRefused(() => tokenRequest({ grant_type: CC, resource: stack.mcpUrl }, { authorization: basic(SECRET_BOT, 'not-the-secret') }), {
      status: 401,
      error: 'invalid_client',
      reason: 'bad_secret',
      clientId: SECRET_BOT,
    });
    expect(JSON.stringify(body)).not.toContain('not-the-secret');
  });

  it('takes a client assertion once: the same assertion again is 401 invalid_client, reason replayed', async () => {
    const assertion = await clientAssertion();
    const first = await tokenRequest(assertionForm(assertion, { client_id: SIGNING_BOT }));
    expect(first.status).toBe(200);
    expect(decodeJwt(((await first.json()) as { access_token: string }).access_token)).toMatchObject({ sub: SIGNING_BOT, client_id: SIGNING_BOT });
    await expectRefused(() => tokenRequest(assertionForm(assertion, { client_id: SIGNING_BOT })), { status: 401, error: 'invalid_client', reason: 'replayed', clientId: SIGNING_BOT });
  });

  it('refuses an assertion meant for another audience (the MCP server), and does not spend its jti', async () => {
    const jti = randomUUID();
    await expectRefused(async () => tokenRequest(assertionForm(await clientAssertion({ aud: stack.mcpUrl, jti }))), {
      status: 401,
      error: 'invalid_client',
      reason: 'wrong_audience',
      clientId: SIGNING_BOT,
    });
    // Naming both the issuer and the token endpoint is not "exactly one" of them either.
    await expectRefused(async () => tokenRequest(assertionForm(await clientAssertion({ aud: [stack.issuer, `${stack.issuer}/oauth/token`] }))), {
      status: 401,
      error: 'invalid_client',
      reason: 'wrong_audience',
      clientId: SIGNING_BOT,
    });
    // The refused assertion's jti was not recorded: a good assertion may still carry it.
    expect((await tokenRequest(assertionForm(await clientAssertion({ jti })))).status).toBe(200);
  });

  it('refuses an HS256 assertion keyed with the client’s public key (algorithm confusion)', async () => {
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: SIGNING_BOT, sub: SIGNING_BOT, aud: stack.issuer, iat: now, exp: now + 60, jti: randomUUID() };
    // The classic attack: the public key, which anyone may know, used as an HMAC secret.
    for (const secret of [publicPem, JSON.stringify(publicJwk)]) {
      const forged = await new SignJWT({ ...claims, jti: randomUUID() }).setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: 'signing-bot-1' }).sign(new TextEncoder().encode(secret));
      await expectRefused(() => tokenRequest(assertionForm(forged)), { status: 401, error: 'invalid_client', reason: 'algorithm', clientId: SIGNING_BOT });
    }
  });

  it('refuses an unsigned assertion (alg none)', async () => {
    const now = Math.floor(Date.now() / 1000);
    const unsigned = new UnsecuredJWT({ iss: SIGNING_BOT, sub: SIGNING_BOT, aud: stack.issuer, iat: now, exp: now + 60, jti: randomUUID() }).encode();
    await expectRefused(() => tokenRequest(assertionForm(unsigned, { client_id: SIGNING_BOT })), { status: 401, error: 'invalid_client', reason: 'algorithm', clientId: SIGNING_BOT });
  });

  it('accepts the assertion forms RFC 7523 and the client authentication JWT profile allow: no typ, typ client-authentication+jwt, aud the issuer', async () => {
    for (const header of [{ typ: undefined }, { typ: 'client-authentication+jwt' }]) {
      const response = await tokenRequest(assertionForm(await clientAssertion({ aud: stack.issuer }, header)));
      expect(response.status, JSON.stringify(header)).toBe(200);
      expect(((await response.json()) as Record<string, unknown>).refresh_token).toBeUndefined();
    }
  });

  // Without client_id: the assertion's iss names the client for the metric's log line.
  describe.each<[string, () => Promise<Record<string, string>>, string, string?]>([
    ['an assertion living 11 minutes, beyond max_assertion_lifetime (10m)', async () => assertionForm(await clientAssertion({ exp: Math.floor(Date.now() / 1000) + 660 })), 'lifetime_too_long'],
    ['an expired assertion', async () => assertionForm(await clientAssertion({ iat: Math.floor(Date.now() / 1000) - 120, exp: Math.floor(Date.now() / 1000) - 60 })), 'expired'],
    ['an assertion without jti', async () => assertionForm(await clientAssertion({ jti: undefined })), 'missing_claim'],
    ['an assertion typed as an access token (typ at+jwt)', async () => assertionForm(await clientAssertion({}, { typ: 'at+jwt' })), 'wrong_type'],
    ['an assertion whose sub names another client', async () => assertionForm(await clientAssertion({ sub: SECRET_BOT })), 'wrong_subject'],
    ['an assertion naming a client that has a secret, not keys', async () => assertionForm(await clientAssertion({ iss: SECRET_BOT, sub: SECRET_BOT })), 'unknown_client', SECRET_BOT],
    [
      'an assertion signed by another key under the client’s kid',
      async () => {
        const other = await generateKeyPair('ES256');
        const now = Math.floor(Date.now() / 1000);
        const forged = await new SignJWT({ iss: SIGNING_BOT, sub: SIGNING_BOT, aud: stack.issuer, iat: now, exp: now + 60, jti: randomUUID() })
          .setProtectedHeader({ alg: 'ES256', kid: 'signing-bot-1' })
          .sign(other.privateKey);
        return assertionForm(forged);
      },
      'bad_signature',
    ],
    ['a client_assertion_type other than jwt-bearer', async () => ({ ...assertionForm(await clientAssertion()), client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:saml2-bearer' }), 'assertion_type'],
  ])('refuses %s: 401 invalid_client', (_name, form, reason, clientId = SIGNING_BOT) => {
    it(`reason ${reason}`, async () => {
      await expectRefused(async () => tokenRequest(await form()), { status: 401, error: 'invalid_client', reason, clientId });
    });
  });

  it('refuses an assertion sent with a client_id other than the one it names: client_id_mismatch', async () => {
    await expectRefused(async () => tokenRequest(assertionForm(await clientAssertion(), { client_id: SECRET_BOT })), {
      status: 401,
      error: 'invalid_client',
      reason: 'client_id_mismatch',
      clientId: SECRET_BOT,
    });
  });

  it('refuses client_credentials to a confidential client registered for authorization_code only: unauthorized_client', async () => {
    await expectRefused(() => tokenRequest({ grant_type: CC, resource: stack.mcpUrl }, { authorization: basic(WEB_APP, SECRETS.WARDEN_TEST_WEB_APP_SECRET) }), {
      status: 400,
      error: 'unauthorized_client',
      reason: 'grant_not_registered',
      clientId: WEB_APP,
    });
  });

  it('narrows a request beyond the client’s scopes to its ceiling, and refuses one of which nothing may be granted', async () => {
    // RFC 6749 §3.3: the server may grant less than asked, and then says what it granted.
    const narrowed = await secretToken(READER_BOT, SECRETS.WARDEN_TEST_READER_SECRET, 'mcp:read mcp:write');
    expect(narrowed.scope).toBe('mcp:read');
    expect(decodeJwt(narrowed.access_token as string).scope).toBe('mcp:read');
    const ask = (scope: string) => () => tokenRequest({ grant_type: CC, resource: stack.mcpUrl, scope }, { authorization: basic(READER_BOT, SECRETS.WARDEN_TEST_READER_SECRET) });
    await expectRefused(ask('mcp:write'), { status: 400, error: 'invalid_scope', reason: 'scope_not_allowed', clientId: READER_BOT });
    await expectRefused(ask('mcp:read mcp:admin'), { status: 400, error: 'invalid_scope', reason: 'scope_not_supported', clientId: READER_BOT });
  });

  it('refuses a token for another resource: invalid_target', async () => {
    await expectRefused(
      () => tokenRequest({ grant_type: CC, resource: 'http://127.0.0.1:1/other' }, { authorization: basic(SECRET_BOT, SECRETS.WARDEN_TEST_MACHINE_SECRET) }),
      { status: 400, error: 'invalid_target', reason: 'wrong_resource', clientId: SECRET_BOT },
    );
  });

  it('takes a configured secret by client_secret_post too, and from a client that does not form-encode its Basic credentials', async () => {
    const post = await tokenRequest({ grant_type: CC, resource: stack.mcpUrl, client_id: SECRET_BOT, client_secret: SECRETS.WARDEN_TEST_MACHINE_SECRET });
    expect(post.status).toBe(200);
    // RFC 6749 §2.3.1 form-encodes both parts; the SDK 2.4 ClientCredentialsProvider does not, and a
    // base64 secret's "+" would then decode to a space. The secret as sent still matches.
    const response = await tokenRequest({ grant_type: CC, resource: stack.mcpUrl }, { authorization: basic(PLUS_BOT, SECRETS.WARDEN_TEST_PLUS_SECRET) });
    expect(response.status).toBe(200);
    const encoded = await tokenRequest({ grant_type: CC, resource: stack.mcpUrl }, { authorization: basic(PLUS_BOT, encodeURIComponent(SECRETS.WARDEN_TEST_PLUS_SECRET)) });
    expect(encoded.status).toBe(200);
  });

  it('gives a request without scope the client’s own scopes, and leaves out an empty scope', async () => {
    expect((await secretToken(READER_BOT, SECRETS.WARDEN_TEST_READER_SECRET)).scope).toBe('mcp:read');
    const unscoped = await secretToken(SECRET_BOT, SECRETS.WARDEN_TEST_MACHINE_SECRET);
    // tokens.required_scopes is empty here and ci-bot has no scopes of its own: RFC 6749 §5.1 lets scope be left out.
    expect(unscoped).not.toHaveProperty('scope');
    expect(decodeJwt(unscoped.access_token as string)).not.toHaveProperty('scope');
  });

  it("refuses a person's token whose subject is the client's id: it would pass for a machine's", async () => {
    const upstreamBefore = stack.mcp.requests.length;
    stack.idp.signInAs(WEB_APP);
    try {
      const { verifier, challenge } = pkce();
      const authorize = new URL(`${stack.issuer}/oauth/authorize`);
      const params = { response_type: 'code', client_id: WEB_APP, redirect_uri: REDIRECT_URI, code_challenge: challenge, code_challenge_method: 'S256', state: 's', resource: stack.mcpUrl, scope: 'mcp:read' };
      for (const [name, value] of Object.entries(params)) authorize.searchParams.set(name, value);
      const code = await followAuthorizationRedirects(authorize, REDIRECT_URI, { cookies: new Map(), onPage: answerConsent('approve') });
      const response = await tokenRequest({ grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: REDIRECT_URI, resource: stack.mcpUrl }, { authorization: basic(WEB_APP, SECRETS.WARDEN_TEST_WEB_APP_SECRET) });
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ error: 'invalid_grant' });
      expect(stack.logs.filter((log) => log.msg === 'broker: token request refused').at(-1)).toMatchObject({ grant_type: 'authorization_code', reason: 'subject_is_client', client_id: WEB_APP });
    } finally {
      stack.idp.signInAs('idp-user-1');
    }
    expect(stack.mcp.requests.length).toBe(upstreamBefore);
  });

  it('never registers a client for client_credentials dynamically, and a registered client cannot use it', async () => {
    const register = (metadata: Record<string, unknown>) =>
      fetch(`${stack.issuer}/oauth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(metadata), signal: AbortSignal.timeout(TIMEOUT_MS) });
    for (const grantTypes of [[CC], ['authorization_code', CC]]) {
      const response = await register({ client_name: 'would-be machine', redirect_uris: [REDIRECT_URI], grant_types: grantTypes, token_endpoint_auth_method: 'client_secret_basic' });
      expect(response.status).toBe(400);
      expect(((await response.json()) as Record<string, unknown>).error).toBe('invalid_client_metadata');
    }
    // A confidential client registered the ordinary way has a secret, but not the grant.
    const registered = (await (await register({ client_name: 'ordinary', redirect_uris: [REDIRECT_URI], token_endpoint_auth_method: 'client_secret_basic' })).json()) as Record<string, string>;
    expect(registered.grant_types).not.toContain(CC);
    await expectRefused(() => tokenRequest({ grant_type: CC, resource: stack.mcpUrl }, { authorization: basic(registered.client_id!, registered.client_secret!) }), {
      status: 400,
      error: 'unauthorized_client',
      reason: 'grant_not_registered',
      clientId: registered.client_id,
    });
  });
});

describe('policy rules that match on the principal kind', () => {
  /** A machine's token and a person's, both with exactly mcp:read: only the kind of principal differs. */
  async function sameScopeTokens(): Promise<{ machine: string; person: string }> {
    const machine = (await secretToken(READER_BOT, SECRETS.WARDEN_TEST_READER_SECRET, 'mcp:read')).access_token as string;
    expect(decodeJwt(machine)).toMatchObject({ sub: READER_BOT, client_id: READER_BOT, scope: 'mcp:read' });
    const person = await userToken('mcp:read');
    const claims = decodeJwt(person);
    expect(claims).toMatchObject({ sub: 'idp-user-1', scope: 'mcp:read' });
    expect(claims.client_id).not.toBe(claims.sub);
    return { machine, person };
  }

  /** A refused call: 403 insufficient_scope naming mcp:write, answered by mcp-warden with nothing sent upstream. */
  async function expectInsufficientScope(token: string, tool: string): Promise<void> {
    const before = stack.mcp.requests.length;
    const response = await postMcp(token, callTool(1, tool, tool === 'echo' ? { text: 'x' } : { path: '/x' }));
    await response.body?.cancel();
    expect(response.status).toBe(403);
    expect(response.headers.get('www-authenticate')).toMatch(/error="insufficient_scope"/);
    expect(response.headers.get('www-authenticate')).toMatch(/scope="[^"]*mcp:write/);
    expect(stack.mcp.requests.length).toBe(before);
  }

  it('refuses the machine echo and the person read_file at mcp-warden, each by the rule for its kind', async () => {
    const { machine, person } = await sameScopeTokens();
    await expectInsufficientScope(machine, 'echo');
    await expectInsufficientScope(person, 'read_file');
  });

  it('lets each kind call, and list, what its own rule allows: the machine read_file without echo, the person echo without read_file', async () => {
    const tokens = await sameScopeTokens();
    const machine = await connectWithToken(tokens.machine);
    const person = await connectWithToken(tokens.person);
    try {
      expect((await machine.callTool({ name: 'read_file', arguments: { path: '/machine' } })).content).toEqual([{ type: 'text', text: 'contents of /machine' }]);
      await expect(machine.callTool({ name: 'echo', arguments: { text: 'machine' } })).rejects.toThrow(/403|insufficient_scope|Forbidden/i);
      const machineTools = (await machine.listTools()).tools.map((tool) => tool.name);
      expect(machineTools).toContain('read_file');
      expect(machineTools).not.toContain('echo');

      expect((await person.callTool({ name: 'echo', arguments: { text: 'person' } })).content).toEqual([{ type: 'text', text: 'person' }]);
      await expect(person.callTool({ name: 'read_file', arguments: { path: '/person' } })).rejects.toThrow(/403|insufficient_scope|Forbidden/i);
      const personTools = (await person.listTools()).tools.map((tool) => tool.name);
      expect(personTools).toContain('echo');
      expect(personTools).not.toContain('read_file');
    } finally {
      await Promise.allSettled([machine.close(), person.close()]);
    }
  });
});
