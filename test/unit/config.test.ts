import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigFile, parseConfigText } from '../../src/config/load.ts';
import { problemsOf } from '../helpers/config-problems.ts';

const minimal = `
resource: { url: https://mcp.example.com/mcp }
authorization_servers: [{ issuer: https://idp.example.com }]
upstream: { url: http://127.0.0.1:3000 }
`;


describe('config', () => {
  it('fills safe defaults around the three required keys', () => {
    const config = parseConfigText(minimal);
    expect(config.listen).toEqual({ host: '127.0.0.1', port: 8080, allowed_hosts: [] });
    expect(config.policy).toEqual({ scope_hierarchy: {}, rules: [], challenge_scope: 'granted_and_required', max_body_bytes: 4 * 1024 * 1024, expose: {}, max_response_bytes: 4 * 1024 * 1024 });
    expect(config.audit).toEqual({ tool_calls: true });
    expect(config.sessions).toEqual({ bind: true, max_entries: 10_000, idle_ttl: 86_400_000 });
    expect(config.logging).toEqual({ level: 'info', pretty: false });
    expect(config.admin).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(config.tokens.clock_tolerance).toBe(30_000);
    expect(config.tokens.jwks).toEqual({ timeout: 5000, cooldown: 30_000, refresh: 600_000, max_stale: 3_600_000 });
    expect(config.limits).toEqual({
      max_header_bytes: 16_384,
      max_headers: 100,
      headers_timeout: 10_000,
      request_timeout: 30_000,
      idle_timeout: 5_000,
      max_connections: 1024,
      max_connections_per_ip: 512,
      max_streams: 1000,
      max_streams_per_principal: 16,
      introspections_per_client: 50,
      max_concurrent_introspections: 64,
      // No request rate limit unless one is set.
      requests: { window: 60_000 },
      store: { type: 'memory', max_keys: 100_000 },
      on_store_error: 'allow',
    });
    expect(config.tracing).toMatchObject({ include_subject: false, max_queue: 2048 });
    expect(config.tracing.endpoint).toBeUndefined();
    expect(config.upstream.strip_response_headers).toEqual([]);
    expect(config.authorization_servers[0]).toMatchObject({ algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'], require_at_jwt_typ: true });
    expect(config.upstream.credential).toEqual({ type: 'none' });
    expect(config.resource.root_metadata).toBe(true);
    expect(config.lifecycle.shutdown_grace).toBe(10_000);
  });

  it('loads config.example.yaml', () => {
    process.env.UPSTREAM_API_KEY = 'example-key';
    const config = loadConfigFile(new URL('../../config.example.yaml', import.meta.url).pathname);
    expect(config.resource.url).toBe('https://mcp.example.com/mcp');
    expect(config.upstream.credential).toEqual({ type: 'header', name: 'X-API-Key', value: { kind: 'env', name: 'UPSTREAM_API_KEY' } });
  });

  it('reports every problem at once, each with its YAML path', () => {
    const problems = problemsOf(`
listen: { port: 99999, colour: blue }
resource: { url: not-a-url, scopes_supported: [offline_access] }
authorization_servers: [{ issuer: https://idp.example.com, algorithms: [none, HS256] }]
tokens: { clock_tolerance: 5 minutes }
upstream: { url: http://127.0.0.1:3000, credential: { type: bearer, value: hunter2 } }
`);
    const paths = problems.map((problem) => problem.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        'listen.port',
        'listen.colour',
        'resource.url',
        'resource.scopes_supported[0]',
        'authorization_servers[0].algorithms[0]',
        'authorization_servers[0].algorithms[1]',
        'tokens.clock_tolerance',
        'upstream.credential.value',
      ]),
    );
    expect(problems.find((problem) => problem.path === 'listen.colour')?.message).toBe('unknown key');
    expect(problems.find((problem) => problem.path === 'upstream.credential.value')?.message).toMatch(/never written in the config/);
  });

  it('names the missing required keys', () => {
    const paths = problemsOf('logging: { level: info }').map((problem) => problem.path);
    expect(paths).toEqual(expect.arrayContaining(['resource', 'authorization_servers', 'upstream']));
  });

  it('substitutes ${env:NAME} and ${file:/path} in settings, and reports unresolved references', () => {
    const dir = mkdtempSync(join(tmpdir(), 'warden-config-'));
    writeFileSync(join(dir, 'issuer'), 'https://idp.example.com/realms/from-file\n');
    process.env.WARDEN_TEST_HOST = 'mcp.example.com';
    const config = parseConfigText(`
resource: { url: "https://\${env:WARDEN_TEST_HOST}/mcp" }
authorization_servers: [{ issuer: "\${file:${join(dir, 'issuer')}}" }]
upstream: { url: http://127.0.0.1:3000 }
`);
    expect(config.resource.url).toBe('https://mcp.example.com/mcp');
    expect(config.authorization_servers[0]!.issuer).toBe('https://idp.example.com/realms/from-file');
    const problems = problemsOf(minimal.replace('https://idp.example.com', '"${env:WARDEN_TEST_UNSET}"'));
    expect(problems).toEqual([{ path: 'authorization_servers[0].issuer', message: 'environment variable WARDEN_TEST_UNSET is not set' }]);
  });

  it('parses durations with units and refuses a clock tolerance over 60s', () => {
    const config = parseConfigText(`${minimal}\ntokens: { clock_tolerance: 250ms }\nlifecycle: { shutdown_grace: 2m }`);
    expect(config.tokens.clock_tolerance).toBe(250);
    expect(config.lifecycle.shutdown_grace).toBe(120_000);
    expect(problemsOf(`${minimal}\ntokens: { clock_tolerance: 5m }`)[0]).toMatchObject({ path: 'tokens.clock_tolerance' });
  });

  it('refuses plain http for non-loopback resource and issuer URLs unless insecure_allow_http is set', () => {
    const text = minimal.replace('https://mcp.example.com/mcp', 'http://mcp.example.com/mcp').replace('https://idp.example.com', 'http://idp.example.com');
    expect(problemsOf(text).map((problem) => problem.path)).toEqual(['resource.url', 'authorization_servers[0].issuer']);
    expect(parseConfigText(`${text}\ninsecure_allow_http: true`).resource.url).toBe('http://mcp.example.com/mcp');
    expect(parseConfigText(minimal.replace('https://idp.example.com', 'http://127.0.0.1:9000')).authorization_servers).toHaveLength(1);
  });

  it('reports YAML syntax errors with their line', () => {
    expect(problemsOf('resource: [unclosed\n')[0]!.path).toMatch(/^line \d+, column \d+$/);
    expect(problemsOf('')).toEqual([{ path: '', message: 'the config is empty' }]);
  });

  it('takes introspection settings with a secret reference, and defaults the cache', () => {
    const config = parseConfigText(
      minimal.replace('[{ issuer: https://idp.example.com }]', '[{ issuer: https://idp.example.com, verify_jwt: false, introspection: { client_id: rs, client_secret: "${file:/run/secret}" } }]'),
    );
    expect(config.authorization_servers[0]!.introspection).toEqual({
      client_id: 'rs',
      client_secret: { kind: 'file', path: '/run/secret' },
      auth_method: 'client_secret_basic',
      timeout: 5000,
    });
    expect(config.tokens.cache).toEqual({ max_entries: 10_000, max_ttl: 300_000, negative_ttl: 10_000 });
  });

  it('refuses a server that could verify nothing, and an introspection secret written in the YAML', () => {
    expect(problemsOf(minimal.replace('[{ issuer: https://idp.example.com }]', '[{ issuer: https://idp.example.com, verify_jwt: false }]'))).toEqual([
      { path: 'authorization_servers[0]', message: 'with verify_jwt off, introspection is required: no token could be verified' },
    ]);
    const literal = minimal.replace('[{ issuer: https://idp.example.com }]', '[{ issuer: https://idp.example.com, introspection: { client_id: rs, client_secret: hunter2, auth_method: private_key_jwt } }]');
    expect(problemsOf(literal).map((problem) => problem.path)).toEqual([
      'authorization_servers[0].introspection.client_secret',
      'authorization_servers[0].introspection.auth_method',
    ]);
  });

  it('refuses duplicate keys and duplicate issuers', () => {
    expect(problemsOf(`${minimal}\nresource: { url: https://other.example.com }`)[0]!.message).toMatch(/invalid YAML/);
    const twice = minimal.replace('[{ issuer: https://idp.example.com }]', '[{ issuer: https://idp.example.com }, { issuer: https://idp.example.com }]');
    expect(problemsOf(twice)).toEqual([{ path: 'authorization_servers[1].issuer', message: 'this issuer is listed twice' }]);
  });
});

describe('config: broker mode', () => {
  const broker = `
resource: { url: https://mcp.example.com/mcp }
upstream: { url: http://127.0.0.1:3000 }
broker:
  identity_provider: { issuer: https://login.example.com/tenant/v2.0, client_id: mcp-warden, client_secret: "\${env:IDP_SECRET}" }
`;

  it('needs no authorization_servers, and fills the broker defaults', () => {
    const config = parseConfigText(broker);
    expect(config.authorization_servers).toEqual([]);
    expect(config.broker).toMatchObject({
      identity_provider: { client_secret: { kind: 'env', name: 'IDP_SECRET' }, scopes: ['openid'], subject_claim: 'sub', auth_method: 'client_secret_basic' },
      registration: { dynamic: true, max_clients: 10_000 },
      rate_limits: { registration: { per_ip: 10 }, authorize: { per_ip: 60, per_client: 600 }, token: { per_ip: 120, per_client: 600 } },
      consent: { remember: 30 * 86_400_000 },
      tokens: { access_ttl: 3_600_000, refresh_ttl: 30 * 86_400_000, code_ttl: 60_000, login_ttl: 600_000 },
      store: { type: 'sqlite', path: 'mcp-warden-broker.db' },
    });
  });

  it('still needs an issuer without a broker', () => {
    expect(problemsOf(minimal.replace('authorization_servers: [{ issuer: https://idp.example.com }]', ''))).toEqual([
      { path: 'authorization_servers', message: 'at least one authorization server is required, unless broker is configured' },
    ]);
  });

  it('refuses a client secret written in the YAML, unsafe redirect URIs, a login without openid, and the broker listed as a foreign issuer', () => {
    const problems = problemsOf(
      `${broker.replace('"${env:IDP_SECRET}"', 'plain-secret')}
  clients: [{ client_id: a, redirect_uris: [http://app.example.com/cb] }, { client_id: a, redirect_uris: [https://app.example.com/cb] }]
`,
    );
    expect(problems.map((problem) => problem.path)).toEqual(['broker.identity_provider.client_secret']);
    const more = problemsOf(
      `${broker.replace('client_id: mcp-warden,', 'client_id: mcp-warden, scopes: [email],')}
  clients: [{ client_id: a, redirect_uris: [http://app.example.com/cb] }, { client_id: a, redirect_uris: [http://127.0.0.1:33418/cb] }]
authorization_servers: [{ issuer: https://mcp.example.com }]
`,
    );
    expect(more.map((problem) => problem.path).sort()).toEqual(['authorization_servers', 'broker.clients', 'broker.clients[0].redirect_uris', 'broker.identity_provider.scopes']);
  });

  it('takes user_token only with a broker and an encryption key, and a Redis store only with a secret URL', () => {
    const userToken = (text: string) => text.replace('upstream: { url: http://127.0.0.1:3000 }', 'upstream: { url: http://127.0.0.1:3000, credential: { type: user_token } }');
    expect(problemsOf(userToken(minimal))).toEqual([{ path: 'upstream.credential.type', message: expect.stringContaining('needs broker mode') }]);
    expect(problemsOf(userToken(broker))).toEqual([{ path: 'broker.encryption_key', message: expect.stringContaining('required with upstream.credential user_token') }]);
    const config = parseConfigText(`${userToken(broker)}  encryption_key: "\${file:/run/secrets/enc}"
  store: { type: redis, url: "\${env:REDIS_URL}" }
`);
    expect(config.upstream.credential).toEqual({ type: 'user_token', refresh_before: 60_000 });
    expect(config.broker?.store).toEqual({ type: 'redis', url: { kind: 'env', name: 'REDIS_URL' }, key_prefix: 'mcp-warden' });
    expect(problemsOf(`${broker}  store: { type: redis, url: "redis://:password@redis:6379" }
`).map((problem) => problem.path)).toEqual(['broker.store.url']);
  });
});
