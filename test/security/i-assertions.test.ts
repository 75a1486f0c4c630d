// The broker's JWT assertions (an ID-JAG as a jwt-bearer grant, a private_key_jwt client assertion) under
// attack: algorithm confusion, keys and URLs the assertion names, one kind of JWT passed off as another,
// audiences and lifetimes stretched, replays, and a user's grant dressed up as a machine's. The grant and
// the client authentication run as built (real jose keys, the real SQLite store); nothing is mocked.
import { createHash, randomUUID } from 'node:crypto';
import { createLocalJWKSet, exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccessTokens } from '../../src/broker/access-tokens.ts';
import { AssertionChecks } from '../../src/broker/assertions.ts';
import { authenticateByAssertion, CLIENT_ASSERTION_TYPE } from '../../src/broker/client-assertion.ts';
import type { BrokerClient } from '../../src/broker/client-metadata.ts';
import { JwtBearerGrant } from '../../src/broker/grants/jwt-bearer.ts';
import { OAuthError } from '../../src/broker/http.ts';
import { loadSigningKey } from '../../src/broker/signing-key.ts';
import { SqliteStore } from '../../src/broker/sqlite-store.ts';
import { TokenIssuer } from '../../src/broker/token-issuer.ts';
import { JWT_BEARER_GRANT } from '../../src/config/broker-schema.ts';
import { startFaultyServer } from '../helpers/jwks-server.ts';

const BROKER = 'https://broker.example';
const TOKEN_ENDPOINT = `${BROKER}/oauth/token`;
const RESOURCE = `${BROKER}/mcp`;
const IDP = 'https://idp.example';
const ALGORITHMS = ['RS256', 'PS256', 'ES256', 'EdDSA'];
const LIFETIME_S = 600;

type Key = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

const enterpriseClient: BrokerClient = {
  client_id: 'agent-app',
  client_name: undefined,
  redirect_uris: [],
  grant_types: [JWT_BEARER_GRANT],
  token_endpoint_auth_method: 'client_secret_basic',
  client_id_issued_at: 0,
};
const machine: BrokerClient = { ...enterpriseClient, client_id: 'ci-bot', grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt' };

let store: SqliteStore;
let checks: AssertionChecks;
let grant: JwtBearerGrant;
let idpKey: Key;
let idpJwk: JWK;
let botKey: Key;
let botJwk: JWK;

const now = () => Math.floor(Date.now() / 1000);

/** Signs `claims` over the defaults; a claim or header member given as undefined is left out. */
function sign(defaults: JWTPayload, claims: JWTPayload, header: Record<string, unknown>, key: Key): Promise<string> {
  const payload = Object.fromEntries(Object.entries({ ...defaults, ...claims }).filter(([, value]) => value !== undefined));
  const protectedHeader = Object.fromEntries(Object.entries({ alg: 'ES256', ...header }).filter(([, value]) => value !== undefined));
  return new SignJWT(payload).setProtectedHeader(protectedHeader as { alg: string }).sign(key);
}

function idJag(claims: JWTPayload = {}, header: Record<string, unknown> = {}, key: Key = idpKey): Promise<string> {
  const defaults = { iss: IDP, sub: 'user-42', aud: BROKER, client_id: enterpriseClient.client_id, resource: RESOURCE, scope: 'mcp:read', iat: now(), exp: now() + 300, jti: randomUUID() };
  return sign(defaults, claims, { typ: 'oauth-id-jag+jwt', ...header }, key);
}

function clientAssertion(claims: JWTPayload = {}, header: Record<string, unknown> = {}, key: Key = botKey): Promise<string> {
  const defaults = { iss: machine.client_id, sub: machine.client_id, aud: BROKER, iat: now(), exp: now() + 120, jti: randomUUID() };
  return sign(defaults, claims, { typ: 'JWT', ...header }, key);
}

/** A compact JWS made by hand, for what jose refuses to produce (alg none, an HMAC over a public key). */
function handMade(header: Record<string, unknown>, payload: JWTPayload, sign: (input: string) => string): string {
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
  return `${input}.${sign(input)}`;
}

const exchange = (assertion: string, extra: Record<string, string> = {}, jkt?: string) =>
  grant.issue({ client: enterpriseClient, form: new Map(Object.entries({ grant_type: JWT_BEARER_GRANT, assertion, ...extra })), jkt });

const authenticate = (assertion: string, extra: Record<string, string> = {}) =>
  authenticateByAssertion(
    new Map(Object.entries({ client_assertion_type: CLIENT_ASSERTION_TYPE, client_assertion: assertion, ...extra })),
    (id) => (id === machine.client_id ? { client: machine, keys: createLocalJWKSet({ keys: [botJwk] }) } : undefined),
    { checks, audiences: [BROKER, TOKEN_ENDPOINT], algorithms: ALGORITHMS },
  );

/** The refusal a promise ends in: its OAuth error code and reason. */
async function refusalOf(promise: Promise<unknown>): Promise<{ code: string; reason: string; status: number }> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof OAuthError) return { code: error.code, reason: error.reason, status: error.status };
    throw error;
  }
  throw new Error('expected a refusal, got a token');
}

beforeAll(async () => {
  store = new SqliteStore(':memory:');
  checks = new AssertionChecks(store, 0, LIFETIME_S * 1000);
  ({ privateKey: idpKey } = await generateKeyPair('ES256', { extractable: true }));
  idpJwk = { ...(await exportJWK(idpKey)), d: undefined, kid: 'idp-1' };
  delete idpJwk.d;
  ({ privateKey: botKey } = await generateKeyPair('ES256', { extractable: true }));
  botJwk = await exportJWK(botKey);
  delete botJwk.d;
  const accessTokens = new AccessTokens(BROKER, await loadSigningKey(store, undefined), 600_000);
  grant = new JwtBearerGrant(
    new Map([[IDP, { issuer: IDP, audiences: [BROKER], algorithms: ALGORITHMS, subjectPrefix: '', key: createLocalJWKSet({ keys: [idpJwk] }) }]]),
    checks,
    new TokenIssuer(store, accessTokens, 3_600_000),
    { resource: RESOURCE, scopesSupported: ['mcp:read', 'mcp:write', 'mcp:admin'], defaultScopes: ['mcp:read'], clientScopes: new Map() },
  );
});
afterAll(() => store?.close());

describe('ID-JAG (jwt-bearer grant) abuse', () => {
  it('SEC-I01 a well-formed ID-JAG gets a token for its user, with the scope it grants and no refresh token', async () => {
    const body = await exchange(await idJag());
    expect(body).toMatchObject({ token_type: 'Bearer', scope: 'mcp:read' });
    expect(body.refresh_token).toBeUndefined();
  });

  it("SEC-I02 alg none and an HMAC keyed with the issuer's public key (algorithm confusion) are refused", async () => {
    const claims = { iss: IDP, sub: 'user-42', aud: BROKER, client_id: enterpriseClient.client_id, resource: RESOURCE, jti: randomUUID(), iat: now(), exp: now() + 60 };
    const none = handMade({ alg: 'none', typ: 'oauth-id-jag+jwt' }, claims, () => '');
    expect(await refusalOf(exchange(none))).toMatchObject({ code: 'invalid_grant' });
    const hmac = handMade({ alg: 'HS256', typ: 'oauth-id-jag+jwt' }, claims, (input) => createHash('sha256').update(JSON.stringify(idpJwk)).update(input).digest('base64url'));
    expect(await refusalOf(exchange(hmac))).toMatchObject({ code: 'invalid_grant', reason: 'algorithm' });
  });

  it('SEC-I03 keys and URLs the assertion names (jwk, jku, x5u) are never used nor fetched', async () => {
    const { privateKey: attacker, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const trap = await startFaultyServer((_req, res) => res.end('{"keys":[]}'));
    try {
      const named = await idJag({}, { jwk: await exportJWK(publicKey), jku: `${trap.url}/jwks`, x5u: `${trap.url}/cert` }, attacker);
      expect(await refusalOf(exchange(named))).toMatchObject({ code: 'invalid_grant', reason: 'bad_signature' });
      expect(trap.hits).toBe(0);
    } finally {
      await trap.close();
    }
  });

  it('SEC-I04 an untrusted issuer is refused before any key is looked for; a trusted one cannot pass off another JWT type', async () => {
    expect(await refusalOf(exchange(await idJag({ iss: 'https://evil.example' })))).toMatchObject({ reason: 'untrusted_issuer' });
    for (const typ of ['JWT', 'at+jwt', 'dpop+jwt', 'client-authentication+jwt']) {
      expect(await refusalOf(exchange(await idJag({}, { typ })))).toMatchObject({ code: 'invalid_grant', reason: 'wrong_type' });
    }
    expect(await refusalOf(exchange(await idJag({}, { typ: undefined })))).toMatchObject({ reason: 'wrong_type' });
  });

  it('SEC-I05 aud must be exactly the broker: another one, or several including it, are refused', async () => {
    expect(await refusalOf(exchange(await idJag({ aud: 'https://other-as.example' })))).toMatchObject({ reason: 'wrong_audience' });
    expect(await refusalOf(exchange(await idJag({ aud: [BROKER, 'https://other-as.example'] })))).toMatchObject({ reason: 'wrong_audience' });
    expect(await exchange(await idJag({ aud: [BROKER] }))).toHaveProperty('access_token');
  });

  it('SEC-I06 the resource claim must name this resource; a missing one is not taken as any', async () => {
    expect(await refusalOf(exchange(await idJag({ resource: 'https://other.example/mcp' })))).toMatchObject({ reason: 'wrong_resource' });
    expect(await refusalOf(exchange(await idJag({ resource: undefined })))).toMatchObject({ reason: 'wrong_resource' });
    expect(await exchange(await idJag({ resource: ['https://other.example/mcp', RESOURCE] }))).toHaveProperty('access_token');
    expect(await refusalOf(exchange(await idJag(), { resource: 'https://other.example/mcp' }))).toMatchObject({ code: 'invalid_target' });
  });

  it('SEC-I07 lifetimes are bounded: too long, dated in the future, expired, no jti', async () => {
    expect(await refusalOf(exchange(await idJag({ exp: now() + LIFETIME_S * 10 })))).toMatchObject({ reason: 'lifetime_too_long' });
    expect(await refusalOf(exchange(await idJag({ iat: now() + 120 })))).toMatchObject({ reason: 'not_yet_valid' });
    expect(await refusalOf(exchange(await idJag({ iat: now() - 120, exp: now() - 60 })))).toMatchObject({ reason: 'expired' });
    expect(await refusalOf(exchange(await idJag({ jti: 'x'.repeat(300) })))).toMatchObject({ reason: 'missing_claim' });
  });

  it('SEC-I08 a jti is spent once: the same assertion, or another signed with the same jti, is a replay', async () => {
    const jti = randomUUID();
    const first = await idJag({ jti });
    await exchange(first);
    expect(await refusalOf(exchange(first))).toMatchObject({ code: 'invalid_grant', reason: 'replayed' });
    expect(await refusalOf(exchange(await idJag({ jti, exp: now() + 200 })))).toMatchObject({ reason: 'replayed' });
  });

  it('SEC-I09 a refused assertion spends nothing: its corrected retry is no replay', async () => {
    const assertion = await idJag();
    expect(await refusalOf(exchange(assertion, { scope: 'mcp:unknown' }))).toMatchObject({ code: 'invalid_scope', reason: 'scope_not_supported' });
    expect(await exchange(assertion, { scope: 'mcp:read' })).toHaveProperty('access_token');
  });

  it("SEC-I10 asked scopes are narrowed to the ID-JAG's; asking only for more than it grants is refused", async () => {
    expect(await exchange(await idJag(), { scope: 'mcp:read mcp:admin' })).toMatchObject({ scope: 'mcp:read' });
    expect(await refusalOf(exchange(await idJag(), { scope: 'mcp:admin' }))).toMatchObject({ code: 'invalid_scope', reason: 'scope_not_allowed' });
  });

  it("SEC-I11 a user's grant never reads as a machine's: an ID-JAG naming its client as the user is refused", async () => {
    expect(await refusalOf(exchange(await idJag({ sub: enterpriseClient.client_id })))).toMatchObject({ reason: 'subject_is_client' });
  });

  it('SEC-I12 an ID-JAG bound to a key needs a proof of that key; other confirmations are refused', async () => {
    const bound = { cnf: { jkt: 'thumbprint-of-the-client-key' } };
    expect(await refusalOf(exchange(await idJag(bound)))).toMatchObject({ reason: 'proof_required' });
    expect(await refusalOf(exchange(await idJag(bound), {}, 'another-key'))).toMatchObject({ reason: 'proof_key_mismatch' });
    expect(await exchange(await idJag(bound), {}, 'thumbprint-of-the-client-key')).toMatchObject({ token_type: 'DPoP' });
    expect(await refusalOf(exchange(await idJag({ cnf: { 'x5t#S256': 'abc' } })))).toMatchObject({ reason: 'unsupported_confirmation' });
  });

  it('SEC-I13 an oversized assertion is refused unread', async () => {
    expect(await refusalOf(exchange(await idJag({ padding: 'x'.repeat(20_000) })))).toMatchObject({ reason: 'malformed' });
  });
});

describe('private_key_jwt client assertion abuse', () => {
  it('SEC-I14 a well-formed assertion authenticates the client it names, once', async () => {
    const assertion = await clientAssertion();
    expect((await authenticate(assertion)).client_id).toBe(machine.client_id);
    expect(await refusalOf(authenticate(assertion))).toMatchObject({ code: 'invalid_client', status: 401, reason: 'replayed' });
  });

  it('SEC-I15 iss and sub must both be the client, and a client_id beside it must agree', async () => {
    expect(await refusalOf(authenticate(await clientAssertion({ sub: 'someone-else' })))).toMatchObject({ code: 'invalid_client', reason: 'wrong_subject' });
    expect(await refusalOf(authenticate(await clientAssertion(), { client_id: 'agent-app' }))).toMatchObject({ reason: 'client_id_mismatch' });
    expect(await refusalOf(authenticate(await clientAssertion({ iss: 'unknown-client', sub: 'unknown-client' })))).toMatchObject({ reason: 'unknown_client' });
  });

  it('SEC-I16 an ID-JAG or an access token is no client assertion (typ), and aud must be the broker or its token endpoint alone', async () => {
    expect(await refusalOf(authenticate(await clientAssertion({}, { typ: 'oauth-id-jag+jwt' })))).toMatchObject({ reason: 'wrong_type' });
    expect(await refusalOf(authenticate(await clientAssertion({}, { typ: 'at+jwt' })))).toMatchObject({ reason: 'wrong_type' });
    expect((await authenticate(await clientAssertion({ aud: TOKEN_ENDPOINT }))).client_id).toBe(machine.client_id);
    expect(await refusalOf(authenticate(await clientAssertion({ aud: [BROKER, 'https://other-as.example'] })))).toMatchObject({ reason: 'wrong_audience' });
  });

  it('SEC-I17 alg none, an HMAC, and a key the client never registered are refused', async () => {
    const claims = { iss: machine.client_id, sub: machine.client_id, aud: BROKER, jti: randomUUID(), exp: now() + 60 };
    expect(await refusalOf(authenticate(handMade({ alg: 'none' }, claims, () => '')))).toMatchObject({ code: 'invalid_client' });
    const hmac = handMade({ alg: 'HS256' }, claims, (input) => createHash('sha256').update(JSON.stringify(botJwk)).update(input).digest('base64url'));
    expect(await refusalOf(authenticate(hmac))).toMatchObject({ reason: 'algorithm' });
    const { privateKey: stranger } = await generateKeyPair('ES256');
    expect(await refusalOf(authenticate(await clientAssertion({}, {}, stranger)))).toMatchObject({ reason: 'bad_signature' });
  });

  it("SEC-I18 one client's jti does not block another's: replay records are per issuer", async () => {
    const jti = randomUUID();
    await exchange(await idJag({ jti }));
    expect((await authenticate(await clientAssertion({ jti }))).client_id).toBe(machine.client_id);
  });
});
