import type { Config } from '../config/schema.ts';

const WELL_KNOWN = '/.well-known/oauth-protected-resource';

export interface ProtectedResourceMetadata {
  /** Paths (no query) at which the document is served. */
  readonly paths: ReadonlySet<string>;
  /** The absolute URL named by `resource_metadata` in every challenge. */
  readonly url: string;
  /** The serialized RFC 9728 document, built once: it never depends on the request. */
  readonly body: string;
}

/**
 * RFC 9728 metadata for the configured resource. `resource` is the configured URL byte for byte, and
 * every URL here comes from config, never from `Host` or `X-Forwarded-*`, so a client cannot choose
 * the audience it is told to ask for.
 */
export function buildProtectedResourceMetadata(config: Config, brokerIssuer?: string): ProtectedResourceMetadata {
  const resource = new URL(config.resource.url);
  const resourcePath = resource.pathname === '/' ? '' : resource.pathname;
  const pathInserted = `${WELL_KNOWN}${resourcePath}`;
  const paths = new Set([pathInserted]);
  if (config.resource.root_metadata) paths.add(WELL_KNOWN);

  const document: Record<string, unknown> = {
    resource: config.resource.url,
    // The broker comes first: clients take the first authorization server they can use.
    authorization_servers: [...(brokerIssuer ? [brokerIssuer] : []), ...config.authorization_servers.map((server) => server.issuer)],
    bearer_methods_supported: ['header'],
  };
  // RFC 9728 §3.2: members with zero elements are omitted.
  if (config.resource.scopes_supported.length > 0) document.scopes_supported = config.resource.scopes_supported;
  if (config.resource.name) document.resource_name = config.resource.name;
  if (config.resource.documentation) document.resource_documentation = config.resource.documentation;
  // RFC 9728 §2 (from RFC 9449): what proofs are accepted, and whether bearer tokens are not.
  const { dpop } = config.tokens;
  if (dpop.mode !== 'off') document.dpop_signing_alg_values_supported = dpop.algorithms;
  if (dpop.mode === 'required') document.dpop_bound_access_tokens_required = true;

  return { paths, url: `${resource.origin}${pathInserted}`, body: JSON.stringify(document) };
}
