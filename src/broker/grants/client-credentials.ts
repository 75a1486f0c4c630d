import { newSecret } from '../secrets.ts';
import { checkResource, type TokenIssuer } from '../token-issuer.ts';
import type { GrantRequest, TokenGrant } from './grant.ts';
import { grantedScope } from './scope.ts';

export interface MachineTerms {
  readonly resource: string;
  readonly scopesSupported: readonly string[];
  /** What a request without `scope` gets when the client has no `scopes` of its own: tokens.required_scopes. */
  readonly defaultScopes: readonly string[];
  /** Per client id, the most its tokens may carry (`broker.clients[].scopes`); absent means all offered. */
  readonly clientScopes: ReadonlyMap<string, readonly string[]>;
}

/**
 * RFC 6749 §4.4 for the MCP client credentials extension: a confidential, pre-registered client gets a
 * token for itself. `sub` = `client_id` marks it a machine's (policy `principal: machine`); nobody
 * consents, so the operator's scope list for the client is the ceiling, and there is no refresh token.
 */
export class ClientCredentialsGrant implements TokenGrant {
  readonly type = 'client_credentials';
  readonly label = 'client_credentials';
  readonly #issuer: TokenIssuer;
  readonly #terms: MachineTerms;

  constructor(issuer: TokenIssuer, terms: MachineTerms) {
    this.#issuer = issuer;
    this.#terms = terms;
  }

  async issue({ client, form, jkt }: GrantRequest): Promise<Record<string, unknown>> {
    const terms = this.#terms;
    checkResource(form, terms.resource);
    const scope = grantedScope(form.get('scope'), {
      supported: terms.scopesSupported,
      fallback: terms.clientScopes.get(client.client_id) ?? terms.defaultScopes,
      ceilings: [terms.clientScopes.get(client.client_id)],
    });
    const grant = { clientId: client.client_id, subject: client.client_id, resource: terms.resource, scope, grantId: newSecret().slice(0, 22) };
    return (await this.#issuer.issue(client, grant, jkt, { refresh: false, machine: true })).body;
  }
}
