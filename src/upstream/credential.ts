import type { Principal } from '../auth/principal.ts';
import type { CredentialConfig } from '../config/schema.ts';
import { openSecretSource, type SecretSource } from '../config/secret-source.ts';

export type CredentialHeaders = { ok: true; headers: Record<string, string> } | { ok: false; problem: string };

/** The credential the proxy presents to the upstream in place of the client's token. */
export interface UpstreamCredential {
  /** Lower-case names of the headers it sets: every inbound variant of them is removed first. */
  readonly headerNames: readonly string[];
  /** Static credentials answer at once; a per-user one may have to look up or refresh the user's token. */
  headers(principal?: Principal): CredentialHeaders | Promise<CredentialHeaders>;
  close(): void;
}

/** Per-user tokens, looked up by the principal's subject (the broker's user tokens). */
export interface UserTokenSource {
  readonly issuer: string;
  headersFor(subject: string): CredentialHeaders | Promise<CredentialHeaders>;
}

export function createUpstreamCredential(config: CredentialConfig, users?: UserTokenSource): UpstreamCredential {
  if (config.type === 'user_token') {
    return {
      headerNames: ['authorization'],
      headers: (principal) => {
        // Only a user the broker signed in has a provider token; any other principal gets none, never a fallback.
        if (!users || principal?.issuer !== users.issuer || !principal.subject) return { ok: false, problem: 'per-user upstream tokens exist only for users signed in through the broker' };
        return users.headersFor(principal.subject);
      },
      close: () => undefined,
    };
  }
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
