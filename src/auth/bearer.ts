import { rawHeaderValues } from '../proxy/raw-headers.ts';
import { AuthFailure } from './failure.ts';

/** RFC 6750 §2.1 b64token. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

/** A token as presented: `Bearer`, or `DPoP` with its one proof (RFC 9449 §7.1). */
export type Credentials = { readonly token: string; readonly proof: undefined } | { readonly token: string; readonly proof: string };

/**
 * Takes the token from the one place it may be: a single `Authorization` header, `Bearer`, or `DPoP`
 * when `dpop` is on (then with exactly one `DPoP` proof header). Reads `rawHeaders` because Node keeps
 * only the first of duplicate `Authorization` headers and joins duplicate others.
 */
export function extractCredentials(rawHeaders: readonly string[], search: string, maxTokenBytes: number, dpop: boolean): Credentials {
  if (search.length > 1 && new URLSearchParams(search).has('access_token')) throw new AuthFailure('token_in_query');
  const values = rawHeaderValues(rawHeaders, 'authorization');
  if (values.length === 0) throw new AuthFailure('missing_token');
  if (values.length > 1) throw new AuthFailure('duplicate_header');
  const value = values[0]!;
  const space = value.indexOf(' ');
  const scheme = (space === -1 ? value : value.slice(0, space)).toLowerCase();
  const isDpop = dpop && scheme === 'dpop';
  // Other schemes (Basic, DPoP when it is off, ...) carry no token of ours: a bare challenge, and no digging inside them.
  if (scheme !== 'bearer' && !isDpop) throw new AuthFailure('missing_token');
  const token = space === -1 ? '' : value.slice(space + 1);
  if (token.length > maxTokenBytes) throw new AuthFailure('token_too_large');
  if (!B64TOKEN.test(token)) throw new AuthFailure('malformed_header');
  if (!isDpop) return { token, proof: undefined };
  const proofs = rawHeaderValues(rawHeaders, 'dpop');
  if (proofs.length === 0) throw new AuthFailure('dpop_proof_missing');
  if (proofs.length > 1) throw new AuthFailure('dpop_duplicate_proof');
  if (proofs[0]!.length > maxTokenBytes) throw new AuthFailure('dpop_invalid_proof');
  return { token, proof: proofs[0]! };
}

/** The bearer token alone (`Authorization: Bearer`), for callers that take no DPoP. */
export function extractBearerToken(rawHeaders: readonly string[], search: string, maxTokenBytes: number): string {
  return extractCredentials(rawHeaders, search, maxTokenBytes, false).token;
}
