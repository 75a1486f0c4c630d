import { extractWWWAuthenticateParams } from '@modelcontextprotocol/sdk/client/auth.js';
import { describe, expect, it } from 'vitest';
import { challengeFor, REASONS } from '../../src/auth/challenge.ts';
import { AUTH_FAILURE_REASONS } from '../../src/auth/failure.ts';

const context = { resourceMetadataUrl: 'https://mcp.example.com/.well-known/oauth-protected-resource/mcp', scope: ['mcp:read', 'mcp:write'] };

/** RFC 6750 §3 grammar, strictly: `Bearer` then comma-separated auth-params with quoted values. */
function parseStrict(header: string): Map<string, string> {
  const match = /^Bearer (.*)$/.exec(header);
  if (!match) throw new Error(`not a Bearer challenge: ${header}`);
  const params = new Map<string, string>();
  for (const part of match[1]!.split(', ')) {
    const param = /^([a-z_]+)="([\x20\x21\x23-\x5b\x5d-\x7e]*)"$/.exec(part);
    if (!param) throw new Error(`bad auth-param: ${part}`);
    if (params.has(param[1]!)) throw new Error(`repeated auth-param: ${param[1]}`);
    params.set(param[1]!, param[2]!);
  }
  return params;
}

describe('challenges', () => {
  it('answers a request without credentials with a bare 401 naming the metadata and the required scopes', () => {
    const challenge = challengeFor('missing_token', context);
    expect(challenge.status).toBe(401);
    expect(challenge.headers['www-authenticate']).toBe(`Bearer resource_metadata="${context.resourceMetadataUrl}", scope="mcp:read mcp:write"`);
  });

  it('gives a request without credentials no RFC 6750 error code in the challenge, and the body error "unauthorized"', () => {
    const challenge = challengeFor('missing_token', context);
    expect(challenge.headers['www-authenticate']).not.toMatch(/error/);
    expect(JSON.parse(challenge.body)).toEqual({ error: 'unauthorized', error_description: 'bearer token required' });
  });

  it.each(AUTH_FAILURE_REASONS.filter((reason) => REASONS[reason].status <= 403 && (REASONS[reason].error || reason === 'missing_token')))(
    '%s parses with the strict grammar and with the official SDK',
    (reason) => {
      const challenge = challengeFor(reason, context);
      const header = challenge.headers['www-authenticate'] as string;
      const strict = parseStrict(header);
      expect(strict.get('resource_metadata')).toBe(context.resourceMetadataUrl);
      expect(strict.get('error')).toBe(REASONS[reason].error);
      const sdk = extractWWWAuthenticateParams(new Response(null, { status: challenge.status, headers: { 'WWW-Authenticate': header } }));
      expect(sdk.resourceMetadataUrl?.href).toBe(context.resourceMetadataUrl);
      expect(sdk.error).toBe(REASONS[reason].error);
      if (REASONS[reason].error !== 'invalid_request') expect(sdk.scope).toBe('mcp:read mcp:write');
      expect(JSON.parse(challenge.body)).toMatchObject({ error_description: REASONS[reason].description });
    },
  );

  it('names no Bearer challenge for refusals a new token would not cure', () => {
    for (const reason of ['origin_denied', 'host_denied', 'session_unknown', 'session_foreign', 'body_too_large', 'unsupported_media_type', 'unreadable_body', 'header_mismatch'] as const) {
      const challenge = challengeFor(reason, context);
      expect(challenge.headers['www-authenticate'], reason).toBeUndefined();
      expect(challenge.status).toBe(REASONS[reason].status);
    }
    expect(challengeFor('session_unknown', context).body).toBe(challengeFor('session_foreign', context).body);
  });

  it('maps each reason to the status its error code demands', () => {
    for (const reason of AUTH_FAILURE_REASONS) {
      const { status, error } = REASONS[reason];
      const expected = error === 'invalid_request' ? 400 : error === 'invalid_token' ? 401 : error === 'insufficient_scope' ? 403 : status;
      expect(status, reason).toBe(expected);
    }
  });

  it('answers an unavailable verifier with 503 and Retry-After, not a 401 that makes clients drop good tokens', () => {
    const challenge = challengeFor('verifier_unavailable', context);
    expect(challenge.status).toBe(503);
    expect(challenge.headers['retry-after']).toBe('5');
    expect(challenge.headers['www-authenticate']).toBeUndefined();
  });
});
