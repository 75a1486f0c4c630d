import type { Config } from '../config/schema.ts';

/** The broker's URLs, all under its issuer, and the paths the main listener routes to it. */
export interface BrokerEndpoints {
  readonly issuer: string;
  readonly authorization: string;
  readonly token: string;
  readonly registration: string;
  readonly revocation: string;
  readonly jwks: string;
  readonly consent: string;
  /** Where the identity provider sends the user back (the redirect URI registered there). */
  readonly callback: string;
  /** RFC 8414 §3 and OpenID Connect discovery locations of the metadata. */
  readonly metadataPaths: ReadonlySet<string>;
}

/** The broker's issuer: configured, else the origin of the resource it issues tokens for. Undefined without a broker. */
export function brokerIssuerOf(config: Config): string | undefined {
  return config.broker ? (config.broker.issuer ?? new URL(config.resource.url).origin) : undefined;
}

export function brokerEndpoints(issuer: string): BrokerEndpoints {
  const url = new URL(issuer);
  const base = url.pathname.replace(/\/$/, '');
  const at = (path: string) => `${url.origin}${base}/oauth/${path}`;
  const metadataPaths = new Set([`/.well-known/oauth-authorization-server${base}`, `/.well-known/openid-configuration${base}`]);
  if (base) metadataPaths.add(`${base}/.well-known/openid-configuration`);
  return {
    issuer,
    authorization: at('authorize'),
    token: at('token'),
    registration: at('register'),
    revocation: at('revoke'),
    jwks: at('jwks'),
    consent: at('consent'),
    callback: at('callback'),
    metadataPaths,
  };
}

/** The path part of one of the endpoint URLs, as the router compares it. */
export function pathOf(url: string): string {
  return new URL(url).pathname;
}
