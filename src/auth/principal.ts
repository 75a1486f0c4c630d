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

/** RFC 9068 §2.2.3: `scope` is one space-delimited string; scopes compare as whole tokens. */
export function scopesOf(claims: JWTPayload): Set<string> {
  return typeof claims.scope === 'string' ? new Set(claims.scope.split(' ').filter(Boolean)) : new Set();
}
