import { ClientMetadataFailure } from './client-metadata-documents.ts';
import type { BrokerClient } from './client-metadata.ts';
import type { ClientRegistry } from './clients.ts';
import { OAuthError, singleValued } from './http.ts';
import { PKCE_VALUE } from './secrets.ts';

/** A checked authorization request, as the login transaction keeps it. */
export interface AuthorizationRequest {
  readonly client_id: string;
  readonly redirect_uri: string;
  /** Whether the client sent redirect_uri: the token request must then send the same (RFC 6749 §4.1.3). */
  readonly redirect_uri_given: boolean;
  readonly state: string | undefined;
  readonly code_challenge: string;
  readonly resource: string;
  readonly scope: readonly string[];
}

export interface ResourceTerms {
  /** The resource the broker issues tokens for (RFC 8707): the only acceptable `resource`. */
  readonly resource: string;
  /** Scopes a client may ask for; empty means any. */
  readonly scopesSupported: readonly string[];
  /** What a request without `scope` gets. */
  readonly defaultScopes: readonly string[];
}

export type AuthorizationCheck =
  | { readonly ok: true; readonly request: AuthorizationRequest; readonly client: BrokerClient }
  /** The client or redirect URI is not established: the error is shown, never sent anywhere (RFC 6749 §4.1.2.1). */
  | { readonly ok: false; readonly redirect: undefined; readonly message: string }
  /** Anything else goes back to the client's redirect URI. */
  | { readonly ok: false; readonly redirect: string; readonly state: string | undefined; readonly error: OAuthError };

const MAX_STATE_LENGTH = 2048;

/** RFC 6749 §4.1.1 with OAuth 2.1's PKCE (S256 only) and RFC 8707's resource. */
export async function checkAuthorizationRequest(query: URLSearchParams, clients: ClientRegistry, terms: ResourceTerms): Promise<AuthorizationCheck> {
  let params: ReadonlyMap<string, string>;
  try {
    params = singleValued(query);
  } catch (error) {
    return { ok: false, redirect: undefined, message: (error as Error).message };
  }
  const clientId = params.get('client_id');
  let client: BrokerClient | undefined;
  try {
    client = clientId === undefined ? undefined : await clients.find(clientId);
  } catch (error) {
    if (!(error instanceof ClientMetadataFailure)) throw error;
    return { ok: false, redirect: undefined, message: `The application's client metadata document cannot be used: ${error.message}.` };
  }
  if (!client) return { ok: false, redirect: undefined, message: 'The application that sent you here is not registered with this server.' };
  const given = params.get('redirect_uri');
  const redirectUri = given ?? (client.redirect_uris.length === 1 ? client.redirect_uris[0] : undefined);
  // Compared as strings, exactly: a look-alike URI is a different URI.
  if (redirectUri === undefined || !client.redirect_uris.includes(redirectUri)) {
    return { ok: false, redirect: undefined, message: 'The redirect URI is not one the application registered.' };
  }
  const state = params.get('state');
  const refuse = (code: string, description: string): AuthorizationCheck => ({
    ok: false,
    redirect: redirectUri,
    state: state !== undefined && state.length <= MAX_STATE_LENGTH ? state : undefined,
    error: new OAuthError(code, description),
  });
  if (state !== undefined && state.length > MAX_STATE_LENGTH) return refuse('invalid_request', 'state is too long');
  if (params.get('response_type') !== 'code') return refuse('unsupported_response_type', 'only response_type=code is supported');
  const method = params.get('code_challenge_method');
  const challenge = params.get('code_challenge');
  if (challenge === undefined) return refuse('invalid_request', 'PKCE is required: send code_challenge with code_challenge_method=S256');
  if (method !== 'S256') return refuse('invalid_request', 'code_challenge_method must be S256');
  if (!PKCE_VALUE.test(challenge)) return refuse('invalid_request', 'code_challenge is malformed');
  const resource = params.get('resource') ?? terms.resource;
  if (resource !== terms.resource) return refuse('invalid_target', 'tokens are issued only for this server\'s resource');
  const asked = params.get('scope');
  const scope = asked === undefined ? [...terms.defaultScopes] : [...new Set(asked.split(' ').filter((token) => token !== '' && token !== 'offline_access'))];
  if (terms.scopesSupported.length > 0 && scope.some((token) => !terms.scopesSupported.includes(token))) {
    return refuse('invalid_scope', 'a requested scope is not offered by this resource');
  }
  return {
    ok: true,
    client,
    request: { client_id: client.client_id, redirect_uri: redirectUri, redirect_uri_given: given !== undefined, state, code_challenge: challenge, resource, scope },
  };
}

/** The client's redirect URI with the response parameters added, `iss` always (RFC 9207). */
export function responseUrl(redirectUri: string, issuer: string, params: Record<string, string | undefined>): string {
  const url = new URL(redirectUri);
  for (const [name, value] of Object.entries(params)) if (value !== undefined) url.searchParams.set(name, value);
  url.searchParams.set('iss', issuer);
  return url.href;
}
