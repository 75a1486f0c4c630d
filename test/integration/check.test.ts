import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAuthorizationServer, type StartedAuthorizationServer } from '../../demo/authorization-server.ts';
import { startIdentityProvider } from '../../demo/identity-provider.ts';
import { startMcpServer, type StartedMcpServer } from '../../demo/mcp-server.ts';

const CLI = new URL('../../src/cli.ts', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'warden-check-'));
const RESOURCE = 'http://127.0.0.1:47999/mcp';

let as: StartedAuthorizationServer;
let mcp: StartedMcpServer;
beforeAll(async () => {
  mcp = await startMcpServer();
  as = await startAuthorizationServer({ resources: { [RESOURCE]: { scopes: ['mcp:read'] } } });
});
afterAll(async () => {
  await Promise.all([as?.close(), mcp?.close()]);
});

async function check(overrides: { issuer?: string; secret?: string; upstream?: string; upstreamYaml?: string } = {}) {
  const path = join(dir, `check-${Math.random()}.yaml`);
  writeFileSync(
    path,
    `resource: { url: "${RESOURCE}" }
authorization_servers:
  - issuer: "${overrides.issuer ?? as.issuer}"
    introspection: { client_id: ${as.introspectionClient.client_id}, client_secret: "\${env:WARDEN_CHECK_SECRET}", timeout: 2s }
tokens: { required_scopes: [mcp:read], jwks: { timeout: 2s } }
upstream: ${overrides.upstreamYaml ?? `{ url: "${overrides.upstream ?? mcp.origin}", connect_timeout: 1s, response_timeout: 2s }`}
`,
  );
  const env = { ...process.env, WARDEN_CHECK_SECRET: overrides.secret ?? as.introspectionClient.client_secret };
  return promisify(execFile)(process.execPath, [CLI, 'check', '--config', path], { env, timeout: 20_000 }).then(
    ({ stdout }) => ({ code: 0, stdout }),
    (error: { code: number; stdout: string }) => ({ code: error.code, stdout: error.stdout }),
  );
}

describe('mcp-warden check', () => {
  it('is all green against the demo parts, and shows what a client will see', async () => {
    const { code, stdout } = await check();
    expect(stdout).toContain('all checks passed');
    expect(code).toBe(0);
    expect(stdout).toContain(`resource (token audience)  ${RESOURCE}`);
    expect(stdout).toContain('metadata URL               http://127.0.0.1:47999/.well-known/oauth-protected-resource/mcp');
    expect(stdout).toContain('WWW-Authenticate: Bearer resource_metadata="http://127.0.0.1:47999/.well-known/oauth-protected-resource/mcp", scope="mcp:read"');
    expect(stdout).toMatch(/ok +signing keys of .*: 1 usable key/);
    expect(stdout).toMatch(/ok +introspection at .*: client mcp-warden accepted/);
    expect(stdout).toMatch(/ok +upstream .*: answers initialize/);
  });

  it.each([
    ['a wrong issuer', { issuer: 'http://127.0.0.1:1' }, /FAIL {2}issuer http:\/\/127\.0\.0\.1:1: discovery failed/],
    ['a wrong client secret', { secret: 'not-the-secret' }, /FAIL {2}introspection at .*answered 401/],
    ['a dead upstream', { upstream: 'http://127.0.0.1:1' }, /FAIL {2}upstream http:\/\/127\.0\.0\.1:1\/mcp: unreachable/],
  ])('names %s and exits non-zero', async (_name, overrides, expected) => {
    const { code, stdout } = await check(overrides);
    expect(code).toBe(1);
    expect(stdout).toMatch(expected);
    expect(stdout).toMatch(/\d check\(s\) failed/);
  });
});

describe('mcp-warden check with a stdio upstream', () => {
  const fixture = new URL('../fixtures/stdio-test-server.ts', import.meta.url).pathname;
  const stdio = (command: string[], extra = '') => `{ command: ${JSON.stringify([process.execPath, ...command])}, startup_timeout: 1s${extra} }`;

  it('starts the command as a session would, sees it answer initialize, and ends it', async () => {
    const { code, stdout } = await check({ upstreamYaml: stdio([fixture]) });
    expect(stdout).toMatch(/ok +stdio upstream .*stdio-test-server\.ts: answers initialize: \{"name":"mcp-warden-stdio-test-server","version":"1\.0\.0"\} \(pid (\d+), ended again\)/);
    expect(code).toBe(0);
    const pid = Number(/\(pid (\d+), ended again\)/.exec(stdout)![1]);
    expect(() => process.kill(pid, 0)).toThrow();
  });

  it.each([
    ['a server that never answers initialize', stdio([fixture, '--mode', 'never-initialize']), /FAIL {2}stdio upstream .*: no answer to initialize within 1000 ms/],
    ['a command that does not exist', '{ command: [/nonexistent/server] }', /FAIL {2}stdio upstream \/nonexistent\/server: could not start \(ENOENT\)/],
    ['an env secret that is not set', stdio([fixture], ', env: { TOKEN: "${env:WARDEN_CHECK_UNSET_TOKEN}" }'), /FAIL {2}upstream\.env\.TOKEN: environment variable WARDEN_CHECK_UNSET_TOKEN is empty or not set/],
  ])('fails for %s', async (_what, upstreamYaml, expected) => {
    const { code, stdout } = await check({ upstreamYaml });
    expect(stdout).toMatch(expected);
    expect(code).not.toBe(0);
  });
});

describe('mcp-warden check with a token credential', () => {
  const UPSTREAM = 'https://legacy-api.example.com';
  let upstreamAs: StartedAuthorizationServer;
  beforeAll(async () => {
    upstreamAs = await startAuthorizationServer({ resources: { [RESOURCE]: { scopes: ['mcp:read'] } }, upstream: { resources: { [UPSTREAM]: { scopes: ['legacy:read'] } } } });
  });
  afterAll(async () => {
    await upstreamAs?.close();
  });
  const credential = (type: string, extra: string) =>
    `{ url: "${mcp.origin}", credential: { type: ${type}, issuer: "${upstreamAs.issuer}", client_id: ${upstreamAs.upstreamClients!.basic.client_id}, client_secret: "\${env:WARDEN_CHECK_UPSTREAM_SECRET}"${extra} } }`;
  const run = (upstreamYaml: string, secret: string) => {
    process.env.WARDEN_CHECK_UPSTREAM_SECRET = secret;
    return check({ upstreamYaml });
  };

  it('gets a client-credentials token and probes the upstream with it', async () => {
    const { code, stdout } = await run(credential('client_credentials', `, resource: "${UPSTREAM}"`), upstreamAs.upstreamClients!.basic.client_secret);
    expect(stdout).toMatch(/ok +upstream token endpoint of .*: client upstream-basic got a token \(client_secret_basic\), valid for \d+ s/);
    expect(stdout).toMatch(/ok +upstream .*: answers initialize/);
    expect(code).toBe(0);
  });

  it('sees the token-exchange endpoint answer and authenticate the client, and fails for a wrong secret', async () => {
    const good = await run(credential('token_exchange', `, audience: "${UPSTREAM}"`), upstreamAs.upstreamClients!.basic.client_secret);
    expect(good.stdout).toMatch(/ok +upstream token endpoint of .*: answers, and authenticates client upstream-basic/);
    const bad = await run(credential('token_exchange', `, audience: "${UPSTREAM}"`), 'not-the-secret');
    expect(bad.stdout).toMatch(/FAIL {2}upstream token endpoint of .*: the token endpoint refused: invalid_client/);
    expect(bad.code).not.toBe(0);
  });
});

describe('mcp-warden check in broker mode', () => {
  it('probes the identity provider and the enterprise issuers, and names the redirect URI to register there', async () => {
    const idp = await startIdentityProvider({ redirectUri: 'http://127.0.0.1:47999/oauth/callback' });
    try {
      const path = join(dir, 'broker.yaml');
      const write = (issuer: string) =>
        writeFileSync(
          path,
          `resource: { url: "${RESOURCE}" }
broker:
  identity_provider: { issuer: "${issuer}", client_id: ${idp.client.client_id}, client_secret: "\${env:WARDEN_CHECK_IDP_SECRET}", timeout: 2s }
  enterprise: { trusted_issuers: [{ issuer: "${issuer}" }] }
  store: { path: "${join(dir, 'broker.db')}" }
upstream: { url: "${mcp.origin}" }
`,
        );
      const run = () =>
        promisify(execFile)(process.execPath, [CLI, 'check', '--config', path], { env: { ...process.env, WARDEN_CHECK_IDP_SECRET: idp.client.client_secret }, timeout: 20_000 }).then(
          ({ stdout }) => ({ code: 0, stdout }),
          (error: { code: number; stdout: string }) => ({ code: error.code, stdout: error.stdout }),
        );
      write(idp.issuer);
      const good = await run();
      expect(good.stdout).toMatch(/ok +identity provider .*: discovered; the broker logs users in there as client mcp-warden-broker/);
      expect(good.stdout).toMatch(/ok +ID-JAG signing keys of http:\/\/127\.0\.0\.1:\d+: [1-9]\d* usable key\(s\)/);
      expect(good.stdout).toContain('redirect URI to register   http://127.0.0.1:47999/oauth/callback');
      expect(good.code).toBe(0);
      write('http://127.0.0.1:1');
      const bad = await run();
      expect(bad.stdout).toMatch(/FAIL {2}identity provider http:\/\/127\.0\.0\.1:1: discovery failed/);
      expect(bad.stdout).toMatch(/FAIL {2}ID-JAG signing keys of http:\/\/127\.0\.0\.1:1: /);
      expect(bad.code).toBe(1);
    } finally {
      await idp.close();
    }
  });
});
