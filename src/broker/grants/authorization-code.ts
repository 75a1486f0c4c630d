import { OAuthError } from '../http.ts';
import type { LoginFlow } from '../login-flow.ts';
import type { Revocations } from '../revocations.ts';
import { PKCE_VALUE, s256 } from '../secrets.ts';
import { checkResource, type TokenIssuer } from '../token-issuer.ts';
import type { GrantRequest, TokenGrant } from './grant.ts';

/**
 * RFC 6749 §4.1.3 with OAuth 2.1's rules: a single-use code bound to the client, redirect URI, PKCE
 * verifier and resource. A code used twice was stolen or leaked: what it issued is revoked.
 */
export class AuthorizationCodeGrant implements TokenGrant {
  readonly type = 'authorization_code';
  readonly label = 'authorization_code';
  readonly #login: LoginFlow;
  readonly #revocations: Revocations;
  readonly #issuer: TokenIssuer;
  readonly #onReplay: () => void;

  constructor(login: LoginFlow, revocations: Revocations, issuer: TokenIssuer, onReplay: () => void) {
    this.#login = login;
    this.#revocations = revocations;
    this.#issuer = issuer;
    this.#onReplay = onReplay;
  }

  async issue({ client, form, jkt }: GrantRequest): Promise<Record<string, unknown>> {
    const code = form.get('code');
    if (!code) throw new OAuthError('invalid_request', 'code is required');
    const redeemed = await this.#login.redeemCode(code);
    if (!redeemed) throw new OAuthError('invalid_grant', 'the code is invalid or expired');
    const { grant } = redeemed;
    if (!redeemed.first) {
      // RFC 6749 §4.1.2 / OAuth 2.1 §4.1.3: a code used twice was stolen or leaked; what it issued goes too.
      this.#onReplay();
      await this.#revocations.revokeGrant(grant.grantId);
      throw new OAuthError('invalid_grant', 'the code was already used; the tokens issued from it are revoked', 400, {}, 'replayed');
    }
    const { request } = grant;
    if (request.client_id !== client.client_id) throw new OAuthError('invalid_grant', 'the code was issued to another client', 400, {}, 'client_mismatch');
    const redirectUri = form.get('redirect_uri');
    if (redirectUri !== undefined ? redirectUri !== request.redirect_uri : request.redirect_uri_given) {
      throw new OAuthError('invalid_grant', 'redirect_uri does not match the authorization request');
    }
    const verifier = form.get('code_verifier');
    if (verifier === undefined || !PKCE_VALUE.test(verifier) || s256(verifier) !== request.code_challenge) {
      throw new OAuthError('invalid_grant', 'the PKCE code_verifier does not match the code_challenge', 400, {}, 'pkce');
    }
    checkResource(form, request.resource);
    const issued = await this.#issuer.issue(client, { clientId: client.client_id, subject: grant.subject, resource: request.resource, scope: request.scope, grantId: grant.grantId }, jkt, { refresh: true });
    return issued.body;
  }
}
