import { rawHeaderValues } from '../proxy/raw-headers.ts';
import { AuthFailure } from './failure.ts';

/** RFC 6750 §2.1 b64token. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

/**
 * Takes the bearer token from the one place it may be: a single `Authorization: Bearer` header.
 * Reads `rawHeaders` because Node keeps only the first of duplicate `Authorization` headers.
 */
export function extractBearerToken(rawHeaders: readonly string[], search: string, maxTokenBytes: number): string {
  if (search.length > 1 && new URLSearchParams(search).has('access_token')) throw new AuthFailure('token_in_query');
  const values = rawHeaderValues(rawHeaders, 'authorization');
  if (values.length === 0) throw new AuthFailure('missing_token');
  if (values.length > 1) throw new AuthFailure('duplicate_header');
  const value = values[0]!;
  const space = value.indexOf(' ');
  const scheme = space === -1 ? value : value.slice(0, space);
  // Other schemes (Basic, DPoP, ...) carry no bearer token: a bare challenge, and no digging inside them.
  if (scheme.toLowerCase() !== 'bearer') throw new AuthFailure('missing_token');
  const token = space === -1 ? '' : value.slice(space + 1);
  if (token.length > maxTokenBytes) throw new AuthFailure('token_too_large');
  if (!B64TOKEN.test(token)) throw new AuthFailure('malformed_header');
  return token;
}
