import { z } from 'zod';
import { broker } from './broker-schema.ts';
import { DEFAULTS } from './defaults.ts';
import { count, duration, headerName, httpUrl, port, scopeToken, secret, text } from './fields.ts';
import { limitStore, requestLimits, tracing } from './operations-schema.ts';
import { upstream } from './upstream-schema.ts';

/** Asymmetric JWS algorithms only: symmetric ones would need a shared secret, and `none` is never a choice. */
export const ASYMMETRIC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;

const MAX_CLOCK_TOLERANCE_MS = 60_000;

const listen = z
  .strictObject({
    host: text().default(DEFAULTS.listenHost),
    port: port(DEFAULTS.listenPort),
    /** Host header values (host or host:port) accepted; empty accepts any. DNS-rebinding protection. */
    allowed_hosts: z.array(text().pipe(z.string().min(1))).default([]),
    /**
     * Serve HTTPS on this port, for running without an ingress. PEM files, both required; re-read when
     * they change (a mounted cert-manager Secret), so new connections get a rotated certificate without a
     * restart. Absent: plain HTTP, with TLS ended in front of the proxy.
     */
    tls: z
      .strictObject({
        /** The certificate, leaf first, then any intermediates. */
        cert_file: text().pipe(z.string().min(1)),
        /** Its private key, unencrypted. */
        key_file: text().pipe(z.string().min(1)),
      })
      .optional(),
  })
  .prefault({});

const admin = z
  .strictObject({
    host: text().default(DEFAULTS.adminHost),
    port: port(DEFAULTS.adminPort),
  })
  .prefault({});

const resource = z.strictObject({
  url: httpUrl().refine((value) => !value.includes('?'), 'the resource URL must not have a query'),
  name: text().optional(),
  documentation: httpUrl().optional(),
  scopes_supported: z
    .array(scopeToken().refine((scope) => scope !== 'offline_access', 'offline_access is not a resource scope (MCP 2026-07-28 §10)'))
    .default([]),
  /** What each scope lets a client do, in a few words: the broker's consent page shows them. Keys are in scopes_supported. */
  scope_descriptions: z.record(scopeToken(), text().pipe(z.string().min(1).max(200))).optional(),
  root_metadata: z.boolean().default(true),
});

const introspection = z.strictObject({
  /** Discovered from the issuer's metadata (`introspection_endpoint`) when omitted. */
  endpoint: httpUrl().optional(),
  client_id: text().pipe(z.string().min(1, 'a client id is required: RFC 7662 endpoints authenticate their callers')),
  client_secret: secret(),
  auth_method: z.enum(['client_secret_basic', 'client_secret_post']).default('client_secret_basic'),
  timeout: duration(DEFAULTS.introspectionTimeout),
});

const authorizationServer = z.strictObject({
  issuer: httpUrl(),
  /** Verify JWT access tokens from this issuer locally against its JWKS. */
  verify_jwt: z.boolean().default(true),
  jwks_uri: httpUrl().optional(),
  /** RFC 7662: how opaque tokens (and JWTs when verify_jwt is off) are checked. */
  introspection: introspection.optional(),
  algorithms: z
    .array(z.enum(ASYMMETRIC_ALGORITHMS, { message: `expected one of ${ASYMMETRIC_ALGORITHMS.join(', ')}` }))
    .min(1)
    .default([...DEFAULTS.algorithms]),
  /** RFC 9068 explicit typing; switch off only for identity providers that omit `typ: at+jwt`. */
  require_at_jwt_typ: z.boolean().default(true),
  /**
   * The JWT claim that holds the granted scopes: RFC 9068 `scope` (one space-delimited string), or `scp`
   * for identity providers that use it (Entra ID: a string; Okta: an array). Never both: a second
   * source of scopes is an explicit choice (SECURITY-CASES SEC-B17).
   */
  scope_claim: z.enum(['scope', 'scp']).default('scope'),
});

const tokens = z
  .strictObject({
    audiences: z.array(text()).default([]),
    clock_tolerance: duration(DEFAULTS.clockTolerance, MAX_CLOCK_TOLERANCE_MS),
    required_scopes: z.array(scopeToken()).default([]),
    max_token_bytes: z.number().int().min(256).max(65536).default(DEFAULTS.maxTokenBytes),
    jwks: z
      .strictObject({
        timeout: duration(DEFAULTS.jwksTimeout),
        cooldown: duration(DEFAULTS.jwksCooldown),
        refresh: duration(DEFAULTS.jwksRefresh),
        /** Keys not refreshed successfully for this long are no longer trusted: 503 and not ready. */
        max_stale: duration(DEFAULTS.jwksMaxStale),
      })
      .refine((jwks) => jwks.max_stale > jwks.refresh, { message: 'max_stale must be longer than refresh', path: ['max_stale'] })
      .prefault({}),
    /** RFC 9449 sender-constrained tokens: `Authorization: DPoP` with a proof of the key the token is bound to. */
    dpop: z
      .strictObject({
        /** off: DPoP-bound tokens are refused; allowed: both kinds; required: bearer tokens are refused. */
        mode: z.enum(['off', 'allowed', 'required']).default('allowed'),
        /** How old a proof's `iat` may be (clock tolerance added); also how long its `jti` is remembered. */
        max_age: duration(DEFAULTS.dpopMaxAge, 5 * 60 * 1000),
        /** Ask for a server nonce in every proof (`use_dpop_nonce`, `DPoP-Nonce`). */
        nonce: z.boolean().default(false),
        /** Proof signing algorithms accepted (asymmetric only). */
        algorithms: z
          .array(z.enum(ASYMMETRIC_ALGORITHMS, { message: `expected one of ${ASYMMETRIC_ALGORITHMS.join(', ')}` }))
          .min(1)
          .default([...DEFAULTS.algorithms]),
        /** Proof ids remembered against replay, per issuer and key, at most. */
        max_replay_entries: z.number().int().min(1000).max(10_000_000).default(DEFAULTS.dpopReplayEntries),
      })
      .prefault({}),
    /** Introspection results. Revocation at the authorization server takes effect within max_ttl. */
    cache: z
      .strictObject({
        max_entries: z.number().int().min(1).max(10_000_000).default(DEFAULTS.cacheMaxEntries),
        max_ttl: duration(DEFAULTS.cacheMaxTtl),
        negative_ttl: duration(DEFAULTS.cacheNegativeTtl),
      })
      .prefault({}),
  })
  .prefault({});

const cors = z.strictObject({ allowed_origins: z.array(text()).default([]) }).prefault({});

const rule = z.strictObject({
  match: z
    .strictObject({
      /** JSON-RPC method, a glob (`*` any run of characters, `?` one). */
      method: z.string().min(1),
      /** For tools/call: the tool name (glob). */
      tool: z.string().min(1).optional(),
      /** For prompts/get: the prompt name (glob). */
      prompt: z.string().min(1).optional(),
      /** For resources/read: the resource URI (glob). */
      uri: z.string().min(1).optional(),
      /** Only tokens of machines (`sub` equals `client_id`: client credentials) or only of users. */
      principal: z.enum(['machine', 'user']).optional(),
    }),
  scopes: z.array(scopeToken()).min(1),
});

const policy = z
  .strictObject({
    /** A scope implies others (2026-07-28 §11.1.2), transitively: `{ "mcp:admin": [mcp:write], "mcp:write": [mcp:read] }`. */
    scope_hierarchy: z.record(scopeToken(), z.array(scopeToken())).default({}),
    /** First match wins; `tokens.required_scopes` applies to every request besides. */
    rules: z.array(rule).default([]),
    /** The `scope` of a 403: the token's scopes plus the needed ones, or only the needed ones. */
    challenge_scope: z.enum(['granted_and_required', 'required']).default('granted_and_required'),
    /** Largest JSON-RPC body read for the rules; larger ones get 413. */
    max_body_bytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(DEFAULTS.maxBodyBytes),
    /**
     * Only these are listed and callable (globs); a kind left out is not limited. Anything else is hidden
     * from lists and answered as unknown at call time.
     */
    expose: z
      .strictObject({
        tools: z.array(z.string().min(1)).optional(),
        prompts: z.array(z.string().min(1)).optional(),
        /** URIs of resources; a resource template is matched by its `uriTemplate` as written. */
        resources: z.array(z.string().min(1)).optional(),
      })
      .default({}),
    /** Largest list response (or SSE event) read to be filtered, and tool call answer read for the audit line. */
    max_response_bytes: z.number().int().min(1024).max(256 * 1024 * 1024).default(DEFAULTS.maxResponseBytes),
  })
  .prefault({});

const audit = z
  .strictObject({
    /** One `tool call` line per tools/call, prompts/get and resources/read: who, what, the decision and the upstream's outcome. */
    tool_calls: z.boolean().default(true),
  })
  .prefault({});

const sessions = z
  .strictObject({
    /** Refuse a session id presented with another principal's token (the upstream cannot tell). */
    bind: z.boolean().default(true),
    max_entries: z.number().int().min(1).max(10_000_000).default(DEFAULTS.sessionMaxEntries),
    idle_ttl: duration(DEFAULTS.sessionIdleTtl),
  })
  .prefault({});

const logging = z
  .strictObject({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** Human-readable lines for development; JSON (the default) for anything that collects logs. */
    pretty: z.boolean().default(false),
  })
  .prefault({});

/** Bounds on what one client, or all of them, can make the proxy hold. */
const limits = z
  .strictObject({
    /** All request headers together; larger requests get 431 before any auth work. */
    max_header_bytes: count(DEFAULTS.maxHeaderBytes, 1024, 64 * 1024),
    /** Header lines per request; more get 431. */
    max_headers: count(DEFAULTS.maxHeaders, 16, 1000),
    /** Time for a client to send all its headers (slowloris). */
    headers_timeout: duration(DEFAULTS.headersTimeout),
    /** Time for a client to send its whole request, body included; responses and streams are not bounded by it. */
    request_timeout: duration(DEFAULTS.requestTimeout),
    /** A keep-alive connection with no request in progress is closed after this. */
    idle_timeout: duration(DEFAULTS.idleTimeout),
    max_connections: count(DEFAULTS.maxConnections, 1, 1_000_000),
    max_connections_per_ip: count(DEFAULTS.maxConnectionsPerIp, 1, 1_000_000),
    /** Open GET event streams, in all and per principal (issuer + subject): 503 and 429 beyond. */
    max_streams: count(DEFAULTS.maxStreams, 1, 1_000_000),
    max_streams_per_principal: count(DEFAULTS.maxStreamsPerPrincipal, 1, 10_000),
    /** Introspection calls (cache misses) a client IP may cause per second, bursts of twice that; 429 beyond. */
    introspections_per_client: count(DEFAULTS.introspectionsPerClient, 1, 100_000),
    /** Introspection calls in flight at once; 503 beyond. */
    max_concurrent_introspections: count(DEFAULTS.maxConcurrentIntrospections, 1, 10_000),
    /** Request rate limits on the resource path (token buckets): 429 with Retry-After beyond. */
    requests: requestLimits,
    store: limitStore,
    /** When the bucket store cannot answer: let the request through (logged and counted), or refuse it (503). */
    on_store_error: z.enum(['allow', 'deny']).default('allow'),
  })
  .refine((bounds) => bounds.request_timeout > bounds.headers_timeout, { message: 'request_timeout must be longer than headers_timeout', path: ['request_timeout'] })
  .prefault({});

const lifecycle = z.strictObject({ shutdown_grace: duration(DEFAULTS.shutdownGrace) }).prefault({});

export const configSchema = z.strictObject({
  listen,
  admin,
  resource,
  /** Required unless the broker issues the tokens. */
  authorization_servers: z.array(authorizationServer).default([]),
  tokens,
  upstream,
  cors,
  policy,
  audit,
  sessions,
  logging,
  lifecycle,
  limits,
  tracing,
  broker: broker.optional(),
  /** Allows plain http:// URLs for non-loopback hosts (resource, issuers, JWKS). Never in production. */
  insecure_allow_http: z.boolean().default(false),
  /**
   * For clients of the 2025-03-26 authorization revision, which never read the protected resource
   * metadata: the one authorization server's metadata is served at this origin's
   * `/.well-known/oauth-authorization-server`, and `/authorize`, `/token` and `/register` redirect to its
   * endpoints. Needs exactly one authorization server; not with the broker, which is at the origin itself.
   */
  legacy_clients: z.boolean().default(false),
});

export type Config = z.output<typeof configSchema>;
export type AuthorizationServerConfig = Config['authorization_servers'][number];
export type BrokerConfig = NonNullable<Config['broker']>;
export type CredentialConfig = Config['upstream']['credential'];
