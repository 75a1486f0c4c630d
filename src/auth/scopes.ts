/**
 * The `scope` of an insufficient_scope challenge: what the token has plus what the request needs. The
 * official SDK re-authorizes with exactly the challenged set, so naming only the missing scopes would
 * make a client lose the ones it had (MCP 2025-11-25 §10.1.1, recommended approach).
 */
export function stepUpScopes(granted: ReadonlySet<string>, required: readonly string[]): string[] {
  return [...new Set([...[...granted].filter((scope) => SCOPE_TOKEN.test(scope)), ...required])];
}

/** RFC 6750 §3 scope-token characters: anything else could break out of the quoted header value. */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;
