/** The request target split for routing, or why it is refused. */
export type RequestPath = { ok: true; path: string; query: string } | { ok: false; problem: string };

/** Encoded dot, slash and backslash: an upstream may decode them into a different path than we matched. */
const AMBIGUOUS_ESCAPE = /%(2e|2f|5c)/i;
const DOT_SEGMENT = /\/\.\.?(\/|$)/;

/**
 * Splits a request target into the path that routing compares and the query, refusing every form whose
 * meaning could differ between mcp-warden and the upstream: not origin-form, empty segments, dot
 * segments, encoded dots/slashes/backslashes, backslashes and fragments. The path is matched exactly as
 * it is forwarded, so what was authorized is what the upstream serves.
 */
export function parseRequestPath(target: string): RequestPath {
  const queryAt = target.indexOf('?');
  const path = queryAt === -1 ? target : target.slice(0, queryAt);
  const query = queryAt === -1 ? '' : target.slice(queryAt);
  if (!path.startsWith('/')) return { ok: false, problem: 'not an origin-form path' };
  if (path.includes('//')) return { ok: false, problem: 'an empty path segment' };
  if (DOT_SEGMENT.test(path)) return { ok: false, problem: 'a dot segment' };
  if (AMBIGUOUS_ESCAPE.test(path)) return { ok: false, problem: 'an encoded dot, slash or backslash' };
  if (path.includes('\\')) return { ok: false, problem: 'a backslash' };
  if (target.includes('#')) return { ok: false, problem: 'a fragment' };
  return { ok: true, path, query };
}
