import { jwtVerify, SignJWT, type JWTPayload } from 'jose';
import { newSecret } from './secrets.ts';
import type { SigningKey } from './signing-key.ts';

export interface AccessTokenClaims {
  readonly subject: string;
  readonly clientId: string;
  readonly resource: string;
  readonly scope: readonly string[];
  readonly grantId: string;
  /** RFC 9449 §6: the thumbprint of the DPoP key the token is bound to (`cnf.jkt`). */
  readonly jkt?: string | undefined;
}

/** RFC 9068 access tokens signed with the broker's key; the resource-server path verifies them like any other issuer's. */
export class AccessTokens {
  readonly #issuer: string;
  readonly #key: SigningKey;
  readonly #ttlSeconds: number;

  constructor(issuer: string, key: SigningKey, ttlMs: number) {
    this.#issuer = issuer;
    this.#key = key;
    this.#ttlSeconds = Math.max(1, Math.floor(ttlMs / 1000));
  }

  get ttlSeconds(): number {
    return this.#ttlSeconds;
  }

  /** `grant_id` names the token family, so revoking a grant reaches the access tokens already out. */
  issue(claims: AccessTokenClaims): Promise<string> {
    const payload: JWTPayload = { client_id: claims.clientId, grant_id: claims.grantId };
    if (claims.scope.length > 0) payload.scope = claims.scope.join(' ');
    if (claims.jkt !== undefined) payload.cnf = { jkt: claims.jkt };
    return new SignJWT(payload)
      .setProtectedHeader({ alg: this.#key.alg, kid: this.#key.kid, typ: 'at+jwt' })
      .setIssuer(this.#issuer)
      .setSubject(claims.subject)
      .setAudience(claims.resource)
      .setIssuedAt()
      .setExpirationTime(`${this.#ttlSeconds}s`)
      .setJti(newSecret().slice(0, 22))
      .sign(this.#key.privateKey);
  }

  /** The claims of one of our own tokens, expired or not, or undefined for anything else. */
  async read(token: string): Promise<JWTPayload | undefined> {
    try {
      const { payload } = await jwtVerify(token, this.#key.publicKey, { issuer: this.#issuer, typ: 'at+jwt', algorithms: [this.#key.alg], clockTolerance: Number.MAX_SAFE_INTEGER });
      return payload;
    } catch {
      return undefined;
    }
  }
}
