import { decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';
import { AuthFailure, type AuthFailureReason } from './failure.ts';
import type { KeySet } from './key-set.ts';
import { boundKeyOf, scopesOf, type Principal, type ScopeClaim } from './principal.ts';

export interface JwtRules {
  readonly issuer: string;
  /** The resource URL and any extra accepted audiences; the token's `aud` must contain one of them. */
  readonly audiences: readonly string[];
  readonly algorithms: readonly string[];
  readonly requireAtJwtTyp: boolean;
  readonly scopeClaim: ScopeClaim;
  readonly clockToleranceSeconds: number;
  readonly keySet: KeySet;
}

/**
 * Verifies an RFC 9068 JWT access token. The signature is checked before any claim is believed, and
 * every failure becomes an AuthFailure with a precise reason.
 */
export async function verifyJwt(token: string, rules: JwtRules): Promise<Principal> {
  const fail = (reason: AuthFailureReason, detail?: string) => new AuthFailure(reason, detail, rules.issuer);
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw fail('malformed_token', 'unreadable protected header');
  }
  const { alg, kid } = header;
  if (typeof alg !== 'string' || !rules.algorithms.includes(alg)) throw fail('unsupported_algorithm', `alg ${String(alg).slice(0, 16)} not allowed`);
  // kid is only ever an exact-match key into the issuer's key map; anything else is not a kid.
  if (kid !== undefined && (typeof kid !== 'string' || kid.length > MAX_KID_LENGTH)) throw fail('malformed_token', 'kid is not a short string');

  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, rules.keySet.getKey, {
      issuer: rules.issuer,
      audience: [...rules.audiences],
      algorithms: [...rules.algorithms],
      clockTolerance: rules.clockToleranceSeconds,
      requiredClaims: ['exp'],
      ...(rules.requireAtJwtTyp ? { typ: 'at+jwt' } : {}),
    }));
  } catch (error) {
    if (error instanceof AuthFailure) throw new AuthFailure(error.reason, error.message, rules.issuer);
    const [reason, detail] = reasonForJoseError(error);
    throw fail(reason, detail);
  }
  // jose checks `iat` only together with maxTokenAge; a token dated in the future is not valid yet.
  if (typeof payload.iat === 'number' && payload.iat > Date.now() / 1000 + rules.clockToleranceSeconds) {
    throw fail('not_yet_valid', 'iat is in the future');
  }
  const jkt = boundKeyOf(payload.cnf, () => fail('sender_constrained', 'cnf binds the token to a key this proxy does not check'));
  return {
    jkt,
    issuer: rules.issuer,
    subject: typeof payload.sub === 'string' ? payload.sub : undefined,
    clientId: typeof payload.client_id === 'string' ? payload.client_id : undefined,
    scopes: scopesOf(payload, rules.scopeClaim),
    expiresAt: payload.exp!,
    claims: payload,
  };
}

const MAX_KID_LENGTH = 256;

const CLAIM_REASONS: Partial<Record<string, AuthFailureReason>> = {
  nbf: 'not_yet_valid',
  iat: 'not_yet_valid',
  aud: 'wrong_audience',
  iss: 'wrong_issuer',
  typ: 'wrong_type',
  exp: 'missing_claim',
};

function reasonForJoseError(error: unknown): [AuthFailureReason, string] {
  const { code, claim, message } = (error ?? {}) as { code?: string; claim?: string; message?: string };
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return ['expired', 'exp has passed'];
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return [CLAIM_REASONS[claim ?? ''] ?? 'missing_claim', `claim ${claim ?? '?'} failed`];
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return ['unsupported_algorithm', 'alg not allowed'];
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return ['invalid_signature', 'signature does not verify'];
    case 'ERR_JWKS_NO_MATCHING_KEY':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return ['unknown_key', 'no single key matches'];
    default:
      return ['malformed_token', `${code ?? 'error'}: ${(message ?? '').slice(0, 80)}`];
  }
}
