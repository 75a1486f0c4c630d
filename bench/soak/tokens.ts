// Tokens for the traffic: valid ones minted by the real authorization server, and invalid ones of
// every kind the proxy must refuse. Refreshed on a timer so no valid token expires mid-run and the
// forged ones keep changing (a fresh foreign key each time).
import { randomBytes } from 'node:crypto';
import { generateKeyPair, importJWK, SignJWT, type JWTPayload } from 'jose';
import type { StartedAuthorizationServer } from '../../demo/authorization-server.ts';

export const SCOPES = ['mcp:read', 'mcp:write'] as const;
/** The authorization server knows this resource too; its tokens must never pass the proxy. */
export const OTHER_RESOURCE = 'http://127.0.0.1:1/other';
export const OTHER_OPAQUE_RESOURCE = 'http://127.0.0.1:1/other-opaque';

/** Every kind of token the proxy must refuse (401, or 403 for the scope). */
export const INVALID_KINDS = [
  'garbage-jwt', // three random base64url segments: malformed_token
  'garbage-opaque', // random opaque string: introspected, inactive
  'foreign-key', // our claims, the AS's kid, signed by a freshly generated key: invalid_signature
  'foreign-kid', // freshly generated key and an unknown kid: unknown_key (throttled JWKS refetch)
  'expired', // signed with the AS's own key, expired ten minutes ago
  'other-audience', // minted by the AS for another resource: wrong_audience
  'other-audience-opaque', // an opaque token for another resource: introspected, wrong_audience
  'alg-none', // unsigned
  'insufficient-scope', // minted by the AS with mcp:write only; required is mcp:read: 403
  /** A JWT naming an issuer that is not configured: refused without introspection (the first soak's finding). */
  'unknown-issuer',
] as const;
export type InvalidKind = (typeof INVALID_KINDS)[number];
export const WITHOUT_UNKNOWN_ISSUER: readonly InvalidKind[] = INVALID_KINDS.filter((kind) => kind !== 'unknown-issuer');

interface Minted {
  readonly jwt: string;
  readonly opaque: string;
  readonly forged: Readonly<Record<Exclude<InvalidKind, 'garbage-jwt' | 'garbage-opaque'>, string>>;
}

export class TokenPool {
  readonly #as: StartedAuthorizationServer;
  readonly #resource: string;
  readonly #opaqueResource: string;
  #current: Minted | undefined;

  constructor(as: StartedAuthorizationServer, resource: string, opaqueResource: string) {
    this.#as = as;
    this.#resource = resource;
    this.#opaqueResource = opaqueResource;
  }

  /** Mints a new set; the previous set stays in use until this one is complete. */
  async refresh(): Promise<void> {
    const scope = SCOPES.join(' ');
    const [jwt, opaque, otherAudience, otherAudienceOpaque, insufficientScope, forged] = await Promise.all([
      this.#as.mintToken({ resource: this.#resource, scope }),
      this.#as.mintToken({ resource: this.#opaqueResource, scope }),
      this.#as.mintToken({ resource: OTHER_RESOURCE, scope }),
      // oidc-provider picks the token format per resource: this sibling of OTHER_RESOURCE issues opaque ones.
      this.#as.mintToken({ resource: OTHER_OPAQUE_RESOURCE, scope }),
      this.#as.mintToken({ resource: this.#resource, scope: 'mcp:write' }),
      this.#forge(),
    ]);
    this.#current = {
      jwt,
      opaque,
      forged: { ...forged, 'other-audience': otherAudience, 'other-audience-opaque': otherAudienceOpaque, 'insufficient-scope': insufficientScope },
    };
  }

  get jwt(): string {
    return this.#minted().jwt;
  }

  get opaque(): string {
    return this.#minted().opaque;
  }

  invalid(kind: InvalidKind): string {
    // Garbage is new for every request, so nothing about it can be cached by the proxy.
    if (kind === 'garbage-jwt') return `${randomB64url(24)}.${randomB64url(60)}.${randomB64url(40)}`;
    if (kind === 'garbage-opaque') return randomB64url(32);
    return this.#minted().forged[kind];
  }

  #minted(): Minted {
    if (!this.#current) throw new Error('TokenPool.refresh() has not completed yet');
    return this.#current;
  }

  async #forge(): Promise<Record<'foreign-key' | 'foreign-kid' | 'expired' | 'alg-none' | 'unknown-issuer', string>> {
    const now = Math.floor(Date.now() / 1000);
    const claims: JWTPayload = { iss: this.#as.issuer, aud: this.#resource, sub: 'soak-user', client_id: 'soak', scope: SCOPES.join(' '), iat: now, exp: now + 300, jti: randomB64url(8) };
    const { kid } = this.#as.signingKey;
    const asKey = await importJWK(this.#as.signingKey.privateJwk, 'RS256');
    const { privateKey: foreign } = await generateKeyPair('RS256');
    const header = { alg: 'RS256', typ: 'at+jwt' } as const;
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    return {
      'foreign-key': await new SignJWT(claims).setProtectedHeader({ ...header, kid }).sign(foreign),
      'foreign-kid': await new SignJWT(claims).setProtectedHeader({ ...header, kid: `soak-${randomB64url(6)}` }).sign(foreign),
      expired: await new SignJWT({ ...claims, iat: now - 1200, exp: now - 600 }).setProtectedHeader({ ...header, kid }).sign(asKey),
      'alg-none': `${b64({ alg: 'none', typ: 'at+jwt' })}.${b64(claims)}.`,
      'unknown-issuer': await new SignJWT({ ...claims, iss: 'http://127.0.0.1:9/unknown' }).setProtectedHeader({ ...header, kid: `soak-${randomB64url(6)}` }).sign(foreign),
    };
  }
}

function randomB64url(bytes: number): string {
  return randomBytes(bytes).toString('base64url');
}
