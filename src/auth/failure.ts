/**
 * Every reason a request can be refused before it reaches the upstream. The string is the metric
 * label and the log field; `challenge.ts` maps it to exactly one status and one error code.
 */
export const AUTH_FAILURE_REASONS = [
  'missing_token',
  'malformed_header',
  'duplicate_header',
  'token_in_query',
  'token_too_large',
  'malformed_token',
  'unsupported_algorithm',
  'invalid_signature',
  'unknown_key',
  'wrong_type',
  'wrong_issuer',
  'wrong_audience',
  'expired',
  'not_yet_valid',
  'missing_claim',
  'sender_constrained',
  'inactive',
  'revoked',
  'insufficient_scope',
  'verifier_unavailable',
  'origin_denied',
  'host_denied',
  'session_unknown',
  'session_foreign',
  'body_too_large',
  'unsupported_media_type',
  'unreadable_body',
  'header_mismatch',
  'malformed_request',
  'ambiguous_path',
  'too_many_headers',
  'too_many_streams',
  'rate_limited',
  'too_many_requests',
  'rate_limit_unavailable',
  'overloaded',
  'too_many_processes',
  'unusable_claim',
  'upstream_access_denied',
  'not_exposed',
  'dpop_proof_missing',
  'dpop_duplicate_proof',
  'dpop_invalid_proof',
  'dpop_algorithm',
  'dpop_private_key',
  'dpop_method_mismatch',
  'dpop_url_mismatch',
  'dpop_stale',
  'dpop_replayed',
  'dpop_token_hash_mismatch',
  'dpop_key_mismatch',
  'dpop_nonce_required',
  'dpop_token_unbound',
  'dpop_required',
] as const;

export type AuthFailureReason = (typeof AUTH_FAILURE_REASONS)[number];

/** Untrusted input was refused. Carries no token material: the message may be logged. */
export class AuthFailure extends Error {
  readonly reason: AuthFailureReason;
  /** The configured issuer the token named, when it named one we know (a bounded metric label). */
  readonly issuer: string | undefined;
  /** Seconds the client should wait, when the refusal knows (a rate limit); else the table's default. */
  readonly retryAfter: number | undefined;

  constructor(reason: AuthFailureReason, detail?: string, issuer?: string, retryAfter?: number) {
    super(detail ?? reason);
    this.name = 'AuthFailure';
    this.reason = reason;
    this.issuer = issuer;
    this.retryAfter = retryAfter;
  }
}
