import type { BrokerClient } from '../client-metadata.ts';
import type { FormParams } from '../http.ts';

/** A token request whose client is authenticated and whose DPoP proof (if any) verified. */
export interface GrantRequest {
  readonly client: BrokerClient;
  readonly form: FormParams;
  /** The thumbprint of the request's DPoP proof key: the access token is bound to it. */
  readonly jkt: string | undefined;
}

/** One `grant_type` of the token endpoint: judges the request whole, then issues, or throws an OAuthError. */
export interface TokenGrant {
  readonly type: string;
  /** The grant's name in metrics and logs: short and fixed. */
  readonly label: string;
  issue(request: GrantRequest): Promise<Record<string, unknown>>;
}
