import { describe, expect, it } from 'vitest';
import { extractBearerToken } from '../../src/auth/bearer.ts';
import { AuthFailure, type AuthFailureReason } from '../../src/auth/failure.ts';

const reasonOf = (raw: string[], search = ''): AuthFailureReason | 'ok' => {
  try {
    extractBearerToken(raw, search, 64);
    return 'ok';
  } catch (error) {
    return (error as AuthFailure).reason;
  }
};

describe('bearer extraction', () => {
  it.each([
    ['no Authorization header', [], 'missing_token'],
    ['"Basic dXNlcjpwYXNz" (never dug into)', ['Authorization', 'Basic dXNlcjpwYXNz'], 'missing_token'],
    ['"DPoP abc"', ['Authorization', 'DPoP abc'], 'missing_token'],
    ['"Bearer" with no token', ['Authorization', 'Bearer'], 'malformed_header'],
    ['"Bearer " with an empty token', ['Authorization', 'Bearer '], 'malformed_header'],
    ['"Bearer abc def"', ['Authorization', 'Bearer abc def'], 'malformed_header'],
    ['"Bearer  abc" (two spaces)', ['Authorization', 'Bearer  abc'], 'malformed_header'],
    ['"Bearer a\\"b" (illegal character)', ['Authorization', 'Bearer a"b'], 'malformed_header'],
    ['two Authorization lines', ['Authorization', 'Bearer abc', 'authorization', 'Bearer abc'], 'duplicate_header'],
    ['a token over the size cap', ['Authorization', `Bearer ${'a'.repeat(65)}`], 'token_too_large'],
    ['"bearer abc.def-_~+/=="', ['Authorization', 'bearer abc.def-_~+/=='], 'ok'],
    ['"BEARER abc"', ['AUTHORIZATION', 'BEARER abc'], 'ok'],
  ] as const)('%s → %s', (_name, raw, expected) => {
    expect(reasonOf([...raw])).toBe(expected);
  });

  it('refuses a token in the query even when a valid header is present', () => {
    expect(reasonOf(['Authorization', 'Bearer abc'], '?access_token=abc')).toBe('token_in_query');
  });

  it('returns the token from a well-formed header', () => {
    expect(extractBearerToken(['Host', 'x', 'Authorization', 'Bearer abc.def'], '?q=1', 64)).toBe('abc.def');
  });
});
