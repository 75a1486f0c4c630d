import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.ts';
import { buildProtectedResourceMetadata } from '../../src/metadata/protected-resource.ts';

const configFor = (url: string, extra: Record<string, unknown> = {}) =>
  validateConfig({
    resource: { url, ...extra },
    authorization_servers: [{ issuer: 'https://idp.example.com' }, { issuer: 'https://other.example.com/t1' }],
    upstream: { url: 'http://127.0.0.1:3000' },
  });

describe('protected resource metadata', () => {
  it('inserts the well-known suffix between host and path (RFC 9728 §3)', () => {
    const metadata = buildProtectedResourceMetadata(configFor('https://mcp.example.com/public/mcp'));
    expect([...metadata.paths]).toEqual(['/.well-known/oauth-protected-resource/public/mcp', '/.well-known/oauth-protected-resource']);
    expect(metadata.url).toBe('https://mcp.example.com/.well-known/oauth-protected-resource/public/mcp');
  });

  it('serves only the path-inserted form when root_metadata is off', () => {
    const metadata = buildProtectedResourceMetadata(configFor('https://mcp.example.com/mcp', { root_metadata: false }));
    expect([...metadata.paths]).toEqual(['/.well-known/oauth-protected-resource/mcp']);
  });

  it('uses the root form for a resource without a path', () => {
    const metadata = buildProtectedResourceMetadata(configFor('https://mcp.example.com'));
    expect([...metadata.paths]).toEqual(['/.well-known/oauth-protected-resource']);
    expect(metadata.url).toBe('https://mcp.example.com/.well-known/oauth-protected-resource');
  });

  it('keeps resource byte-exact and omits empty members', () => {
    const metadata = buildProtectedResourceMetadata(configFor('https://MCP.example.com:443/mcp'));
    expect(JSON.parse(metadata.body)).toEqual({
      resource: 'https://MCP.example.com:443/mcp',
      authorization_servers: ['https://idp.example.com', 'https://other.example.com/t1'],
      bearer_methods_supported: ['header'],
      dpop_signing_alg_values_supported: ['RS256', 'PS256', 'ES256', 'EdDSA'],
    });
  });

  it('advertises DPoP as configured: nothing when off, and that bound tokens are required when required', () => {
    const withDpop = (mode: string) => {
      const config = configFor('https://mcp.example.com/mcp');
      return JSON.parse(buildProtectedResourceMetadata({ ...config, tokens: { ...config.tokens, dpop: { ...config.tokens.dpop, mode } } } as typeof config).body) as Record<string, unknown>;
    };
    expect(withDpop('off').dpop_signing_alg_values_supported).toBeUndefined();
    expect(withDpop('allowed').dpop_bound_access_tokens_required).toBeUndefined();
    expect(withDpop('required')).toMatchObject({ dpop_signing_alg_values_supported: ['RS256', 'PS256', 'ES256', 'EdDSA'], dpop_bound_access_tokens_required: true });
  });
});
