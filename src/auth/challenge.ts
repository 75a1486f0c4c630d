import { jsonRpcError } from '../mcp/json-rpc.ts';
import type { AuthFailureReason } from './failure.ts';

type ErrorCode = 'invalid_request' | 'invalid_token' | 'insufficient_scope' | 'invalid_dpop_proof' | 'use_dpop_nonce';

interface ReasonRow {
  readonly status: 200 | 400 | 401 | 403 | 404 | 413 | 415 | 421 | 429 | 431 | 503;
  /** RFC 6750 §3.1 code; absent when the request carried no credentials (§3: no error info then). */
  readonly error?: ErrorCode;
  /** Fixed text: never built from the request, so it can never echo a token. */
  readonly description: string;
  /** A refusal of the request, not the token: no Bearer challenge, since a new token would not help. */
  readonly request?: true;
  /** The refusal is the MCP server's to make, and MCP defines it as this JSON-RPC error: the body is that error. */
  readonly rpcCode?: number;
  /** A refusal of the DPoP proof (RFC 9449 §7.1): the error goes in a `DPoP` challenge. */
  readonly dpop?: true;
}

/** The one table from failure reason to what the client sees. */
export const REASONS: Readonly<Record<AuthFailureReason, ReasonRow>> = {
  missing_token: { status: 401, description: 'bearer token required' },
  malformed_header: { status: 400, error: 'invalid_request', description: 'malformed Authorization header' },
  duplicate_header: { status: 400, error: 'invalid_request', description: 'more than one Authorization header' },
  token_in_query: { status: 400, error: 'invalid_request', description: 'access tokens are accepted only in the Authorization header' },
  token_too_large: { status: 401, error: 'invalid_token', description: 'token too large' },
  malformed_token: { status: 401, error: 'invalid_token', description: 'malformed token' },
  unsupported_algorithm: { status: 401, error: 'invalid_token', description: 'token signing algorithm not accepted' },
  invalid_signature: { status: 401, error: 'invalid_token', description: 'token signature invalid' },
  unknown_key: { status: 401, error: 'invalid_token', description: 'token signing key unknown' },
  wrong_type: { status: 401, error: 'invalid_token', description: 'token is not an access token' },
  wrong_issuer: { status: 401, error: 'invalid_token', description: 'token issuer not trusted' },
  wrong_audience: { status: 401, error: 'invalid_token', description: 'token not issued for this resource' },
  expired: { status: 401, error: 'invalid_token', description: 'token expired' },
  not_yet_valid: { status: 401, error: 'invalid_token', description: 'token not yet valid' },
  missing_claim: { status: 401, error: 'invalid_token', description: 'token lacks a required claim' },
  // A proof-of-possession token (RFC 9449, RFC 8705) must not be downgraded to a bearer token.
  sender_constrained: { status: 401, error: 'invalid_token', description: 'sender-constrained tokens are not accepted as bearer tokens' },
  inactive: { status: 401, error: 'invalid_token', description: 'token is not active' },
  revoked: { status: 401, error: 'invalid_token', description: 'token was revoked' },
  insufficient_scope: { status: 403, error: 'insufficient_scope', description: 'token lacks a required scope' },
  verifier_unavailable: { status: 503, description: 'token verification temporarily unavailable' },
  origin_denied: { status: 403, request: true, description: 'this Origin may not call the MCP endpoint' },
  host_denied: { status: 421, request: true, description: 'this Host is not served here' },
  // Unknown and foreign sessions answer alike, so nobody can probe which session ids exist.
  session_unknown: { status: 404, request: true, description: 'session not found' },
  session_foreign: { status: 404, request: true, description: 'session not found' },
  body_too_large: { status: 413, request: true, description: 'request body too large to inspect' },
  unsupported_media_type: { status: 415, request: true, description: 'JSON-RPC requests must be application/json' },
  unreadable_body: { status: 400, request: true, description: 'the body is not a JSON-RPC message the proxy can judge' },
  // SEP-2243's HeaderMismatch, as the MCP server itself would answer it.
  header_mismatch: { status: 400, request: true, rpcCode: -32020, description: 'Mcp-Method or Mcp-Name does not match the body' },
  malformed_request: { status: 400, request: true, description: 'malformed request' },
  ambiguous_path: { status: 400, request: true, description: 'the request path is ambiguous' },
  too_many_headers: { status: 431, request: true, description: 'too many request headers' },
  too_many_streams: { status: 429, request: true, description: 'too many open event streams for this principal' },
  rate_limited: { status: 429, request: true, description: 'too many token lookups from this client' },
  // limits.requests: the principal, its client or its IP address has spent its requests for the window.
  too_many_requests: { status: 429, request: true, description: 'too many requests from this principal, client or address' },
  // limits.on_store_error: deny, and the shared bucket store did not answer in time.
  rate_limit_unavailable: { status: 503, description: 'rate limits temporarily unavailable' },
  overloaded: { status: 503, description: 'the proxy is at capacity' },
  too_many_processes: { status: 429, request: true, description: 'too many MCP server processes for this principal' },
  // A claim is given to a stdio server as an environment variable: one that is not a printable string could smuggle in more.
  unusable_claim: { status: 403, request: true, description: 'an identity claim of this token cannot be passed to the MCP server' },
  // The token exchange answered invalid_grant: the authorization server will not issue this user a token for the upstream.
  upstream_access_denied: { status: 403, request: true, description: 'the upstream credential for this user was refused by the authorization server' },
  // Outside `policy.expose`: no scope would help, so the client hears what the upstream says of a name it does not have (pipeline/unexposed.ts).
  not_exposed: { status: 200, request: true, description: 'unknown tool, prompt or resource' },
  // RFC 9449: each defect of a proof has its own reason; the client sees invalid_dpop_proof for all of them.
  dpop_proof_missing: { status: 401, error: 'invalid_dpop_proof', dpop: true, description: 'a DPoP token needs exactly one DPoP proof header' },
  dpop_duplicate_proof: { status: 401, error: 'invalid_dpop_proof', dpop: true, description: 'a DPoP token needs exactly one DPoP proof header' },
  dpop_invalid_proof: { status: 401, error: 'invalid_dpop_proof', dpop: true, description: 'the DPoP proof is invalid' },
  dpop_algorithm: { status: 401, error: 'invalid_dpop_proof', dpop: true, description: 'the DPoP proof algorithm is not accepted' },
  dpop_private_key: { status: 401, error: 'invalid_dpop_proof', dpop: true, description: 'the DPoP proof key must be a public key' },
  dpop_method_mismatch: { status: 401, error: 'invalid_dpop_proof', dpop: true, description: 'the DPoP proof is for another method' },
  dpop_url_mismatch: { status: 401, error: 'invalid_dpop_proof', dpop: true, description: 'the DPoP proof is for another URL' },
  dpop_stale: { status: 401, error: 'invalid_dpop_proof', dpop: true, description: 'the DPoP proof is too old or dated in the future' },
  dpop_replayed: { status: 401, error: 'invalid_dpop_proof', dpop: true, description: 'the DPoP proof was used before' },
  dpop_token_hash_mismatch: { status: 401, error: 'invalid_dpop_proof', dpop: true, description: 'the DPoP proof is for another access token' },
  dpop_key_mismatch: { status: 401, error: 'invalid_dpop_proof', dpop: true, description: 'the DPoP proof key is not the key the token is bound to' },
  dpop_nonce_required: { status: 401, error: 'use_dpop_nonce', dpop: true, description: 'the DPoP proof must carry the server nonce' },
  // The DPoP scheme with a token bound to no key: it is a bearer token, and must say so.
  dpop_token_unbound: { status: 401, error: 'invalid_token', dpop: true, description: 'the token is not bound to a DPoP key' },
  dpop_required: { status: 401, error: 'invalid_token', dpop: true, description: 'this resource accepts only DPoP-bound tokens' },
};

export const RETRY_AFTER_SECONDS = 5;

export interface Challenge {
  readonly status: number;
  /** `www-authenticate` is two values (two header lines) when a DPoP challenge goes beside the Bearer one. */
  readonly headers: Record<string, string | string[]>;
  readonly body: string;
}

export interface ChallengeContext {
  readonly resourceMetadataUrl: string;
  /** Scopes named in the challenge: required ones for 401, what the request needs for 403. */
  readonly scope: readonly string[];
  /** The id of the JSON-RPC request refused, for a refusal answered as a JSON-RPC error (null when unknown). */
  readonly rpcId?: string | number | null;
  /** Seconds for `Retry-After` when the refusal knows them (a rate limit's next token); else RETRY_AFTER_SECONDS. */
  readonly retryAfter?: number;
  /**
   * DPoP is on (`tokens.dpop.mode` allowed or required). Its challenge is sent for DPoP refusals, and for
   * every 401 when only DPoP tokens are accepted or the request came with the DPoP scheme (`presented`);
   * a bearer client's challenges stay as they were.
   */
  readonly dpop?: { readonly algorithms: readonly string[]; readonly required: boolean; readonly nonce?: string; readonly presented?: boolean };
}

/**
 * Builds the response for a refusal. Parameter order matters for the official SDK, whose parser takes
 * the first `name=` match: `resource_metadata` and `scope` come first, then `error`, then the description.
 */
export function challengeFor(reason: AuthFailureReason, context: ChallengeContext): Challenge {
  const row = REASONS[reason];
  const headers: Record<string, string | string[]> = { 'content-type': 'application/json', 'cache-control': 'no-store' };
  const retryAfter = String(context.retryAfter ?? RETRY_AFTER_SECONDS);
  if (row.status === 503) {
    headers['retry-after'] = retryAfter;
    return { status: 503, headers, body: JSON.stringify({ error: 'temporarily_unavailable', error_description: row.description }) };
  }
  if (row.status === 429) headers['retry-after'] = retryAfter;
  if (row.rpcCode !== undefined) {
    return { status: row.status, headers, body: JSON.stringify(jsonRpcError(context.rpcId, { code: row.rpcCode, message: row.description })) };
  }
  if (row.request) {
    const error = reason.startsWith('session_') ? 'session_not_found' : reason;
    return { status: row.status, headers, body: JSON.stringify({ error, error_description: row.description }) };
  }
  const params = [`resource_metadata="${context.resourceMetadataUrl}"`];
  if (context.scope.length > 0 && row.error !== 'invalid_request') params.push(`scope="${context.scope.join(' ')}"`);
  const errorParams = row.error ? [`error="${row.error}"`, `error_description="${row.description}"`] : [];
  const dpop = context.dpop && (row.dpop || ((context.dpop.required || context.dpop.presented) && row.status === 401)) ? context.dpop : undefined;
  if (!dpop) {
    headers['www-authenticate'] = `Bearer ${[...params, ...errorParams].join(', ')}`;
  } else {
    const dpopChallenge = `DPoP ${[...params, `algs="${dpop.algorithms.join(' ')}"`, ...errorParams].join(', ')}`;
    headers['www-authenticate'] = dpop.required ? dpopChallenge : [`Bearer ${params.join(', ')}`, dpopChallenge];
    if (reason === 'dpop_nonce_required' && dpop.nonce) headers['dpop-nonce'] = dpop.nonce;
  }
  // RFC 6750 §3.1 governs the challenge, which names no error for a request without credentials; the JSON body
  // is ours, and always has an `error` for clients that read only the body: the code, else `unauthorized`.
  const body = row.error ? { error: row.error, error_description: row.description } : { error: 'unauthorized', error_description: row.description };
  return { status: row.status, headers, body: JSON.stringify(body) };
}
