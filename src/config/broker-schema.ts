import { z } from 'zod';
import { DEFAULTS } from './defaults.ts';
import { count, duration, httpUrl, scopeToken, secret, text } from './fields.ts';
import { substitute } from './substitute.ts';

/** RFC 7523 §2.1: the grant an enterprise client presents an ID-JAG with. */
export const JWT_BEARER_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
export const CLIENT_GRANT_TYPES = ['authorization_code', 'refresh_token', 'client_credentials', JWT_BEARER_GRANT] as const;

/** A data URL the page's CSP allows as `img-src data:`; SVG in an <img> runs no script. */
const DATA_IMAGE = /^data:image\/(png|svg\+xml|jpeg|webp);base64,[A-Za-z0-9+/]+={0,2}$/;

/** The consent page's logo: fetched by the user's browser, so only over https, or inline. */
const logoUrl = () =>
  text().pipe(
    z.string().max(100_000).refine((value) => DATA_IMAGE.test(value) || isHttpsUrl(value), 'expected an https:// URL or a data:image/(png|svg+xml|jpeg|webp);base64, URL'),
  );

function isHttpsUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'https:' && url.username === '' && url.password === '' && !value.includes('#');
  } catch {
    return false;
  }
}

const jwkSet = z.strictObject({ keys: z.array(z.record(z.string(), z.unknown())).min(1).max(10) });

/** A JWK Set written in the YAML, or the JSON of one read from a mounted file (`${file:/path}`), at start. */
const jwks = z.preprocess((value, ctx) => {
  if (typeof value !== 'string') return value;
  const read = substitute(value);
  if (!read.ok) {
    ctx.addIssue({ code: 'custom', message: read.problem });
    return z.NEVER;
  }
  try {
    return JSON.parse(read.value) as unknown;
  } catch {
    ctx.addIssue({ code: 'custom', message: 'expected a JWK Set: an object with keys, or ${file:/path} to its JSON' });
    return z.NEVER;
  }
}, jwkSet);

const preRegisteredClient = z.strictObject({
  client_id: text().pipe(z.string().min(1).max(256)),
  client_name: text().optional(),
  /** What the client may ask the token endpoint for; a machine (no user) has `[client_credentials]`. */
  grant_types: z
    .array(z.enum(CLIENT_GRANT_TYPES))
    .min(1)
    .default(['authorization_code', 'refresh_token'])
    .transform((grants) => [...new Set(grants)]),
  /** Needed with authorization_code, and only then. */
  redirect_uris: z.array(httpUrl()).default([]),
  /** A confidential client authenticates at the token endpoint; without a secret or keys the client is public (PKCE only). */
  client_secret: secret().optional(),
  /** The public keys the client signs its client assertions with (private_key_jwt, RFC 7523 §2.2): a JWK Set, instead of a secret. */
  jwks: jwks.optional(),
  /** The most a token issued without a user's consent (client_credentials, jwt-bearer) may carry; all of resource.scopes_supported when omitted. */
  scopes: z.array(scopeToken()).optional(),
});

/** An enterprise identity provider whose ID-JAGs (Identity Assertion JWT Authorization Grants) the broker accepts. */
const trustedIssuer = z.strictObject({
  issuer: httpUrl(),
  /** Where its signing keys are; discovered from its metadata when omitted. */
  jwks_uri: httpUrl().optional(),
  /** Other values this issuer names the broker by in `aud`, besides the broker's issuer. */
  audiences: z.array(text().pipe(z.string().min(1))).default([]),
  algorithms: z.array(z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'])).min(1).default([...DEFAULTS.algorithms]),
  /**
   * Put before the ID-JAG's `sub` to make the token's. Default: none for the identity provider the broker
   * logs users in at (the same users), `<issuer>#` for any other issuer (other users).
   */
  subject_prefix: text().pipe(z.string().max(300)).optional(),
});

/** Broker mode: mcp-warden is the authorization server MCP clients see, and logs users in at the identity provider. */
export const broker = z.strictObject({
  /** The broker's issuer identifier; the origin of resource.url when omitted. */
  issuer: httpUrl().optional(),
  identity_provider: z.strictObject({
    issuer: httpUrl(),
    client_id: text().pipe(z.string().min(1)),
    client_secret: secret(),
    auth_method: z.enum(['client_secret_basic', 'client_secret_post']).default('client_secret_basic'),
    scopes: z.array(scopeToken()).default([...DEFAULTS.brokerScopes]),
    /** The ID token claim that names the user; it becomes the broker token's `sub`. */
    subject_claim: z.string().min(1).default('sub'),
    timeout: duration(DEFAULTS.jwksTimeout),
    /** How the consent page names where the user signs in next; the issuer's host when omitted. */
    display_name: text().pipe(z.string().min(1).max(80)).optional(),
  }),
  clients: z.array(preRegisteredClient).default([]),
  /** Enterprise-managed authorization: access tokens for ID-JAGs from these issuers, without a login here. */
  enterprise: z.strictObject({ trusted_issuers: z.array(trustedIssuer).min(1) }).optional(),
  registration: z
    .strictObject({
      /** RFC 7591 dynamic client registration. */
      dynamic: z.boolean().default(true),
      /** A client id that is an https URL names its own metadata document, fetched under broker.client_metadata. */
      client_id_metadata_documents: z.boolean().default(true),
      /** Dynamically registered clients kept at once; registration answers 503 beyond. */
      max_clients: count(DEFAULTS.maxDynamicClients, 1, 10_000_000),
    })
    .prefault({}),
  /** How client ID metadata documents are fetched. */
  client_metadata: z
    .strictObject({
      timeout: duration('5s'),
      max_bytes: count(5120, 256, 1024 * 1024),
      /** A document is cached as its Cache-Control says, never longer than this. */
      cache_max_ttl: duration('1h'),
      /** Private, loopback and link-local addresses are refused unless this is on. */
      allow_private_addresses: z.boolean().default(false),
      /** PEM file of extra certificate authorities to trust for these fetches (an internal CA). */
      extra_ca_file: text().optional(),
      /** http:// on a loopback host, for tests only. */
      insecure_allow_http_loopback: z.boolean().default(false),
    })
    .prefault({}),
  /** Requests per minute, per client IP and per client id, at the endpoints anyone can reach; 429 with Retry-After beyond. */
  rate_limits: z
    .strictObject({
      registration: z.strictObject({ per_ip: count(DEFAULTS.registrationsPerMinute, 1, 100_000) }).prefault({}),
      authorize: z
        .strictObject({ per_ip: count(DEFAULTS.authorizationsPerMinute, 1, 100_000), per_client: count(DEFAULTS.clientRequestsPerMinute, 1, 1_000_000) })
        .prefault({}),
      token: z
        .strictObject({ per_ip: count(DEFAULTS.tokenRequestsPerMinute, 1, 100_000), per_client: count(DEFAULTS.clientRequestsPerMinute, 1, 1_000_000) })
        .prefault({}),
    })
    .prefault({}),
  /** How long a user's approval of a client is remembered; the consent page is shown again after it. */
  consent: z
    .strictObject({
      remember: duration(DEFAULTS.brokerConsentRemember),
      /** The consent page's heading; "Allow access?" when omitted. */
      title: text().pipe(z.string().min(1).max(80)).optional(),
      /** A logo above the heading: an https URL, or a base64 data URL of a PNG, SVG, JPEG or WebP image. */
      logo_url: logoUrl().optional(),
    })
    .prefault({}),
  tokens: z
    .strictObject({
      access_ttl: duration(DEFAULTS.brokerAccessTtl),
      refresh_ttl: duration(DEFAULTS.brokerRefreshTtl),
      code_ttl: duration(DEFAULTS.brokerCodeTtl, 600_000),
      /** Time for a user to get through consent and the identity provider's login. */
      login_ttl: duration(DEFAULTS.brokerLoginTimeout),
      /** Longest life of an ID-JAG or a client assertion the token endpoint accepts; their ids are remembered that long. */
      max_assertion_lifetime: duration(DEFAULTS.brokerMaxAssertionLifetime, 3_600_000),
    })
    .prefault({}),
  /** Encrypts the identity provider's tokens kept per user (upstream.credential user_token): at least 32 characters. */
  encryption_key: secret().optional(),
  /** A private JWK (RS256, ES256 or EdDSA) from a file or Secret; generated once and kept in the store when omitted. */
  signing_key: secret().optional(),
  /**
   * Where the broker keeps its state: one SQLite file (one replica; it must sit on a writable, preferably
   * persistent, volume), or a Redis/Valkey server shared by every replica. `type` defaults to sqlite.
   */
  store: z.preprocess(
    (value) => (typeof value === 'object' && value !== null && !('type' in value) ? { ...value, type: 'sqlite' } : value),
    z
      .discriminatedUnion('type', [
        z.strictObject({ type: z.literal('sqlite'), path: text().pipe(z.string().min(1)).default(DEFAULTS.brokerStorePath) }),
        z.strictObject({
          type: z.literal('redis'),
          /** redis:// or rediss:// URL; it may carry a password, so it comes from env or a file. */
          url: secret(),
          /** Keys are `<key_prefix>:<kind>:<hash>`; replicas of one deployment share a prefix. */
          key_prefix: z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'letters, digits, _ . : - only').default('mcp-warden'),
        }),
      ])
      .default({ type: 'sqlite', path: DEFAULTS.brokerStorePath }),
  ),
});
