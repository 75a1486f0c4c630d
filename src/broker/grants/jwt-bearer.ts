import { decodeJwt, type JWTPayload } from 'jose';
import { JWT_BEARER_GRANT } from '../../config/broker-schema.ts';
import type { AssertionChecks, AssertionProfile } from '../assertions.ts';
import type { EnterpriseIssuer } from '../enterprise-issuers.ts';
import { OAuthError, refusal } from '../http.ts';
import { newSecret } from '../secrets.ts';
import { checkResource, type TokenIssuer } from '../token-issuer.ts';
import type { GrantRequest, TokenGrant } from './grant.ts';
import type { MachineTerms } from './client-credentials.ts';
import { grantedScope } from './scope.ts';

const ID_JAG_TYP = 'oauth-id-jag+jwt';
const MAX_SUBJECT_LENGTH = 255;

const refuse = (reason: string, description: string) => refusal('invalid_grant', reason, description);

/**
 * Enterprise-managed authorization: an Identity Assertion JWT Authorization Grant (ID-JAG,
 * draft-ietf-oauth-identity-assertion-authz-grant §4.4) from a trusted enterprise identity provider is
 * exchanged for the broker's own access token for the assertion's user. It must be of type
 * `oauth-id-jag+jwt`, for this broker (`aud`), this resource and the authenticated client, short-lived,
 * and is used once (its `jti` is spent in the store, so replicas agree). No refresh token: the client
 * brings a new ID-JAG.
 */
export class JwtBearerGrant implements TokenGrant {
  readonly type = JWT_BEARER_GRANT;
  readonly label = 'jwt_bearer';
  readonly #issuers: ReadonlyMap<string, EnterpriseIssuer>;
  readonly #checks: AssertionChecks;
  readonly #issuer: TokenIssuer;
  readonly #terms: MachineTerms;

  constructor(issuers: ReadonlyMap<string, EnterpriseIssuer>, checks: AssertionChecks, issuer: TokenIssuer, terms: MachineTerms) {
    this.#issuers = issuers;
    this.#checks = checks;
    this.#issuer = issuer;
    this.#terms = terms;
  }

  async issue({ client, form, jkt }: GrantRequest): Promise<Record<string, unknown>> {
    const assertion = form.get('assertion');
    if (!assertion) throw new OAuthError('invalid_request', 'assertion is required');
    const trusted = this.#issuers.get(claimedIssuer(assertion));
    // The issuer is looked up among the configured ones only: nothing the assertion names is fetched.
    if (!trusted) throw refuse('untrusted_issuer', 'the ID-JAG is not from an issuer this server trusts');
    const profile: AssertionProfile = {
      code: 'invalid_grant',
      what: 'the ID-JAG',
      issuer: trusted.issuer,
      audiences: trusted.audiences,
      algorithms: trusted.algorithms,
      typ: (typ) => typ === ID_JAG_TYP,
      requiredClaims: ['exp', 'iat', 'jti', 'sub'],
      key: trusted.key,
    };
    const payload = await this.#checks.verify(assertion, profile);
    const subject = trusted.subjectPrefix + this.#judge(payload, client.client_id, jkt);
    checkResource(form, this.#terms.resource);
    const scope = grantedScope(form.get('scope'), {
      supported: this.#terms.scopesSupported,
      fallback: scopesOf(payload) ?? this.#terms.clientScopes.get(client.client_id) ?? this.#terms.defaultScopes,
      ceilings: [scopesOf(payload), this.#terms.clientScopes.get(client.client_id)],
    });
    const grant = { clientId: client.client_id, subject, resource: this.#terms.resource, scope, grantId: newSecret().slice(0, 22) };
    // Signed first (it stores nothing), spent last: a request refused for anything else leaves the ID-JAG
    // unspent, and a token whose jti turns out spent is never sent.
    const { body } = await this.#issuer.issue(client, grant, jkt, { refresh: false });
    await this.#checks.spend(payload, profile, 'id-jag');
    return body;
  }

  /** The claims beyond the common ones: client continuity, the resource, the user, and a key binding. Returns the subject. */
  #judge(payload: JWTPayload, clientId: string, jkt: string | undefined): string {
    if (payload.client_id !== clientId) throw refuse('client_mismatch', 'the ID-JAG was issued for another client');
    const resource = payload.resource;
    const resources = typeof resource === 'string' ? [resource] : Array.isArray(resource) ? resource : [];
    if (!resources.includes(this.#terms.resource)) throw refuse('wrong_resource', 'the ID-JAG is not for this resource');
    const subject = payload.sub;
    if (typeof subject !== 'string' || subject.length === 0 || subject.length > MAX_SUBJECT_LENGTH) throw refuse('missing_claim', 'the ID-JAG names no usable subject');
    // RFC 6749 §3.3 makes scope one string; any other shape would be no limit at all, so it is refused.
    if (payload.scope !== undefined && typeof payload.scope !== 'string') throw refuse('malformed_scope', 'the ID-JAG scope must be a space-separated string');
    // §6.2: an ID-JAG bound to a key is used only with a proof of that key.
    const bound = (payload.cnf as { jkt?: unknown } | undefined)?.jkt;
    if (payload.cnf !== undefined && typeof bound !== 'string') throw refuse('unsupported_confirmation', 'the ID-JAG is bound in a way this server cannot check');
    if (typeof bound === 'string' && bound !== jkt) throw refuse(jkt === undefined ? 'proof_required' : 'proof_key_mismatch', 'the ID-JAG is bound to a key this request does not prove');
    return subject;
  }
}

/** The `iss` an assertion claims, unverified: only to pick among the trusted issuers' keys. */
function claimedIssuer(assertion: string): string {
  try {
    const iss = decodeJwt(assertion).iss;
    return typeof iss === 'string' ? iss : '';
  } catch {
    throw refuse('malformed', 'the ID-JAG is not a JWT');
  }
}

/** The scopes the identity provider granted (a string, checked by `#judge`), or undefined when it names none. */
function scopesOf(payload: JWTPayload): string[] | undefined {
  return typeof payload.scope === 'string' ? payload.scope.split(' ').filter(Boolean) : undefined;
}
