import type { BrokerEndpoints } from './endpoints.ts';

/**
 * RFC 8414 authorization server metadata, built once. Only what the broker does is advertised: the
 * code flow with PKCE S256, refresh tokens, `iss` in every authorization response (RFC 9207), and
 * DPoP-bound tokens (RFC 9449 §5.1) with the proof algorithms accepted, unless DPoP is off.
 */
export function buildAuthorizationServerMetadata(
  endpoints: BrokerEndpoints,
  options: { scopes: readonly string[]; dynamicRegistration: boolean; clientIdMetadataDocuments: boolean; dpopAlgorithms?: readonly string[] | undefined },
): string {
  const authMethods = ['none', 'client_secret_basic', 'client_secret_post'];
  const document: Record<string, unknown> = {
    issuer: endpoints.issuer,
    authorization_endpoint: endpoints.authorization,
    token_endpoint: endpoints.token,
    jwks_uri: endpoints.jwks,
    ...(options.dynamicRegistration ? { registration_endpoint: endpoints.registration } : {}),
    revocation_endpoint: endpoints.revocation,
    response_types_supported: ['code'],
    response_modes_supported: ['query'],
    grant_types_supported: ['authorization_code', 'refresh_token'],
    code_challenge_methods_supported: ['S256'],
    token_endpoint_auth_methods_supported: authMethods,
    revocation_endpoint_auth_methods_supported: authMethods,
    authorization_response_iss_parameter_supported: true,
    ...(options.clientIdMetadataDocuments ? { client_id_metadata_document_supported: true } : {}),
  };
  if (options.scopes.length > 0) document.scopes_supported = options.scopes;
  if (options.dpopAlgorithms !== undefined) document.dpop_signing_alg_values_supported = options.dpopAlgorithms;
  return JSON.stringify(document);
}
