import { decodeProtectedHeader, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { AuthFailure } from '../auth/failure.ts';
import { OAuthError, refusal } from './http.ts';
import { hashSecret } from './secrets.ts';
import type { BrokerStore } from './store.ts';

/** An assertion is a few claims; anything this long is refused unread. */
const MAX_ASSERTION_LENGTH = 16 * 1024;
const MAX_JTI_LENGTH = 256;

/** What one kind of RFC 7523 assertion must be: who signed it, for whom, of which type. */
export interface AssertionProfile {
  /** The refusal's OAuth error: invalid_grant for a grant, invalid_client for a client assertion. */
  readonly code: 'invalid_grant' | 'invalid_client';
  /** Named in the refusals: "the ID-JAG", "the client assertion". */
  readonly what: string;
  readonly issuer: string;
  readonly subject?: string;
  /** The values `aud` may be; it must be exactly one of them (one string, or an array of one). */
  readonly audiences: readonly string[];
  readonly algorithms: readonly string[];
  /** Whether the header's `typ` is one this kind of assertion has (RFC 8725 §3.11: one JWT is not taken for another). */
  readonly typ: (typ: string | undefined) => boolean;
  readonly requiredClaims: readonly string[];
  readonly key: JWTVerifyGetKey;
}

/**
 * The checks every JWT assertion gets (RFC 7521 §5.2, RFC 7523 §3): signature first, then type, audience,
 * expiry and a bounded lifetime, and a `jti` that is spent once, in the store, so replicas agree.
 */
export class AssertionChecks {
  readonly #store: BrokerStore;
  readonly #toleranceSeconds: number;
  readonly #maxLifetimeSeconds: number;

  constructor(store: BrokerStore, clockToleranceMs: number, maxLifetimeMs: number) {
    this.#store = store;
    this.#toleranceSeconds = clockToleranceMs / 1000;
    this.#maxLifetimeSeconds = maxLifetimeMs / 1000;
  }

  async verify(assertion: string, profile: AssertionProfile): Promise<JWTPayload> {
    const refuse = (reason: string, description: string) => refusal(profile.code, reason, `${profile.what} ${description}`);
    if (assertion.length > MAX_ASSERTION_LENGTH) throw refuse('malformed', 'is too large');
    let typ: unknown;
    try {
      typ = decodeProtectedHeader(assertion).typ;
    } catch {
      throw refuse('malformed', 'is not a JWT');
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(assertion, profile.key, {
        issuer: profile.issuer,
        ...(profile.subject === undefined ? {} : { subject: profile.subject }),
        algorithms: [...profile.algorithms],
        clockTolerance: this.#toleranceSeconds,
        requiredClaims: [...profile.requiredClaims],
      }));
    } catch (error) {
      throw refusalForVerification(error, refuse);
    }
    // Media type names compare case-insensitively, with or without "application/" (RFC 7515 §4.1.9); a typ
    // that is not a string is none of them.
    const typName = typeof typ === 'string' ? typ.toLowerCase().replace(/^application\//, '') : typ === undefined ? undefined : null;
    if (typName === null || !profile.typ(typName)) throw refuse('wrong_type', 'has the wrong typ');
    const aud = Array.isArray(payload.aud) && payload.aud.length === 1 ? payload.aud[0] : payload.aud;
    if (typeof aud !== 'string' || !profile.audiences.includes(aud)) throw refuse('wrong_audience', 'is meant for another audience');
    const now = Date.now() / 1000;
    const iat = payload.iat;
    if (typeof iat === 'number' && iat > now + this.#toleranceSeconds) throw refuse('not_yet_valid', 'is dated in the future');
    if (payload.exp! - (typeof iat === 'number' ? iat : now) > this.#maxLifetimeSeconds + this.#toleranceSeconds) throw refuse('lifetime_too_long', 'lives longer than this server accepts');
    if (typeof payload.jti !== 'string' || payload.jti.length === 0 || payload.jti.length > MAX_JTI_LENGTH) throw refuse('missing_claim', 'needs a jti of at most 256 characters');
    return payload;
  }

  /**
   * Marks the assertion's `jti` used until it expires (with the clock tolerance, as long as it could pass);
   * a second use, on any replica, is refused. Called once every other check has passed.
   */
  async spend(payload: JWTPayload, profile: Pick<AssertionProfile, 'code' | 'what'>, namespace: string): Promise<void> {
    const key = hashSecret(`${namespace}\n${payload.iss}\n${payload.jti}`);
    const until = (payload.exp! + this.#toleranceSeconds) * 1000 + 1000;
    if (!(await this.#store.put('assertion', key, 1, until, { ifAbsent: true }))) {
      throw refusal(profile.code, 'replayed', `${profile.what} was already used`);
    }
  }
}

const CLAIM_REASONS: Partial<Record<string, string>> = { nbf: 'not_yet_valid', iat: 'not_yet_valid', iss: 'wrong_issuer', sub: 'wrong_subject' };

function refusalForVerification(error: unknown, refuse: (reason: string, description: string) => OAuthError): OAuthError {
  if (error instanceof AuthFailure) {
    // The issuer's keys could not be had: nothing the client did, so it may retry the same assertion.
    if (error.reason === 'verifier_unavailable') return new OAuthError('temporarily_unavailable', "the issuer's signing keys cannot be fetched; retry later", 503, { 'retry-after': '5' }, 'issuer_keys_unavailable');
    return refuse('unknown_key', 'is signed with a key its issuer does not publish');
  }
  const { code, claim } = (error ?? {}) as { code?: string; claim?: string };
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return refuse('expired', 'has expired');
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return refuse(CLAIM_REASONS[claim ?? ''] ?? 'missing_claim', `fails its ${String(claim).slice(0, 20)} claim`);
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return refuse('algorithm', 'is signed with an algorithm not accepted');
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return refuse('bad_signature', 'has an invalid signature');
    case 'ERR_JWKS_NO_MATCHING_KEY':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return refuse('unknown_key', 'is signed with a key its issuer does not publish');
    default:
      return refuse('malformed', 'cannot be read');
  }
}
