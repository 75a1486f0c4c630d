import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConfigError } from '../../src/config/errors.ts';
import { parseConfigText } from '../../src/config/load.ts';
import { requireSecrets, unresolvedSecrets } from '../../src/config/secret-problems.ts';

const dir = mkdtempSync(join(tmpdir(), 'warden-secret-problems-'));
const head = `
resource: { url: https://mcp.example.com/mcp }
authorization_servers: [{ issuer: https://idp.example.com }]
`;

describe('secrets a config names that cannot be read now', () => {
  afterEach(() => vi.unstubAllEnvs());

  it('are none when every reference resolves, and a literal in a stdio environment is no reference', () => {
    vi.stubEnv('WARDEN_UNIT_KEY', 'k');
    const config = parseConfigText(`${head}upstream: { command: [server], env: { MODE: plain, KEY: "\${env:WARDEN_UNIT_KEY}" } }`);
    expect(unresolvedSecrets(config)).toEqual([]);
  });

  it('name the YAML path of a token endpoint client secret and private key', () => {
    const key = join(dir, 'no-such-key.json');
    const tokenClient = (auth: string) => `${head}upstream: { url: "http://127.0.0.1:3000", credential: { type: client_credentials, issuer: "https://idp.example.com", client_id: w, ${auth} } }`;
    expect(unresolvedSecrets(parseConfigText(tokenClient('client_secret: "${env:WARDEN_UNIT_UNSET}"')))).toEqual([
      { path: 'upstream.credential.client_secret', message: 'environment variable WARDEN_UNIT_UNSET is empty or not set' },
    ]);
    expect(unresolvedSecrets(parseConfigText(tokenClient(`auth_method: private_key_jwt, private_key: "\${file:${key}}"`)))).toEqual([
      { path: 'upstream.credential.private_key', message: `cannot read file ${key} (ENOENT)` },
    ]);
  });

  it('accept a pretty-printed JWK as a private key, and refuse a line break in a secret sent in a header', () => {
    const jwk = join(dir, 'key.json');
    writeFileSync(jwk, '{\n  "kty": "EC"\n}\n');
    const withKey = parseConfigText(
      `${head}upstream: { url: "http://127.0.0.1:3000", credential: { type: client_credentials, issuer: "https://idp.example.com", client_id: w, auth_method: private_key_jwt, private_key: "\${file:${jwk}}" } }`,
    );
    expect(unresolvedSecrets(withKey)).toEqual([]);
    vi.stubEnv('WARDEN_UNIT_TWO_LINES', 'a\nb');
    const withHeader = parseConfigText(`${head}upstream: { url: "http://127.0.0.1:3000", credential: { type: bearer, value: "\${env:WARDEN_UNIT_TWO_LINES}" } }`);
    expect(unresolvedSecrets(withHeader)).toEqual([{ path: 'upstream.credential.value', message: 'environment variable WARDEN_UNIT_TWO_LINES contains control characters' }]);
  });

  it('name a stdio variable by its YAML path, beside command, and the stdio credential', () => {
    const config = parseConfigText(`${head}upstream: { command: [server], env: { KEY: "\${env:WARDEN_UNIT_UNSET}" }, credential: { type: env, name: TOKEN, value: "\${env:WARDEN_UNIT_UNSET_2}" } }`);
    expect(unresolvedSecrets(config).map((problem) => problem.path).sort()).toEqual(['upstream.credential.value', 'upstream.env.KEY']);
  });

  it('are thrown as one ConfigError named by the config file', () => {
    const config = parseConfigText(`${head}upstream: { url: "http://127.0.0.1:3000", credential: { type: bearer, value: "\${env:WARDEN_UNIT_UNSET}" } }`);
    expect(() => requireSecrets(config, '/etc/warden/config.yaml')).toThrow(ConfigError);
    expect(() => requireSecrets(config, '/etc/warden/config.yaml')).toThrow(
      '/etc/warden/config.yaml: 1 problem\n  upstream.credential.value: environment variable WARDEN_UNIT_UNSET is empty or not set',
    );
  });
});
