import { describe, expect, it } from 'vitest';
import { changedSections, reloadRefusals } from '../../src/config/reload-rules.ts';
import { validateConfig } from '../../src/config/load.ts';

const base = {
  listen: { host: '127.0.0.1', port: 8080 },
  resource: { url: 'https://mcp.example.com/mcp' },
  authorization_servers: [{ issuer: 'https://idp.example.com' }],
  upstream: { url: 'http://127.0.0.1:3000' },
};
const config = (changes: Record<string, unknown> = {}) => validateConfig({ ...base, ...changes });

describe('what a reload may change', () => {
  it('takes what the request path is built from: scopes, issuers, policy, the HTTP upstream, request limits', () => {
    const next = config({
      tokens: { required_scopes: ['mcp:read'] },
      authorization_servers: [{ issuer: 'https://other-idp.example.com' }],
      policy: { rules: [{ match: { method: 'tools/call' }, scopes: ['mcp:write'] }] },
      upstream: { url: 'http://127.0.0.1:4000' },
      limits: { requests: { per_principal: 10, window: '1m' } },
    });
    expect(reloadRefusals(config(), next)).toEqual([]);
    expect(changedSections(config(), next)).toEqual(['authorization_servers', 'limits', 'policy', 'tokens', 'upstream']);
  });

  it('refuses listeners, connection limits, logging, tracing and the session table, each by name', () => {
    const next = config({
      listen: { host: '127.0.0.1', port: 9090 },
      admin: { host: '127.0.0.1', port: 9999 },
      limits: { max_connections: 10 },
      logging: { level: 'debug' },
      tracing: { endpoint: 'http://127.0.0.1:4318/v1/traces' },
      sessions: { bind: false },
    });
    expect(reloadRefusals(config(), next).map((problem) => problem.path)).toEqual(['listen', 'admin', 'logging', 'tracing', 'sessions', 'limits']);
  });

  it('refuses a change to a stdio upstream (its children run the live sessions), and any broker change', () => {
    const stdio = (command: string) => config({ upstream: { command: [command] } });
    expect(reloadRefusals(stdio('node'), stdio('python3')).map((problem) => problem.path)).toEqual(['upstream']);
    const broker = (clientId: string) =>
      validateConfig({ ...base, authorization_servers: [], broker: { identity_provider: { issuer: 'https://login.example.com', client_id: clientId, client_secret: '${env:S}' } } });
    expect(reloadRefusals(broker('a'), broker('b')).map((problem) => problem.path)).toEqual(['broker']);
  });
});
