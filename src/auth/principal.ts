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
