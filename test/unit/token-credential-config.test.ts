import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.ts';
import { problemsOf } from '../helpers/config-problems.ts';

const head = `
resource: { url: https://mcp.example.com/mcp }
authorization_servers: [{ issuer: https://idp.example.com }]
`;


const http = (credential: string) => `${head}upstream: { url: "http://127.0.0.1:3000", credential: ${credential} }`;

describe('token credentials in the config', () => {
  it('fills the defaults of a client_credentials credential', () => {
    const config = parseConfigText(http('{ type: client_credentials, issuer: "https://idp.example.com", client_id: warden, client_secret: "${env:S}" }'));
    expect(config.upstream.credential).toMatchObject({ type: 'client_credentials', auth_method: 'client_secret_basic', header: 'Authorization', scope: [], timeout: 5000, refresh_before: 60_000 });
  });

  it('fills the defaults of a token_exchange credential', () => {
    const config = parseConfigText(http('{ type: token_exchange, token_endpoint: "https://idp.example.com/token", client_id: warden, client_secret: "${env:S}", audience: legacy }'));
    expect(config.upstream.credential).toMatchObject({ type: 'token_exchange', profile: 'rfc8693', requested_token_type: 'urn:ietf:params:oauth:token-type:access_token', cache_entries: 10_000 });
  });

  it.each([
    ['neither issuer nor token_endpoint', '{ type: client_credentials, client_id: w, client_secret: "${env:S}" }', 'upstream.credential.issuer', 'give exactly one of issuer'],
    ['both issuer and token_endpoint', '{ type: client_credentials, issuer: "https://a.example", token_endpoint: "https://a.example/t", client_id: w, client_secret: "${env:S}" }', 'upstream.credential.issuer', 'give exactly one of issuer'],
    ['a secret auth method without a secret', '{ type: client_credentials, issuer: "https://a.example", client_id: w }', 'upstream.credential.client_secret', 'required with auth_method client_secret_basic'],
    ['private_key_jwt without a key', '{ type: client_credentials, issuer: "https://a.example", client_id: w, auth_method: private_key_jwt }', 'upstream.credential.private_key', 'required with auth_method private_key_jwt'],
    ['a secret written into the YAML', '{ type: client_credentials, issuer: "https://a.example", client_id: w, client_secret: hunter2 }', 'upstream.credential.client_secret', 'secrets are never written in the config'],
    ['a plain-http token endpoint off loopback', '{ type: token_exchange, token_endpoint: "http://idp.example.com/token", client_id: w, client_secret: "${env:S}", audience: a }', 'upstream.credential.token_endpoint', 'plain http:// is allowed only for loopback hosts'],
    ['an exchange that names no upstream', '{ type: token_exchange, issuer: "https://a.example", client_id: w, client_secret: "${env:S}" }', 'upstream.credential.audience', 'name the upstream'],
    ['Entra on-behalf-of without a scope', '{ type: token_exchange, profile: entra_obo, issuer: "https://a.example", client_id: w, client_secret: "${env:S}" }', 'upstream.credential.scope', 'Entra ID on-behalf-of needs the upstream scope'],
    ['a stdio variable for an HTTP upstream', '{ type: client_credentials, issuer: "https://a.example", client_id: w, client_secret: "${env:S}", env: TOKEN }', 'upstream.credential.env', 'only for a stdio upstream'],
  ])('refuses %s, naming the path', (_what, credential, path, message) => {
    expect(problemsOf(http(credential))).toContainEqual({ path, message: expect.stringContaining(message) });
  });

  it('refuses token exchange for a stdio upstream, and wants the variable for client credentials there', () => {
    const stdio = (credential: string) => `${head}upstream: { command: [server], credential: ${credential} }`;
    expect(problemsOf(stdio('{ type: token_exchange, issuer: "https://a.example", client_id: w, client_secret: "${env:S}", audience: a }'))).toContainEqual({
      path: 'upstream.credential.type',
      message: expect.stringContaining("a stdio child lives longer than a user's exchanged token"),
    });
    expect(problemsOf(stdio('{ type: client_credentials, issuer: "https://a.example", client_id: w, client_secret: "${env:S}" }'))).toContainEqual({ path: 'upstream.credential.env', message: expect.stringContaining('name it') });
    expect(parseConfigText(stdio('{ type: client_credentials, issuer: "https://a.example", client_id: w, client_secret: "${env:S}", env: UPSTREAM_TOKEN }')).upstream.credential).toMatchObject({ env: 'UPSTREAM_TOKEN' });
  });

  it('refuses an identity header that collides with the token header', () => {
    expect(problemsOf(`${head}upstream: { url: "http://127.0.0.1:3000", identity_headers: { X-Upstream-Token: sub }, credential: { type: client_credentials, issuer: "https://a.example", client_id: w, client_secret: "\${env:S}", header: X-Upstream-Token } }`)).toContainEqual({
      path: 'upstream.identity_headers.X-Upstream-Token',
      message: 'collides with the upstream credential header',
    });
  });
});
