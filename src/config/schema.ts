import { z } from 'zod';
import { parseDuration } from './duration.ts';
import { parseSecretRef, type SecretRef } from './secret-ref.ts';
import { substitute } from './substitute.ts';

/** Defaults, named beside the options they belong to. */
export const DEFAULTS = {
  listenHost: '127.0.0.1',
  listenPort: 8080,
  adminHost: '127.0.0.1',
  adminPort: 9464,
  algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'],
  clockTolerance: '30s',
  maxTokenBytes: 8192,
  jwksTimeout: '5s',
  jwksCooldown: '30s',
  jwksRefresh: '10m',
  jwksMaxStale: '1h',
  connectTimeout: '5s',
  responseTimeout: '60s',
  shutdownGrace: '10s',
  introspectionTimeout: '5s',
  cacheMaxEntries: 10_000,
  cacheMaxTtl: '5m',
  cacheNegativeTtl: '10s',
  maxBodyBytes: 4 * 1024 * 1024,
  sessionMaxEntries: 10_000,
  sessionIdleTtl: '24h',
  maxHeaderBytes: 16 * 1024,
  maxHeaders: 100,
  headersTimeout: '10s',
  requestTimeout: '30s',
  idleTimeout: '5s',
  maxConnections: 1024,
  maxConnectionsPerIp: 512,
  maxStreams: 1000,
  maxStreamsPerPrincipal: 16,
  introspectionsPerClient: 50,
  maxConcurrentIntrospections: 64,
  brokerStorePath: 'mcp-warden-broker.db',
  brokerScopes: ['openid'],
  brokerAccessTtl: '1h',
  brokerRefreshTtl: '30d',
  brokerCodeTtl: '60s',
  brokerConsentRemember: '30d',
  brokerLoginTimeout: '10m',
  registrationsPerMinute: 10,
  authorizationsPerMinute: 60,
  tokenRequestsPerMinute: 120,
  clientRequestsPerMinute: 600,
  maxDynamicClients: 10_000,
  envPassthrough: ['PATH', 'HOME', 'LANG', 'TZ'],
  maxProcesses: 64,
  maxProcessesPerPrincipal: 4,
  processIdleTimeout: '15m',
  startupTimeout: '10s',
  killGrace: '5s',
  maxMessageBytes: 4 * 1024 * 1024,
} as const;

/** Asymmetric JWS algorithms only: symmetric ones would need a shared secret, and `none` is never a choice. */
export const ASYMMETRIC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;

const MAX_CLOCK_TOLERANCE_MS = 60_000;

/** A string setting in which `${env:NAME}` and `${file:/path}` are replaced. */
const text = () =>
  z.string().transform((value, ctx) => {
    const result = substitute(value);
    if (!result.ok) {
      ctx.addIssue({ code: 'custom', message: result.problem });
      return z.NEVER;
    }
    return result.value;
  });

const httpUrl = () =>
  text().pipe(
    z.string().superRefine((value, ctx) => {
      let url: URL;
      try {
        url = new URL(value);
      } catch {
        ctx.addIssue({ code: 'custom', message: `expected an absolute http(s) URL, got "${value}"` });
        return;
      }
      if (url.protocol !== 'https:' && url.protocol !== 'http:') {
        ctx.addIssue({ code: 'custom', message: `expected an http(s) URL, got scheme "${url.protocol}"` });
      }
      if (url.hash !== '' || value.includes('#')) ctx.addIssue({ code: 'custom', message: 'a URL here must not have a fragment' });
      if (url.username !== '' || url.password !== '') ctx.addIssue({ code: 'custom', message: 'credentials do not belong in a URL' });
    }),
  );

const duration = (fallback: string, max?: number) =>
  z
    .string()
    .default(fallback)
    .transform((value, ctx) => {
      const ms = parseDuration(value);
      if (ms === undefined) {
        ctx.addIssue({ code: 'custom', message: `expected a duration such as 250ms, 30s, 5m or 1h, got "${value}"` });
        return z.NEVER;
      }
      if (max !== undefined && ms > max) {
        ctx.addIssue({ code: 'custom', message: `must be at most ${max / 1000}s, got "${value}"` });
        return z.NEVER;
      }
      return ms;
    });

const port = (fallback: number) =>
  z
    .union([z.number(), text()])
    .default(fallback)
    .transform((value, ctx) => {
      const n = typeof value === 'number' ? value : Number(value);
      if (!Number.isInteger(n) || n < 0 || n > 65535) {
        ctx.addIssue({ code: 'custom', message: `expected a port number from 0 to 65535, got ${JSON.stringify(value)}` });
        return z.NEVER;
      }
      return n;
    });

const secret = () =>
  z.string().transform((value, ctx) => {
    const ref = parseSecretRef(value);
    if (!ref) {
      ctx.addIssue({
        code: 'custom',
        message: 'secrets are never written in the config: use ${env:NAME} or ${file:/path/to/secret}',
      });
      return z.NEVER;
    }
    return ref;
  });

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const headerName = () => z.string().regex(HEADER_NAME, 'expected an HTTP header name');
const scopeToken = () => z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'expected a scope token (RFC 6749 §3.3)');

const listen = z
  .strictObject({
    host: text().default(DEFAULTS.listenHost),
    port: port(DEFAULTS.listenPort),
    /** Host header values (host or host:port) accepted; empty accepts any. DNS-rebinding protection. */
    allowed_hosts: z.array(text().pipe(z.string().min(1))).default([]),
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

/** An environment variable name as POSIX shells accept it: nothing a child could read as something else. */
const envName = () => z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'expected an environment variable name (letters, digits, _; not starting with a digit)');

const credential = z
  .discriminatedUnion('type', [
    z.strictObject({ type: z.literal('none') }),
    z.strictObject({ type: z.literal('header'), name: headerName(), value: secret() }),
    z.strictObject({ type: z.literal('bearer'), value: secret() }),
    /** Broker mode: the identity provider's access token for the signed-in user, as `Authorization: Bearer`. */
    z.strictObject({ type: z.literal('user_token'), refresh_before: duration('60s') }),
    /** stdio upstreams: the secret as an environment variable of each child, set at spawn. */
    z.strictObject({ type: z.literal('env'), name: envName(), value: secret() }),
  ])
  .default({ type: 'none' });

/** A value for the child's environment: a literal, or a whole `${env:NAME}` / `${file:/path}` read at each spawn. */
const envValue = () => z.string().transform((value): EnvValue => {
  const ref = parseSecretRef(value);
  return ref ? { kind: 'secret', ref } : { kind: 'literal', value };
});

/** A duration with no schema default, so that a key given where it does not belong can be seen. */
const optionalDuration = () =>
  z
    .string()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined) return undefined;
      const ms = parseDuration(value);
      if (ms === undefined) ctx.addIssue({ code: 'custom', message: `expected a duration such as 250ms, 30s, 5m or 1h, got "${value}"` });
      return ms;
    });

/** Keys only a stdio upstream (`command`) reads: without schema defaults, so that one given beside `url` is refused. */
const stdioKeys = {
  /** `[program, arg, ...]`, run without a shell: one child per MCP session. */
  command: z.array(z.string().min(1)).min(1).optional(),
  cwd: text().pipe(z.string().min(1)).optional(),
  /** The child's own variables; values may be secret references, read at each spawn. */
  env: z.record(envName(), envValue()).optional(),
  /** The only names copied from mcp-warden's own environment into the child's. */
  env_passthrough: z.array(envName()).optional(),
  /** Variable → claim, set at spawn from the principal that opened the session. */
  identity_env: z.record(envName(), z.string().min(1)).optional(),
  max_processes: z.number().int().min(1).max(100_000).optional(),
  max_processes_per_principal: z.number().int().min(1).max(100_000).optional(),
  idle_timeout: optionalDuration(),
  startup_timeout: optionalDuration(),
  kill_grace: optionalDuration(),
  /** Longest JSON-RPC line accepted from a child's stdout; longer lines are logged and dropped. */
  max_message_bytes: z.number().int().min(1024).max(256 * 1024 * 1024).optional(),
};

const upstream = z
  .strictObject({
    /** Exactly one of `url` (an HTTP MCP server) and `command` (a stdio one). */
    url: httpUrl().optional(),
    ...stdioKeys,
    credential,
    identity_headers: z.record(headerName(), z.string().min(1)).default({}),
    connect_timeout: duration(DEFAULTS.connectTimeout),
    response_timeout: duration(DEFAULTS.responseTimeout),
    /** Response headers never passed to clients (e.g. set-cookie); the injected headers' names always are dropped. */
    strip_response_headers: z.array(headerName()).default([]),
  })
  // Editors see the same rule the transform below enforces.
  .meta({ oneOf: [{ required: ['url'] }, { required: ['command'] }] })
  .transform((raw, ctx) => {
    const { url, command, cwd, env, env_passthrough, identity_env, max_processes, max_processes_per_principal, idle_timeout, startup_timeout, kill_grace, max_message_bytes, ...common } = raw;
    if ((url === undefined) === (command === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'give exactly one of url (an HTTP MCP server) and command (a stdio MCP server)' });
    }
    if (url !== undefined) {
      for (const key of Object.keys(stdioKeys)) {
        if (key !== 'command' && raw[key as keyof typeof stdioKeys] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: 'only for a stdio upstream (command), not with url' });
      }
    }
    const stdio: StdioSettings | undefined = command && {
      command,
      cwd,
      env: env ?? {},
      env_passthrough: env_passthrough ?? [...DEFAULTS.envPassthrough],
      identity_env: identity_env ?? {},
      max_processes: max_processes ?? DEFAULTS.maxProcesses,
      max_processes_per_principal: max_processes_per_principal ?? DEFAULTS.maxProcessesPerPrincipal,
      idle_timeout: idle_timeout ?? parseDuration(DEFAULTS.processIdleTimeout)!,
      startup_timeout: startup_timeout ?? parseDuration(DEFAULTS.startupTimeout)!,
      kill_grace: kill_grace ?? parseDuration(DEFAULTS.killGrace)!,
      max_message_bytes: max_message_bytes ?? DEFAULTS.maxMessageBytes,
    };
    return { ...common, url, stdio };
  });

/** What a stdio upstream runs with, every default filled in. */
export interface StdioSettings {
  readonly command: readonly string[];
  readonly cwd: string | undefined;
  readonly env: Readonly<Record<string, EnvValue>>;
  readonly env_passthrough: readonly string[];
  readonly identity_env: Readonly<Record<string, string>>;
  readonly max_processes: number;
  readonly max_processes_per_principal: number;
  /** Milliseconds without a client message before the child is ended. */
  readonly idle_timeout: number;
  readonly startup_timeout: number;
  readonly kill_grace: number;
  readonly max_message_bytes: number;
}

export type EnvValue = { readonly kind: 'literal'; readonly value: string } | { readonly kind: 'secret'; readonly ref: SecretRef };

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

const count = (fallback: number, min: number, max: number) => z.number().int().min(min).max(max).default(fallback);

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
  })
  .refine((bounds) => bounds.request_timeout > bounds.headers_timeout, { message: 'request_timeout must be longer than headers_timeout', path: ['request_timeout'] })
  .prefault({});

const preRegisteredClient = z.strictObject({
  client_id: text().pipe(z.string().min(1).max(256)),
  client_name: text().optional(),
  redirect_uris: z.array(httpUrl()).min(1, 'a client needs at least one redirect URI'),
  /** A confidential client authenticates at the token endpoint; without a secret the client is public (PKCE only). */
  client_secret: secret().optional(),
});

/** Broker mode: mcp-warden is the authorization server MCP clients see, and logs users in at the identity provider. */
const broker = z.strictObject({
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
  }),
  clients: z.array(preRegisteredClient).default([]),
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
  consent: z.strictObject({ remember: duration(DEFAULTS.brokerConsentRemember) }).prefault({}),
  tokens: z
    .strictObject({
      access_ttl: duration(DEFAULTS.brokerAccessTtl),
      refresh_ttl: duration(DEFAULTS.brokerRefreshTtl),
      code_ttl: duration(DEFAULTS.brokerCodeTtl, 600_000),
      /** Time for a user to get through consent and the identity provider's login. */
      login_ttl: duration(DEFAULTS.brokerLoginTimeout),
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
  sessions,
  logging,
  lifecycle,
  limits,
  broker: broker.optional(),
  /** Allows plain http:// URLs for non-loopback hosts (resource, issuers, JWKS). Never in production. */
  insecure_allow_http: z.boolean().default(false),
});

export type Config = z.output<typeof configSchema>;
export type AuthorizationServerConfig = Config['authorization_servers'][number];
export type BrokerConfig = NonNullable<Config['broker']>;
export type CredentialConfig = Config['upstream']['credential'];
