// Enterprise-managed authorization (MCP extension "enterprise-managed-authorization", SEP-990) from the
// outside: a real enterprise identity provider (oidc-provider, test/helpers/enterprise-idp.ts) logs a
// user in and exchanges the ID token for an ID-JAG (RFC 8693, draft-ietf-oauth-identity-assertion-
// authz-grant), which a client brings to the broker's token endpoint (RFC 7523 jwt-bearer) for the
// broker's own access token. The broker finds the IdP's keys through its discovery document. Every
// refused assertion is an OAuth error with its reason in the metric and the log, and never a request
// at the upstream.
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client, CrossAppAccessProvider, discoverAndRequestJwtAuthGrant, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { calculateJwkThumbprint, decodeJwt, exportJWK, generateKeyPair, SignJWT, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JWT_BEARER_GRANT } from '../../src/config/broker-schema.ts';
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.ts';
import { startEnterpriseIdp, type StartedEnterpriseIdp } from '../helpers/enterprise-idp.ts';
import { skipWithoutRedis, startRedis, type StartedRedis } from '../helpers/redis-server.ts';
import { assertNothingSecretLogged } from '../helpers/stack.ts';

const ID_JAG_PROFILE = 'urn:ietf:params:oauth:grant-profile:id-jag';
/** The enterprise app's client id at the broker, which the IdP puts in its ID-JAGs' client_id. */
const APP = 'enterprise-chat';
/** Another confidential client with the jwt-bearer grant: it must not redeem the app's ID-JAGs. */
const OTHER_APP = 'enterprise-notes';
/** A confidential machine client without the jwt-bearer grant. */
const MACHINE = 'nightly-report';
/** A name the IdP may use for the broker in `aud` besides its issuer (trusted_issuers[].audiences). */
const ALIAS_AUDIENCE = 'urn:example:mcp-warden';

const SECRETS = { [APP]: randomBytes(24).toString('base64url'), [OTHER_APP]: randomBytes(24).toString('base64url'), [MACHINE]: randomBytes(24).toString('base64url') };
const SECRET_ENV = { [APP]: 'WARDEN_TEST_ENTERPRISE_APP_SECRET', [OTHER_APP]: 'WARDEN_TEST_ENTERPRISE_OTHER_SECRET', [MACHINE]: 'WARDEN_TEST_ENTERPRISE_MACHINE_SECRET' };
for (const [client, name] of Object.entries(SECRET_ENV)) process.env[name] = SECRETS[client as keyof typeof SECRETS];

type ClientId = keyof typeof SECRETS;

const clients = [
  { client_id: APP, grant_types: [JWT_BEARER_GRANT], client_secret: `\${env:${SECRET_ENV[APP]}}` },
  { client_id: OTHER_APP, grant_types: [JWT_BEARER_GRANT], client_secret: `\${env:${SECRET_ENV[OTHER_APP]}}` },
  { client_id: MACHINE, grant_types: ['client_credentials'], client_secret: `\${env:${SECRET_ENV[MACHINE]}}` },
];

const basic = (client: ClientId) => `Basic ${Buffer.from(`${client}:${SECRETS[client]}`).toString('base64')}`;

/** A jwt-bearer token request, authenticated with client_secret_basic as the SDK does. */
function redeem(base: string, assertion: string, options: { client?: ClientId; form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<Response> {
  return fetch(`${base}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(options.client ?? APP), ...options.headers },
    body: new URLSearchParams({ grant_type: JWT_BEARER_GRANT, assertion, ...options.form }),
    signal: AbortSignal.timeout(5000),
  });
}

/** The count of `mcp_warden_broker_events_total{event="token:jwt_bearer",result}` at a replica's admin port. */
async function jwtBearerEvents(replica: { adminUrl: string }, result: string): Promise<number> {
  const text = await (await fetch(`${replica.adminUrl}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  const line = text.split('\n').find((row) => row.startsWith('mcp_warden_broker_events_total{') && row.includes('event="token:jwt_bearer"') && row.includes(`result="${result}"`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

/** A DPoP proof (RFC 9449 §4.2) for a POST to `url`, and the thumbprint of its key. */
async function dpopProof(url: string): Promise<{ proof: string; jkt: string }> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = await exportJWK(publicKey);
  const proof = await new SignJWT({ htm: 'POST', htu: url, jti: randomUUID() }).setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk }).setIssuedAt().sign(privateKey);
  return { proof, jkt: await calculateJwkThumbprint(jwk) };
}

describe('enterprise-managed authorization: ID-JAGs at the broker token endpoint', () => {
  let idp: StartedEnterpriseIdp;
  /** An identity provider the broker does not trust, with its own keys. */
  let rogue: StartedEnterpriseIdp;
  let stack: BrokerStack;
  /** A trusted issuer that answers every request with 503: its keys cannot be had. */
  let down: Server;
  let downIssuer: string;
  /** A correct ID-JAG's claims for the app, for this broker and resource, fresh jti. */
  let good: (extra?: JWTPayload) => JWTPayload;

  beforeAll(async () => {
    [idp, rogue] = await Promise.all([startEnterpriseIdp({ resourceClientId: APP }), startEnterpriseIdp({ resourceClientId: APP, account: 'rogue-user' })]);
    // Listening (rather than a closed port) so no other server can take its port and answer for it.
    down = createServer((_req, res) => res.writeHead(503).end()).listen(0, '127.0.0.1');
    await once(down, 'listening');
    downIssuer = `http://127.0.0.1:${(down.address() as AddressInfo).port}`;
    // No jwks_uri: the broker finds the keys through the IdP's discovery document.
    stack = await startBrokerStack({ clients, enterprise: { trusted_issuers: [{ issuer: idp.issuer, audiences: [ALIAS_AUDIENCE] }, { issuer: downIssuer }] } });
    good = (extra = {}) => idp.claims(stack.issuer, stack.mcpUrl, extra);
  });

  afterAll(async () => {
    const logs = stack ? [...stack.logs] : [];
    await stack?.close();
    down?.closeAllConnections();
    await Promise.all([idp?.close(), rogue?.close(), down && new Promise((resolve) => down.close(resolve))]);
    assertNothingSecretLogged(logs, Object.values(SECRETS));
  });

  it('advertises the jwt-bearer grant and the ID-JAG grant profile in its authorization server metadata', async () => {
    const metadata = (await (await fetch(`${stack.issuer}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    expect(metadata.issuer).toBe(stack.issuer);
    expect(metadata.grant_types_supported).toContain(JWT_BEARER_GRANT);
    expect(metadata.authorization_grant_profiles_supported).toEqual([ID_JAG_PROFILE]);
    expect(metadata.token_endpoint_auth_methods_supported).toContain('client_secret_basic');
  });

  it('lets the SDK 2.x CrossAppAccessProvider call a tool with an ID-JAG the enterprise IdP issued by token exchange', async () => {
    const idToken = await idp.login();
    const tokenResponses: Array<Record<string, unknown>> = [];
    const assertions: string[] = [];
    // The transport's fetch, recording the broker's token responses as they were on the wire.
    const recording: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      if (String(input instanceof Request ? input.url : input) === `${stack.issuer}/oauth/token`) tokenResponses.push((await response.clone().json()) as Record<string, unknown>);
      return response;
    };
    const provider = new CrossAppAccessProvider({
      assertion: async (ctx) => {
        const { jwtAuthGrant } = await discoverAndRequestJwtAuthGrant({
          idpUrl: idp.issuer,
          audience: ctx.authorizationServerUrl,
          resource: ctx.resourceUrl,
          idToken,
          clientId: idp.client.client_id,
          clientSecret: idp.client.client_secret,
          ...(ctx.scope ? { scope: ctx.scope } : {}),
          fetchFn: ctx.fetchFn,
        });
        assertions.push(jwtAuthGrant);
        return jwtAuthGrant;
      },
      clientId: APP,
      clientSecret: SECRETS[APP],
      expectedIssuer: stack.issuer,
    });
    const before = stack.mcp.requests.length;
    const client = new Client({ name: 'enterprise-chat', version: '1.0.0' }, { versionNegotiation: { mode: 'auto' } });
    try {
      await client.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl), { authProvider: provider, fetch: recording }));
      const result = await client.callTool({ name: 'echo', arguments: { text: 'hello from the enterprise' } });
      expect(result.content).toEqual([{ type: 'text', text: 'hello from the enterprise' }]);
    } finally {
      await client.close();
    }
    expect(stack.mcp.requests.length).toBeGreaterThan(before);
    expect(assertions).toHaveLength(1);
    expect(decodeJwt(assertions[0]!)).toMatchObject({ iss: idp.issuer, sub: 'enterprise-user-1', aud: stack.issuer, client_id: APP, resource: stack.mcpUrl });
    expect(tokenResponses).toHaveLength(1);
    const response = tokenResponses[0]!;
    expect(response.token_type).toBe('Bearer');
    // No refresh token: the client brings a new ID-JAG.
    expect(response).not.toHaveProperty('refresh_token');
    // The enterprise IdP is not the one the broker logs people in at: its users are namespaced by issuer.
    expect(decodeJwt(response.access_token as string)).toMatchObject({ iss: stack.issuer, sub: `${idp.issuer}#enterprise-user-1`, client_id: APP, aud: stack.mcpUrl });
    // The broker found the keys through discovery; the logs name neither the ID token nor the ID-JAG.
    expect(idp.requestCount('/jwks')).toBeGreaterThan(0);
    const logged = JSON.stringify(stack.logs);
    expect(logged).not.toContain(assertions[0]);
    expect(logged).not.toContain(idToken);
  });

  it('takes an ID-JAG whose aud is a one-element array, or an audience configured for its issuer', async () => {
    for (const aud of [[stack.issuer], ALIAS_AUDIENCE]) {
      const response = await redeem(stack.issuer, await idp.sign(good({ aud })));
      expect(response.status, JSON.stringify(aud)).toBe(200);
      expect(decodeJwt(((await response.json()) as { access_token: string }).access_token)).toMatchObject({ sub: `${idp.issuer}#enterprise-user-1`, client_id: APP });
    }
  });

  it("narrows the token's scope to the ID-JAG's, and refuses a request for nothing the ID-JAG grants", async () => {
    const narrowed = await redeem(stack.issuer, await idp.sign(good({ scope: 'mcp:read' })), { form: { scope: 'mcp:read mcp:write' } });
    expect(narrowed.status).toBe(200);
    expect(((await narrowed.json()) as { scope: string }).scope).toBe('mcp:read');
    const none = await redeem(stack.issuer, await idp.sign(good({ scope: 'mcp:read' })), { form: { scope: 'mcp:write' } });
    expect(none.status).toBe(400);
    expect(await none.json()).toMatchObject({ error: 'invalid_scope' });
  });

  it('takes typ with its application/ prefix, as RFC 7515 §4.1.9 makes it the same type', async () => {
    const response = await redeem(stack.issuer, await idp.sign(good(), { typ: 'application/oauth-id-jag+jwt' }));
    expect(response.status).toBe(200);
  });

  it("keeps another issuer's users apart from the login's: the same sub, and its client's id, name no one else", async () => {
    const viaEnterprise = await redeem(stack.issuer, await idp.sign(good({ sub: 'idp-user-1' })));
    expect(decodeJwt(((await viaEnterprise.json()) as { access_token: string }).access_token).sub).toBe(`${idp.issuer}#idp-user-1`);
    // An ID-JAG naming the client as its user gets a namespaced subject, never a machine's (sub = client_id).
    const namedAsClient = await redeem(stack.issuer, await idp.sign(good({ sub: APP })));
    expect(decodeJwt(((await namedAsClient.json()) as { access_token: string }).access_token)).toMatchObject({ sub: `${idp.issuer}#${APP}`, client_id: APP });
  });

  it('binds the token to the key of the DPoP proof an ID-JAG with cnf.jkt is presented with', async () => {
    const { proof, jkt } = await dpopProof(`${stack.issuer}/oauth/token`);
    const response = await redeem(stack.issuer, await idp.sign(good({ cnf: { jkt } })), { headers: { dpop: proof } });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { token_type: string; access_token: string };
    expect(body.token_type).toBe('DPoP');
    expect(decodeJwt(body.access_token).cnf).toEqual({ jkt });
  });

  interface Refusal {
    readonly name: string;
    /** The request's assertion, and who presents it. */
    readonly build: () => Promise<{ assertion: string; client?: ClientId; form?: Record<string, string>; headers?: Record<string, string> }>;
    readonly status?: number;
    /** Response headers the refusal must carry. */
    readonly answers?: Record<string, string>;
    readonly error: string;
    readonly reason: string;
  }

  const refusals: Refusal[] = [
    { name: 'an ID-JAG from an issuer not in trusted_issuers', build: async () => ({ assertion: await rogue.sign(rogue.claims(stack.issuer, stack.mcpUrl)) }), error: 'invalid_grant', reason: 'untrusted_issuer' },
    { name: 'an ID-JAG for another authorization server', build: async () => ({ assertion: await idp.sign(good({ aud: 'https://as.other.example' })) }), error: 'invalid_grant', reason: 'wrong_audience' },
    { name: 'an ID-JAG whose aud names the broker and another server', build: async () => ({ assertion: await idp.sign(good({ aud: [stack.issuer, 'https://as.other.example'] })) }), error: 'invalid_grant', reason: 'wrong_audience' },
    { name: 'an ID-JAG for another resource', build: async () => ({ assertion: await idp.sign(good({ resource: 'http://127.0.0.1:1/other-mcp' })) }), error: 'invalid_grant', reason: 'wrong_resource' },
    { name: 'an ID-JAG that names no resource', build: async () => ({ assertion: await idp.sign(good({ resource: undefined })) }), error: 'invalid_grant', reason: 'wrong_resource' },
    {
      name: 'an ID-JAG that expired a minute ago',
      build: async () => {
        const now = Math.floor(Date.now() / 1000);
        return { assertion: await idp.sign(good({ iat: now - 120, exp: now - 60 })) };
      },
      error: 'invalid_grant',
      reason: 'expired',
    },
    {
      name: 'an ID-JAG that lives an hour (max_assertion_lifetime is 10m)',
      build: async () => {
        const now = Math.floor(Date.now() / 1000);
        return { assertion: await idp.sign(good({ iat: now, exp: now + 3600 })) };
      },
      error: 'invalid_grant',
      reason: 'lifetime_too_long',
    },
    {
      name: 'an ID-JAG used a second time',
      build: async () => {
        const assertion = await idp.sign(good());
        expect((await redeem(stack.issuer, assertion)).status).toBe(200);
        return { assertion };
      },
      error: 'invalid_grant',
      reason: 'replayed',
    },
    { name: "an ID-JAG for one client presented by another with that one's valid secret", build: async () => ({ assertion: await idp.sign(good()), client: OTHER_APP }), error: 'invalid_grant', reason: 'client_mismatch' },
    {
      name: 'an ID-JAG issued a minute in the future',
      build: async () => {
        const now = Math.floor(Date.now() / 1000);
        return { assertion: await idp.sign(good({ iat: now + 60, exp: now + 300 })) };
      },
      error: 'invalid_grant',
      reason: 'not_yet_valid',
    },
    {
      name: 'an ID-JAG signed HS256 (a shared secret is no issuer key)',
      build: async () => ({ assertion: await new SignJWT(good()).setProtectedHeader({ alg: 'HS256', typ: 'oauth-id-jag+jwt' }).sign(randomBytes(32)) }),
      error: 'invalid_grant',
      reason: 'algorithm',
    },
    {
      name: 'an ID-JAG from a trusted issuer whose keys cannot be fetched',
      build: async () => ({ assertion: await rogue.sign({ ...good(), iss: downIssuer }) }),
      status: 503,
      answers: { 'retry-after': '5' },
      error: 'temporarily_unavailable',
      reason: 'issuer_keys_unavailable',
    },
    { name: 'a JWT of typ JWT', build: async () => ({ assertion: await idp.sign(good(), { typ: 'JWT' }) }), error: 'invalid_grant', reason: 'wrong_type' },
    { name: 'a JWT without typ', build: async () => ({ assertion: await idp.sign(good(), { typ: undefined }) }), error: 'invalid_grant', reason: 'wrong_type' },
    {
      name: "an ID-JAG signed by another key under the IdP's kid",
      build: async () => {
        const { privateKey } = await generateKeyPair('RS256');
        const kid = (JSON.parse(Buffer.from((await idp.sign(good())).split('.')[0]!, 'base64url').toString()) as { kid: string }).kid;
        return { assertion: await new SignJWT(good()).setProtectedHeader({ alg: 'RS256', kid, typ: 'oauth-id-jag+jwt' }).sign(privateKey) };
      },
      error: 'invalid_grant',
      reason: 'bad_signature',
    },
    {
      name: 'an ID-JAG whose subject was changed after signing',
      build: async () => {
        const [header, , signature] = (await idp.sign(good())).split('.');
        const forged = Buffer.from(JSON.stringify(good({ sub: 'ceo' }))).toString('base64url');
        return { assertion: `${header}.${forged}.${signature}` };
      },
      error: 'invalid_grant',
      reason: 'bad_signature',
    },
    { name: 'an ID-JAG bound by cnf.jkt, without a DPoP proof', build: async () => ({ assertion: await idp.sign(good({ cnf: { jkt: (await dpopProof(`${stack.issuer}/oauth/token`)).jkt } })) }), error: 'invalid_grant', reason: 'proof_required' },
    {
      name: 'an ID-JAG bound by cnf.jkt, with a DPoP proof of another key',
      build: async () => {
        const { proof } = await dpopProof(`${stack.issuer}/oauth/token`);
        const { jkt } = await dpopProof(`${stack.issuer}/oauth/token`);
        return { assertion: await idp.sign(good({ cnf: { jkt } })), headers: { dpop: proof } };
      },
      error: 'invalid_grant',
      reason: 'proof_key_mismatch',
    },
    { name: 'an ID-JAG whose sub is not a string', build: async () => ({ assertion: await idp.sign(good({ sub: 12345 as unknown as string })) }), error: 'invalid_grant', reason: 'missing_claim' },
    { name: 'an ID-JAG whose scope is an array, which would be no ceiling', build: async () => ({ assertion: await idp.sign(good({ scope: ['mcp:read'] })), form: { scope: 'mcp:write' } }), error: 'invalid_grant', reason: 'malformed_scope' },
    { name: 'a valid ID-JAG from a confidential client without the jwt-bearer grant', build: async () => ({ assertion: await idp.sign(good({ client_id: MACHINE })), client: MACHINE }), error: 'unauthorized_client', reason: 'grant_not_registered' },
    { name: 'a valid ID-JAG with a resource parameter naming another resource', build: async () => ({ assertion: await idp.sign(good()), form: { resource: 'http://127.0.0.1:1/other-mcp' } }), error: 'invalid_target', reason: 'wrong_resource' },
    {
      name: "a valid ID-JAG with the client's secret wrong",
      build: async () => ({ assertion: await idp.sign(good()), headers: { authorization: `Basic ${Buffer.from(`${APP}:not-the-secret`).toString('base64')}` } }),
      status: 401,
      error: 'invalid_client',
      reason: 'bad_secret',
    },
  ];

  for (const { name, build, status, answers, error, reason } of refusals) {
    it(`refuses ${name} (${error}, ${reason}), and nothing reaches the upstream`, async () => {
      const { assertion, client, form, headers } = await build();
      const upstreamBefore = stack.mcp.requests.length;
      const countBefore = await jwtBearerEvents(stack.warden, reason);
      const logsBefore = stack.logs.length;
      const response = await redeem(stack.issuer, assertion, { ...(client ? { client } : {}), ...(form ? { form } : {}), ...(headers ? { headers } : {}) });
      const body = (await response.json()) as Record<string, unknown>;
      expect({ status: response.status, error: body.error }, JSON.stringify(body)).toEqual({ status: status ?? 400, error });
      expect(body).not.toHaveProperty('access_token');
      for (const [header, value] of Object.entries(answers ?? {})) expect(response.headers.get(header), header).toBe(value);
      expect(await jwtBearerEvents(stack.warden, reason)).toBe(countBefore + 1);
      expect(stack.logs.slice(logsBefore).filter((line) => line.msg === 'broker: token request refused')).toEqual([
        expect.objectContaining({ grant_type: 'jwt_bearer', error, reason, client_id: client ?? APP }),
      ]);
      expect(stack.mcp.requests.length).toBe(upstreamBefore);
      const logged = JSON.stringify(stack.logs);
      expect(logged).not.toContain(assertion);
      for (const secret of Object.values(SECRETS)) expect(logged).not.toContain(secret);
    });
  }

  it('fetches nothing from an untrusted issuer the assertion names', async () => {
    const response = await redeem(stack.issuer, await rogue.sign(rogue.claims(stack.issuer, stack.mcpUrl)));
    expect(response.status).toBe(400);
    expect(rogue.requestCount('/jwks') + rogue.requestCount('/.well-known/openid-configuration') + rogue.requestCount('/.well-known/oauth-authorization-server')).toBe(0);
  });
});

/** Two replicas on one real redis-server: the jti an ID-JAG was redeemed with is spent for both. */
describe.skipIf(skipWithoutRedis)('enterprise-managed authorization across two broker replicas sharing a Redis store', () => {
  const REDIS_URL_ENV = 'WARDEN_TEST_ENTERPRISE_REDIS_URL';
  let redis: StartedRedis;
  let idp: StartedEnterpriseIdp;
  let stack: BrokerStack;

  beforeAll(async () => {
    [redis, idp] = await Promise.all([startRedis(), startEnterpriseIdp({ resourceClientId: APP })]);
    process.env[REDIS_URL_ENV] = redis.url;
    // Here the keys come from a configured jwks_uri instead of discovery.
    stack = await startBrokerStack(
      // subject_prefix '': the operator says this issuer's subjects are the broker's own.
      { clients, enterprise: { trusted_issuers: [{ issuer: idp.issuer, jwks_uri: `${idp.issuer}/jwks`, subject_prefix: '' }] }, store: { type: 'redis', url: `\${env:${REDIS_URL_ENV}}`, key_prefix: 'enterprise' } },
      { replicas: 2 },
    );
  });

  afterAll(async () => {
    const logs = stack ? [...stack.logs] : [];
    await stack?.close();
    await Promise.all([idp?.close(), redis?.close()]);
    assertNothingSecretLogged(logs, Object.values(SECRETS));
  });

  it("takes the ID-JAG's sub as it is with subject_prefix '', and refuses one naming its client as the user: it would read as a machine's", async () => {
    const response = await redeem(stack.replicaUrls[0]!, await idp.sign(idp.claims(stack.issuer, stack.mcpUrl)));
    expect(decodeJwt(((await response.json()) as { access_token: string }).access_token).sub).toBe('enterprise-user-1');
    const upstreamBefore = stack.mcp.requests.length;
    const refused = await redeem(stack.replicaUrls[0]!, await idp.sign(idp.claims(stack.issuer, stack.mcpUrl, { sub: APP })));
    expect({ status: refused.status, body: await refused.json() }).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    expect(stack.logs).toContainEqual(expect.objectContaining({ msg: 'broker: token request refused', grant_type: 'jwt_bearer', reason: 'subject_is_client', client_id: APP }));
    expect(stack.mcp.requests.length).toBe(upstreamBefore);
  });

  it('redeems one ID-JAG exactly once under 20 concurrent requests spread over both replicas', async () => {
    const assertion = await idp.sign(idp.claims(stack.issuer, stack.mcpUrl));
    const responses = await Promise.all(Array.from({ length: 20 }, (_, i) => redeem(stack.replicaUrls[i % 2]!, assertion)));
    const statuses = responses.map((response) => response.status);
    expect(statuses.filter((status) => status === 200)).toHaveLength(1);
    expect(statuses.filter((status) => status === 400)).toHaveLength(19);
  });

  it('refuses at replica B an ID-JAG already redeemed at replica A', async () => {
    const [a, b] = stack.replicaUrls as [string, string];
    const assertion = await idp.sign(idp.claims(stack.issuer, stack.mcpUrl));
    const first = await redeem(a, assertion);
    expect(first.status).toBe(200);
    const upstreamBefore = stack.mcp.requests.length;
    const replayedBefore = await jwtBearerEvents(stack.wardens[1]!, 'replayed');
    const again = await redeem(b, assertion);
    expect({ status: again.status, body: await again.json() }).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    expect(await jwtBearerEvents(stack.wardens[1]!, 'replayed')).toBe(replayedBefore + 1);
    expect(stack.logs).toContainEqual(expect.objectContaining({ msg: 'broker: token request refused', grant_type: 'jwt_bearer', error: 'invalid_grant', reason: 'replayed', client_id: APP }));
    expect(stack.mcp.requests.length).toBe(upstreamBefore);
    expect(JSON.stringify(stack.logs)).not.toContain(assertion);
    // The configured jwks_uri is used as it is: the IdP's discovery document was never asked for.
    expect(idp.requestCount('/jwks')).toBeGreaterThan(0);
    expect(idp.requestCount('/.well-known/openid-configuration') + idp.requestCount('/.well-known/oauth-authorization-server')).toBe(0);
  });
});
