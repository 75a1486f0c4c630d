import { createHash } from 'node:crypto';

let lastToken: string | undefined;
let lastDigest = '';

/**
 * The SHA-256 of a token, base64url: the only form in which a token is ever kept (cache keys) or shown
 * (a prefix in logs). One request asks for it several times (log line, verified-token cache,
 * introspection cache), so the last answer is remembered.
 */
export function tokenDigest(token: string): string {
  if (token !== lastToken) {
    lastDigest = createHash('sha256').update(token).digest('base64url');
    lastToken = token;
  }
  return lastDigest;
}
