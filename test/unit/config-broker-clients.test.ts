import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.ts';
import { isMachine } from '../../src/auth/principal.ts';
import { enterpriseIssuers } from '../../src/broker/enterprise-issuers.ts';
import { userTokenCredential } from '../../src/upstream/credential.ts';
import { problemsOf } from '../helpers/config-problems.ts';

const BASE = `
resource: { url: https://mcp.example.com/mcp, scopes_supported: [mcp:read, mcp:write] }
upstream: { url: http://127.0.0.1:3000 }
broker:
  identity_provider: { issuer: https://login.example.com, client_id: mcp-warden, client_secret: "\${env:IDP_SECRET}" }
`;
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const ENTERPRISE = '  enterprise: { trusted_issuers: [{ issuer: https://corp-idp.example.com }] }\n';
const clients = (...entries: string[]) => `  clients:\n${entries.map((entry) => `    - ${entry}\n`).join('')}`;

let publicJwk: string;

beforeAll(async () => {
  const { publicKey } = await generateKeyPair('ES256');
  publicJwk = JSON.stringify(await exportJWK(publicKey));
});

describe('config: broker clients and enterprise issuers', () => {
  it('keeps a pre-registered client interactive by default, and a machine client needs no redirect URI', () => {
    const config = parseConfigText(
      BASE + clients('{ client_id: app, redirect_uris: [https://app.example.com/cb] }', '{ client_id: bot, grant_types: [client_credentials], client_secret: "${env:BOT_SECRET}", scopes: [mcp:read] }'),
    );
    expect(config.broker!.clients.map((client) => client.grant_types)).toEqual([['authorization_code', 'refresh_token'], ['client_credentials']]);
    expect(config.broker!.tokens.max_assertion_lifetime).toBe(600_000);
  });

  it('accepts a private_key_jwt client with public keys, and an enterprise client with trusted issuers', () => {
    const config = parseConfigText(`${BASE}${ENTERPRISE}${clients(`{ client_id: bot, grant_types: [client_credentials], jwks: { keys: [${publicJwk}] } }`, `{ client_id: agent, grant_types: ["${JWT_BEARER}"], client_secret: "\${env:AGENT_SECRET}" }`)}`);
    expect(config.broker!.enterprise!.trusted_issuers[0]).toMatchObject({ issuer: 'https://corp-idp.example.com', audiences: [], algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'] });
  });

  it('reads jwks from a mounted file as well as inline, and says what it expected of a file that is no JWK Set', () => {
    const dir = mkdtempSync(join(tmpdir(), 'warden-jwks-'));
    writeFileSync(join(dir, 'jwks.json'), `{"keys":[${publicJwk}]}`);
    writeFileSync(join(dir, 'bad.json'), 'not json');
    const config = parseConfigText(BASE + clients(`{ client_id: bot, grant_types: [client_credentials], jwks: "\${file:${join(dir, 'jwks.json')}}" }`));
    expect(config.broker!.clients[0]!.jwks!.keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256' });
    expect(problemsOf(BASE + clients(`{ client_id: bot, grant_types: [client_credentials], jwks: "\${file:${join(dir, 'bad.json')}}" }`))).toEqual([
      { path: 'broker.clients[0].jwks', message: expect.stringContaining('expected a JWK Set') },
    ]);
  });

  it('refuses an interactive client without redirect URIs, and redirect URIs or refresh tokens a machine would never use', () => {
    expect(problemsOf(BASE + clients('{ client_id: app }'))).toEqual([{ path: 'broker.clients[0].redirect_uris', message: expect.stringContaining('at least one redirect URI') }]);
    expect(problemsOf(BASE + clients('{ client_id: bot, grant_types: [client_credentials, refresh_token], client_secret: "${env:S}", redirect_uris: [https://bot.example.com/cb] }'))).toEqual([
      { path: 'broker.clients[0].redirect_uris', message: expect.stringContaining('only authorization_code uses redirect URIs') },
      { path: 'broker.clients[0].grant_types', message: expect.stringContaining('refresh_token comes with authorization_code') },
    ]);
  });

  it('refuses client_credentials and jwt-bearer for a public client, jwt-bearer without trusted issuers, and two credentials at once', () => {
    expect(problemsOf(BASE + clients(`{ client_id: bot, grant_types: [client_credentials, "${JWT_BEARER}"] }`))).toEqual([
      { path: 'broker.clients[0].grant_types', message: expect.stringContaining('client_credentials is for confidential clients') },
      { path: 'broker.clients[0].grant_types', message: expect.stringContaining(`${JWT_BEARER} is for confidential clients`) },
      { path: 'broker.clients[0].grant_types', message: expect.stringContaining('needs broker.enterprise.trusted_issuers') },
    ]);
    expect(problemsOf(BASE + clients(`{ client_id: bot, grant_types: [client_credentials], client_secret: "\${env:S}", jwks: { keys: [${publicJwk}] } }`))).toEqual([
      { path: 'broker.clients[0]', message: expect.stringContaining('client_secret or jwks, not both') },
    ]);
  });

  it('refuses private, symmetric and weak keys in jwks, and scopes the resource does not offer', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const privateJwk = JSON.stringify(await exportJWK(privateKey));
    const text = BASE + clients(`{ client_id: bot, grant_types: [client_credentials], jwks: { keys: [${privateJwk}, { kty: oct, k: c2VjcmV0 }, { kty: RSA, n: AQAB, e: AQAB }] }, scopes: [mcp:admin] }`);
    expect(problemsOf(text)).toEqual([
      { path: 'broker.clients[0].jwks.keys[0]', message: expect.stringContaining('private or symmetric') },
      { path: 'broker.clients[0].jwks.keys[1]', message: expect.stringContaining('private or symmetric') },
      { path: 'broker.clients[0].jwks.keys[2]', message: expect.stringContaining('at least 2048 bits') },
      { path: 'broker.clients[0].scopes', message: 'mcp:admin is not in resource.scopes_supported' },
    ]);
  });

  it("refuses the broker's own issuer as a trusted issuer, a repeated one, and plain http off loopback", () => {
    const text = `${BASE}  enterprise: { trusted_issuers: [{ issuer: https://mcp.example.com }, { issuer: http://corp.example.com }, { issuer: http://corp.example.com }] }\n`;
    expect(problemsOf(text)).toEqual([
      { path: 'broker.enterprise.trusted_issuers[1].issuer', message: expect.stringContaining('plain http://') },
      { path: 'broker.enterprise.trusted_issuers[2].issuer', message: expect.stringContaining('plain http://') },
      { path: 'broker.enterprise.trusted_issuers[0].issuer', message: expect.stringContaining('cannot vouch for itself') },
      { path: 'broker.enterprise.trusted_issuers[2].issuer', message: 'this issuer is listed twice' },
    ]);
  });

  it('with user_token upstream credentials, trusts only the identity provider: other subjects could name its users', () => {
    const text = `${BASE.replace('upstream: { url: http://127.0.0.1:3000 }', 'upstream: { url: http://127.0.0.1:3000, credential: { type: user_token } }')}  encryption_key: "\${env:KEY}"\n${ENTERPRISE}`;
    expect(problemsOf(text)).toEqual([{ path: 'broker.enterprise.trusted_issuers[0].issuer', message: expect.stringContaining('only broker.identity_provider.issuer') }]);
  });

  it("with user_token upstream credentials, refuses machine clients: no user's token could go upstream for them", () => {
    const text = `${BASE.replace('upstream: { url: http://127.0.0.1:3000 }', 'upstream: { url: http://127.0.0.1:3000, credential: { type: user_token } }')}  encryption_key: "\${env:KEY}"
${clients('{ client_id: bot, grant_types: [client_credentials], client_secret: "${env:S}" }')}`;
    expect(problemsOf(text)).toEqual([{ path: 'broker.clients[0].grant_types', message: expect.stringContaining('a machine has no user') }]);
  });

  it('caps max_assertion_lifetime at an hour: every assertion id is remembered that long', () => {
    expect(problemsOf(`${BASE}  tokens: { max_assertion_lifetime: 2h }\n`)).toEqual([{ path: 'broker.tokens.max_assertion_lifetime', message: expect.stringContaining('at most 3600s') }]);
  });
});

describe('user_token upstream credential and machines', () => {
  it("never sends a user's identity provider token for a machine that shares the user's identifier", () => {
    const credential = userTokenCredential({ issuer: 'https://broker.example', headersFor: (subject) => ({ ok: true, headers: { authorization: `Bearer token-of-${subject}` } }) });
    const principal = { issuer: 'https://broker.example', subject: 'alice', scopes: new Set<string>(), expiresAt: undefined, claims: {} };
    expect(credential.headers({ ...principal, clientId: 'some-app' })).toEqual({ ok: true, headers: { authorization: 'Bearer token-of-alice' } });
    const machine = { ...principal, clientId: 'alice' };
    expect(isMachine(machine)).toBe(true);
    expect(credential.headers(machine)).toEqual({ ok: false, problem: expect.stringContaining('machine client') });
  });
});

describe('enterprise issuers: whose users an ID-JAG names', () => {
  const prefixes = (enterprise: string, subjectClaim = 'sub') => {
    const config = parseConfigText(`${BASE.replace('client_secret: "${env:IDP_SECRET}" }', `client_secret: "\${env:IDP_SECRET}", subject_claim: ${subjectClaim} }`)}${enterprise}`);
    return [...enterpriseIssuers(config, config.broker!, 'https://mcp.example.com', () => undefined).values()].map((issuer) => issuer.subjectPrefix);
  };

  it("takes the login provider's subjects as they are, and namespaces any other issuer's by its issuer", () => {
    expect(prefixes('  enterprise: { trusted_issuers: [{ issuer: https://login.example.com }, { issuer: https://corp-idp.example.com }] }\n')).toEqual(['', 'https://corp-idp.example.com#']);
  });

  it("namespaces even the login provider's subjects when the login takes another claim than sub", () => {
    expect(prefixes('  enterprise: { trusted_issuers: [{ issuer: https://login.example.com }] }\n', 'email')).toEqual(['https://login.example.com#']);
  });

  it('lets the operator say which subjects are the same users: subject_prefix', () => {
    expect(prefixes('  enterprise: { trusted_issuers: [{ issuer: https://corp-idp.example.com, subject_prefix: "" }, { issuer: https://b.example.com, subject_prefix: "b:" }] }\n')).toEqual(['', 'b:']);
  });
});
