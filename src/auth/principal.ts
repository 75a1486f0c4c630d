import type { JWTPayload } from 'jose';

/** Who a verified token speaks for. */
export interface Principal {
  readonly issuer: string;
  readonly subject: string | undefined;
  readonly clientId: string | undefined;
  readonly scopes: ReadonlySet<string>;
  /** Seconds since the epoch; an introspected token may not say. */
  readonly expiresAt: number | undefined;
  readonly claims: Readonly<JWTPayload>;
  /** RFC 9449 §6: the thumbprint of the key the token is bound to (`cnf.jkt`); absent for a bearer token. */
  readonly jkt?: string;
}

/**
 * Whether a token speaks for a machine rather than a person: its subject is its own client (RFC 9068
 * §2.2, the client credentials grant), so no user stands behind it.
 */
export function isMachine(principal: Principal): boolean {
  return principal.subject !== undefined && principal.subject === principal.clientId;
}

/**
 * The DPoP key a token is bound to (RFC 7800 `cnf`, RFC 9449 §6.1 `jkt`), or undefined for an unbound
 * token. Any other confirmation (a certificate thumbprint, a key this proxy cannot check) is refused by
 * `fail`: a sender-constrained token must never pass as a bearer token.
 */
export function boundKeyOf(cnf: unknown, fail: () => Error): string | undefined {
  if (cnf === undefined) return undefined;
  if (typeof cnf !== 'object' || cnf === null || Array.isArray(cnf)) throw fail();
  const keys = Object.keys(cnf);
  const jkt = (cnf as { jkt?: unknown }).jkt;
  if (keys.length !== 1 || typeof jkt !== 'string' || jkt.length === 0) throw fail();
  return jkt;
}

export type ScopeClaim = 'scope' | 'scp';

/**
 * RFC 9068 §2.2.3: `scope` is one space-delimited string. `scp` may also be an array of strings (Okta).
 * Scopes compare as whole tokens; any other shape grants nothing.
 */
export function scopesOf(claims: JWTPayload, claim: ScopeClaim = 'scope'): Set<string> {
  const value = claims[claim];
  if (typeof value === 'string') return new Set(value.split(' ').filter(Boolean));
  if (claim === 'scp' && Array.isArray(value) && value.every((scope) => typeof scope === 'string')) return new Set(value.filter(Boolean));
  return new Set();
}
