import { OAuthError } from '../http.ts';
import type { Revocations } from '../revocations.ts';
import { hashSecret } from '../secrets.ts';
import type { BrokerStore } from '../store.ts';
import { checkResource, type RefreshGrant, type TokenIssuer } from '../token-issuer.ts';
import type { GrantRequest, TokenGrant } from './grant.ts';

/**
 * RFC 6749 §6 with OAuth 2.1's rotation: a refresh token is spent by the use that issues tokens (a refused
 * refresh request spends nothing), and a rotated one that comes back is taken as theft: the whole family
 * (every refresh token and access token of that grant) is revoked. A bound token refreshes only with a
 * proof of its key (RFC 9449 §5).
 */
export class RefreshTokenGrant implements TokenGrant {
  readonly type = 'refresh_token';
  readonly label = 'refresh_token';
  readonly #store: BrokerStore;
  readonly #revocations: Revocations;
  readonly #issuer: TokenIssuer;
  readonly #onReplay: () => void;

  constructor(store: BrokerStore, revocations: Revocations, issuer: TokenIssuer, onReplay: () => void) {
    this.#store = store;
    this.#revocations = revocations;
    this.#issuer = issuer;
    this.#onReplay = onReplay;
  }

  async issue({ client, form, jkt }: GrantRequest): Promise<Record<string, unknown>> {
    const token = form.get('refresh_token');
    if (!token) throw new OAuthError('invalid_request', 'refresh_token is required');
    const key = hashSecret(token);
    // The request is judged whole before the token is spent: rotation is the issuing of a new token
    // (RFC 9700 §4.14.2), so a refused request (another client, invalid_target, invalid_scope) leaves the
    // token usable, and the client's corrected retry is no replay.
    const known = await this.#store.peek<RefreshGrant>('refresh', key);
    if (!known || (await this.#revocations.isGrantRevoked(known.value.grantId))) throw new OAuthError('invalid_grant', 'the refresh token is invalid, expired or revoked');
    const grant = known.value;
    if (grant.clientId !== client.client_id) throw new OAuthError('invalid_grant', 'the refresh token was issued to another client', 400, {}, 'client_mismatch');
    // RFC 9449 §5: a bound refresh token is used only with a proof of its key. Checked before the replay
    // test: whoever holds a rotated bound token without its key can neither use it nor revoke the grant.
    if (grant.jkt !== undefined && jkt === undefined) throw new OAuthError('invalid_dpop_proof', 'this refresh token is bound to a DPoP key: a proof of it is required');
    if (grant.jkt !== undefined && jkt !== grant.jkt) throw new OAuthError('invalid_dpop_proof', 'the DPoP proof key is not the key the refresh token is bound to');
    // A rotated token is a replay whatever else the request asks: it is not given the chance to be refused for something else.
    if (known.used) throw await this.#replayed(grant);
    checkResource(form, grant.resource);
    const asked = form.get('scope');
    let scope = grant.scope;
    if (asked !== undefined) {
      const narrowed = [...new Set(asked.split(' ').filter(Boolean))];
      if (narrowed.some((scopeToken) => !grant.scope.includes(scopeToken))) throw new OAuthError('invalid_scope', 'a refresh cannot widen the grant');
      scope = narrowed;
    }
    const issued = await this.#issuer.issue(client, grant, jkt, { scope, refresh: true });
    // Spent last, once the new tokens exist, and atomically: among concurrent uses exactly one is first.
    // The others are replays (the winner's tokens die with the family), as is a use that came after ours.
    const used = await this.#store.use<RefreshGrant>('refresh', key);
    if (used?.first) return issued.body;
    // Lost (or the token expired meanwhile): the new tokens are never sent, and the stored one goes.
    const refusal = used ? await this.#replayed(grant) : new OAuthError('invalid_grant', 'the refresh token is invalid, expired or revoked');
    if (issued.refreshKey !== undefined) await this.#store.delete('refresh', issued.refreshKey);
    throw refusal;
  }

  /** OAuth 2.1 §4.3.1 / RFC 9700 §4.14.2: a rotated token came back, so two parties hold the family. Revokes it; returns the refusal. */
  async #replayed(grant: RefreshGrant): Promise<OAuthError> {
    this.#onReplay();
    await this.#revocations.revokeGrant(grant.grantId);
    return new OAuthError('invalid_grant', 'the refresh token was already used; its whole grant is revoked', 400, {}, 'replayed');
  }
}
