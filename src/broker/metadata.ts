import { JWT_BEARER_GRANT } from '../config/broker-schema.ts';
import type { BrokerEndpoints } from './endpoints.ts';

/** The grant profile an ID-JAG-accepting authorization server advertises (draft-ietf-oauth-identity-assertion-authz-grant §6.2). */
const ID_JAG_PROFILE = 'urn:ietf:params:oauth:grant-profile:id-jag';

/**
 * RFC 8414 authorization server metadata, built once. Only what the broker does is advertised: the
 * code flow with PKCE S256, refresh tokens, `iss` in every authorization response (RFC 9207), DPoP-bound
 * tokens (RFC 9449 §5.1) with the proof algorithms accepted, unless DPoP is off, and the grants and client
 * authentication of the clients configured (client credentials, ID-JAG, private_key_jwt).
 */
export function buildAuthorizationServerMetadata(
  endpoints: BrokerEndpoints,
  options: {
    scopes: readonly string[];
    dynamicRegistration: boolean;
    clientIdMetadataDocuments: boolean;
    grantTypes: readonly string[];
    dpopAlgorithms?: readonly string[] | undefined;
    /** Set when some client authenticates with private_key_jwt: the algorithms its assertions may use. */
    clientAssertionAlgorithms?: readonly string[] | undefined;
  },
): string {
  const authMethods = ['none', 'client_secret_basic', 'client_secret_post', ...(options.clientAssertionAlgorithms ? ['private_key_jwt'] : [])];
  const document: Record<string, unknown> = {
    issuer: endpoints.issuer,
    authorization_endpoint: endpoints.authorization,
    token_endpoint: endpoints.token,
    jwks_uri: endpoints.jwks,
    ...(options.dynamicRegistration ? { registration_endpoint: endpoints.registration } : {}),
    revocation_endpoint: endpoints.revocation,
    response_types_supported: ['code'],
    response_modes_supported: ['query'],
    grant_types_supported: options.grantTypes,
    code_challenge_methods_supported: ['S256'],
    token_endpoint_auth_methods_supported: authMethods,
    revocation_endpoint_auth_methods_supported: authMethods,
    authorization_response_iss_parameter_supported: true,
    ...(options.clientIdMetadataDocuments ? { client_id_metadata_document_supported: true } : {}),
  };
  if (options.scopes.length > 0) document.scopes_supported = options.scopes;
  if (options.clientAssertionAlgorithms) document.token_endpoint_auth_signing_alg_values_supported = options.clientAssertionAlgorithms;
  if (options.grantTypes.includes(JWT_BEARER_GRANT)) document.authorization_grant_profiles_supported = [ID_JAG_PROFILE];
  if (options.dpopAlgorithms !== undefined) document.dpop_signing_alg_values_supported = options.dpopAlgorithms;
  return JSON.stringify(document);
}
