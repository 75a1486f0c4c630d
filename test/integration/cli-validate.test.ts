import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configDir, runCli as run } from '../helpers/cli.ts';

const { dir, writeConfig } = configDir('warden-cli-validate-');

describe('mcp-warden validate', () => {
  // Every URL in the configs below points here: a TCP listener that counts the connections it is offered.
  let listener: Server;
  let origin: string;
  let connections = 0;
  beforeAll(async () => {
    listener = createServer((socket) => {
      connections += 1;
      socket.destroy();
    });
    listener.listen(0, '127.0.0.1');
    await once(listener, 'listening');
    origin = `http://127.0.0.1:${(listener.address() as { port: number }).port}`;
  });
  afterAll(() => listener.close());

  const validConfig = () => `resource: { url: "${origin}/mcp" }
authorization_servers:
  - issuer: "${origin}/as"
    introspection: { client_id: rs, client_secret: "\${file:${join(dir, 'introspection-secret')}}" }
upstream: { url: "${origin}", credential: { type: bearer, value: "\${env:WARDEN_VALIDATE_UPSTREAM_TOKEN}" } }
`;

  it('exits 0 with one line saying the config is valid, and opens no connection to any issuer or upstream', async () => {
    writeFileSync(join(dir, 'introspection-secret'), 'introspection-secret-value\n');
    const path = writeConfig('valid.yaml', validConfig());
    const startedAt = performance.now();
    const { code, stdout, stderr } = await run(['validate', '--config', path], { WARDEN_VALIDATE_UPSTREAM_TOKEN: 'upstream-token-value' });
    expect(code).toBe(0);
    expect(stderr).toBe('');
    expect(stdout.trim().split('\n')).toEqual([`${path}: valid`]);
    expect(connections).toBe(0);
    expect(performance.now() - startedAt).toBeLessThan(10_000);
    expect(stdout).not.toContain('upstream-token-value');
  });

  it('exits 2 when the listen.tls certificate or key cannot be read, as run would', async () => {
    writeFileSync(join(dir, 'introspection-secret'), 'introspection-secret-value\n');
    const tls = `listen: { tls: { cert_file: "${join(dir, 'absent.crt')}", key_file: "${join(dir, 'absent.key')}" } }\n`;
    const path = writeConfig('tls-missing.yaml', validConfig() + tls);
    const { code, stderr } = await run(['validate', '--config', path], { WARDEN_VALIDATE_UPSTREAM_TOKEN: 'upstream-token-value' });
    expect(code).toBe(2);
    expect(stderr).toContain('listen.tls.cert_file');
    expect(stderr).toContain('listen.tls.key_file');
  });

  it('reads the config from MCP_WARDEN_CONFIG, like run', async () => {
    writeFileSync(join(dir, 'introspection-secret'), 'introspection-secret-value\n');
    const path = writeConfig('valid-from-env.yaml', validConfig());
    const { code, stdout } = await run(['validate'], { MCP_WARDEN_CONFIG: path, WARDEN_VALIDATE_UPSTREAM_TOKEN: 'x' });
    expect(code).toBe(0);
    expect(stdout.trim()).toBe(`${path}: valid`);
  });

  it('exits 2 naming the YAML path and what was expected for each schema and cross-field problem', async () => {
    const path = writeConfig(
      'invalid-schema.yaml',
      `listen: { port: 70000, hots: x }
resource: { url: "${origin}/mcp" }
authorization_servers: [{ issuer: "http://as.example.com", verify_jwt: maybe }]
upstream: { url: "${origin}" }
`,
    );
    const { code, stderr, stdout } = await run(['validate', '--config', path]);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toContain(`${path}: 3 problems`);
    expect(stderr).toContain('listen.port: expected a port number from 0 to 65535, got 70000');
    expect(stderr).toContain('listen.hots: unknown key');
    expect(stderr).toContain('authorization_servers[0].verify_jwt:');
    const crossField = writeConfig(
      'invalid-cross-field.yaml',
      `resource: { url: "${origin}/mcp" }
authorization_servers: [{ issuer: "http://as.example.com" }]
upstream: { url: "${origin}" }
`,
    );
    const second = await run(['validate', '--config', crossField]);
    expect(second.code).toBe(2);
    expect(second.stderr).toContain('authorization_servers[0].issuer: plain http:// is allowed only for loopback hosts');
    expect(connections).toBe(0);
  });

  it('exits 2 naming the config file and the YAML path of every secret that cannot be read now', async () => {
    const path = writeConfig(
      'unresolved-secrets.yaml',
      `resource: { url: "${origin}/mcp" }
authorization_servers:
  - issuer: "${origin}/as"
    introspection: { client_id: rs, client_secret: "\${file:${join(dir, 'no-such-secret')}}" }
upstream: { url: "${origin}", credential: { type: header, name: X-Api-Key, value: "\${env:WARDEN_VALIDATE_NEVER_SET}" } }
`,
    );
    const { code, stderr } = await run(['validate', '--config', path]);
    expect(code).toBe(2);
    expect(stderr).toContain(`${path}: 2 problems`);
    expect(stderr).toContain('upstream.credential.value: environment variable WARDEN_VALIDATE_NEVER_SET is empty or not set');
    expect(stderr).toContain(`authorization_servers[0].introspection.client_secret: cannot read file ${join(dir, 'no-such-secret')} (ENOENT)`);
    expect(stderr).not.toMatch(/^\s*config:/m);
  });

  it('exits 2 for a secret of the broker and of a stdio child too', async () => {
    const path = writeConfig(
      'unresolved-broker-secrets.yaml',
      `resource: { url: "http://127.0.0.1:8080/mcp" }
broker:
  identity_provider: { issuer: "${origin}/idp", client_id: warden, client_secret: "\${env:WARDEN_VALIDATE_IDP_SECRET}" }
  clients: [{ client_id: app, redirect_uris: ["http://127.0.0.1:9/cb"], client_secret: "\${env:WARDEN_VALIDATE_CLIENT_SECRET}" }]
  store: { type: sqlite, path: "${join(dir, 'never-created.db')}" }
upstream:
  command: [node, server.js]
  env: { API_KEY: "\${env:WARDEN_VALIDATE_CHILD_KEY}", MODE: plain }
`,
    );
    const { code, stderr } = await run(['validate', '--config', path]);
    expect(code).toBe(2);
    expect(stderr).toContain(`${path}: 3 problems`);
    expect(stderr).toContain('broker.identity_provider.client_secret: environment variable WARDEN_VALIDATE_IDP_SECRET is empty or not set');
    expect(stderr).toContain('broker.clients[0].client_secret: environment variable WARDEN_VALIDATE_CLIENT_SECRET is empty or not set');
    expect(stderr).toContain('upstream.env.API_KEY: environment variable WARDEN_VALIDATE_CHILD_KEY is empty or not set');
    expect(connections).toBe(0);
  });

  it('exits 2 on a YAML syntax error, naming the file, the line and the column', async () => {
    const path = writeConfig(
      'broken.yaml',
      `resource: { url: "${origin}/mcp"
authorization_servers: [{ issuer: "${origin}/as" }]
`,
    );
    const { code, stderr } = await run(['validate', '--config', path]);
    expect(code).toBe(2);
    expect(stderr).toContain(`${path}: 1 problem`);
    expect(stderr).toMatch(/line 2, column 1: invalid YAML: flow map in block collection must be sufficiently indented and end with a }$/m);
    // The message ends with what is wrong, not with a dangling "at line 2, column 1:".
    expect(stderr).not.toMatch(/:\s*$/m);
  });

  it('exits 2 on a key given twice, naming the line of the second', async () => {
    const path = writeConfig('duplicate.yaml', `resource: { url: "${origin}/mcp" }\nresource: { url: "${origin}/other" }\n`);
    const { code, stderr } = await run(['validate', '--config', path]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/line 2, column 1: invalid YAML: map keys must be unique/);
  });
});
