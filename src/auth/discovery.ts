import { FetchFailure, fetchJson, type FetchJsonOptions } from './fetch-json.ts';

export interface IssuerMetadata {
  readonly issuer: string;
  readonly jwks_uri?: string;
  readonly [member: string]: unknown;
}

/** RFC 8414 first, then OpenID Connect discovery (both the path-inserted and the appended form). */
export function discoveryUrls(issuer: string): string[] {
  const url = new URL(issuer);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  return [
    `${url.origin}/.well-known/oauth-authorization-server${path}`,
    `${url.origin}/.well-known/openid-configuration${path}`,
    ...(path ? [`${url.origin}${path}/.well-known/openid-configuration`] : []),
  ];
}

/**
 * Finds an issuer's metadata. A document whose `issuer` differs from the configured one is refused
 * (RFC 8414 §3.3): its keys would belong to someone else.
 */
export async function discoverIssuerMetadata(issuer: string, options: FetchJsonOptions): Promise<IssuerMetadata> {
  const failures: string[] = [];
  for (const url of discoveryUrls(issuer)) {
    let document: unknown;
    try {
      document = await fetchJson(url, options);
    } catch (error) {
      if (error instanceof FetchFailure && error.kind === 'status') {
        failures.push(error.message);
        continue;
      }
      throw error;
    }
    if (typeof document !== 'object' || document === null || Array.isArray(document)) {
      throw new FetchFailure('invalid_json', `${url} is not a JSON object`);
    }
    const metadata = document as Record<string, unknown>;
    if (metadata.issuer !== issuer) {
      throw new FetchFailure('invalid_json', `${url} names issuer ${JSON.stringify(metadata.issuer)}, not the configured ${issuer}`);
    }
    if (metadata.jwks_uri !== undefined && typeof metadata.jwks_uri !== 'string') {
      throw new FetchFailure('invalid_json', `${url} has a jwks_uri that is not a string`);
    }
    return metadata as IssuerMetadata;
  }
  throw new FetchFailure('status', `no authorization server metadata for ${issuer}: ${failures.join('; ')}`);
}
