import { z } from 'zod';
import { DEFAULTS } from './defaults.ts';
import { parseDuration } from './duration.ts';
import { duration, envName, headerName, httpUrl, optionalDuration, scopeToken, secret, text } from './fields.ts';
import { parseSecretRef, type SecretRef } from './secret-ref.ts';

/**
 * How mcp-warden gets a token of its own at an authorization server's token endpoint: where it is (the
 * issuer's metadata names it, or it is given), and how the client authenticates: a secret, or a private
 * JWK for RFC 7523 client assertions.
 */
const tokenClient = {
  issuer: httpUrl().optional(),
  token_endpoint: httpUrl().optional(),
  client_id: text().pipe(z.string().min(1)),
  client_secret: secret().optional(),
  /** A private JWK (a mounted file), for auth_method private_key_jwt. */
  private_key: secret().optional(),
  auth_method: z.enum(['client_secret_basic', 'client_secret_post', 'private_key_jwt']).default('client_secret_basic'),
  scope: z.array(scopeToken()).default([]),
  /** RFC 8707 resource indicator of the upstream. */
  resource: httpUrl().optional(),
  audience: text().pipe(z.string().min(1)).optional(),
  /** Where the token goes: `Authorization: Bearer` by default; another header gets the bare token. */
  header: headerName().default('Authorization'),
  timeout: duration('5s'),
};

const credential = z
  .discriminatedUnion('type', [
    z.strictObject({ type: z.literal('none') }),
    z.strictObject({ type: z.literal('header'), name: headerName(), value: secret() }),
    z.strictObject({ type: z.literal('bearer'), value: secret() }),
    /** Broker mode: the identity provider's access token for the signed-in user, as `Authorization: Bearer`. */
    z.strictObject({ type: z.literal('user_token'), refresh_before: duration('60s') }),
    /** stdio upstreams: the secret as an environment variable of each child, set at spawn. */
    z.strictObject({ type: z.literal('env'), name: envName(), value: secret() }),
    /** One token for the proxy itself (client credentials grant), renewed ahead of its expiry. */
    z.strictObject({
      type: z.literal('client_credentials'),
      ...tokenClient,
      refresh_before: duration('60s'),
      /** stdio upstreams: the variable of each child that gets the token current at its spawn. */
      env: envName().optional(),
    }),
    /** The verified inbound token exchanged for one minted for the upstream (RFC 8693, or Entra ID on-behalf-of). */
    z.strictObject({
      type: z.literal('token_exchange'),
      ...tokenClient,
      profile: z.enum(['rfc8693', 'entra_obo']).default('rfc8693'),
      requested_token_type: z.string().min(1).default('urn:ietf:params:oauth:token-type:access_token'),
      /** Exchanged tokens kept, one per inbound token (keyed by its SHA-256). */
      cache_entries: z.number().int().min(1).max(1_000_000).default(10_000),
    }),
  ])
  .default({ type: 'none' });

/** A value for the child's environment: a literal, or a whole `${env:NAME}` / `${file:/path}` read at each spawn. */
const envValue = () => z.string().transform((value): EnvValue => {
  const ref = parseSecretRef(value);
  return ref ? { kind: 'secret', ref } : { kind: 'literal', value };
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

export const upstream = z
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
