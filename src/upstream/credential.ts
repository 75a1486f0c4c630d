import { isMachine, type Principal } from '../auth/principal.ts';
import type { CredentialConfig } from '../config/schema.ts';
import { openSecretSource, type SecretSource } from '../config/secret-source.ts';

/**
 * The headers our credential adds, or why there are none: the proxy cannot present one (503), or, with
 * `refused`, the authorization server said this user may not have one for the upstream (403).
 */
export type CredentialHeaders = { ok: true; headers: Record<string, string> } | { ok: false; problem: string; refused?: true };

/** The credential the proxy presents to the upstream in place of the client's token. */
export interface UpstreamCredential {
  /** Lower-case names of the headers it sets: every inbound variant of them is removed first. */
  readonly headerNames: readonly string[];
  /** Static credentials answer at once; a per-user one may have to look up, refresh or exchange a token (`token`: the verified inbound one). */
  headers(principal?: Principal, token?: string): CredentialHeaders | Promise<CredentialHeaders>;
  /** False until a credential fetched at start is at hand (readiness waits for it). */
  readonly ready?: boolean;
  /** Secrets it needs that cannot be read now, by config path. */
  missingSecrets?(): Array<{ path: string; message: string }>;
  /** Begins fetching what it needs in the background (a token of the proxy's own). */
  start?(): void;
  /** The live token of the proxy's own, for a stdio child's environment at spawn. */
  current?(): string | undefined;
  close(): void;
}

/** Per-user tokens, looked up by the principal's subject (the broker's user tokens). */
export interface UserTokenSource {
  readonly issuer: string;
  headersFor(subject: string): CredentialHeaders | Promise<CredentialHeaders>;
}

/** Whether a credential needs nothing but its config (no broker, no token requests): built and checked before anything starts. */
export function isStaticCredential(config: CredentialConfig): boolean {
  return config.type === 'none' || config.type === 'env' || config.type === 'header' || config.type === 'bearer';
}

/** Broker mode: each signed-in user's identity provider token. */
export function userTokenCredential(users: UserTokenSource | undefined): UpstreamCredential {
  return {
    headerNames: ['authorization'],
    headers: (principal) => {
      // Only a user the broker signed in has a provider token; any other principal gets none, never a fallback.
      if (!users || principal?.issuer !== users.issuer || !principal.subject) return { ok: false, problem: 'per-user upstream tokens exist only for users signed in through the broker' };
      // A machine's subject is its client id: a user who happens to have that id must not lend it their token.
      if (isMachine(principal)) return { ok: false, problem: 'a machine client has no identity provider token of its own' };
      return users.headersFor(principal.subject);
    },
    close: () => undefined,
  };
}

/** A credential that needs nothing but its config: none, an env variable for a stdio child (set at spawn), or a secret in a header. */
export function staticCredential(config: Extract<CredentialConfig, { type: 'none' | 'env' | 'header' | 'bearer' }>): UpstreamCredential {
  // A stdio child gets an env credential in its environment at spawn (stdio/child-environment.ts), never as a header.
  if (config.type === 'none' || config.type === 'env') {
    return { headerNames: [], headers: () => ({ ok: true, headers: {} }), close: () => undefined };
  }
  const name = config.type === 'bearer' ? 'authorization' : config.name.toLowerCase();
  const format = config.type === 'bearer' ? (value: string) => `Bearer ${value}` : (value: string) => value;
  const source: SecretSource = openSecretSource(config.value);
  return {
    headerNames: [name],
    headers: () => {
      const secret = source.current();
      return secret.ok ? { ok: true, headers: { [name]: format(secret.value) } } : secret;
    },
    close: () => source.close(),
  };
}
