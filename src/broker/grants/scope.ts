import { refusal } from '../http.ts';

/**
 * RFC 6749 §3.3: the scope a token gets without a user's consent, narrowed to what the resource offers
 * and what `ceilings` allow (each a list, or undefined for no limit). Asking for a scope the resource does
 * not offer is refused; so is a request of which nothing may be granted. A request without `scope` gets
 * `fallback`, narrowed the same way.
 */
export function grantedScope(asked: string | undefined, options: { supported: readonly string[]; fallback: readonly string[]; ceilings: ReadonlyArray<readonly string[] | undefined> }): string[] {
  // offline_access asks for a refresh token, which these grants never issue: it is no scope of the resource.
  const requested = asked === undefined ? [...options.fallback] : [...new Set(asked.split(' ').filter((token) => token !== '' && token !== 'offline_access'))];
  const supported = options.supported.length > 0 ? options.supported : undefined;
  // Only what the client asked for is held against it; a fallback (an ID-JAG's scopes) is narrowed instead.
  if (asked !== undefined && supported && requested.some((token) => !supported.includes(token))) {
    throw refusal('invalid_scope', 'scope_not_supported', 'a requested scope is not offered by this resource');
  }
  const ceilings = [supported, ...options.ceilings];
  const granted = requested.filter((token) => ceilings.every((ceiling) => ceiling === undefined || ceiling.includes(token)));
  if (requested.length > 0 && granted.length === 0) throw refusal('invalid_scope', 'scope_not_allowed', 'none of the requested scopes may be granted to this client');
  return granted;
}
