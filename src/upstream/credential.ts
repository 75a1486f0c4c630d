import type { CredentialConfig } from '../config/schema.ts';
import { openSecretSource, type SecretSource } from '../config/secret-source.ts';

export type CredentialHeaders = { ok: true; headers: Record<string, string> } | { ok: false; problem: string };

/** The credential the proxy presents to the upstream in place of the client's token. */
export interface UpstreamCredential {
  /** Lower-case names of the headers it sets: every inbound variant of them is removed first. */
  readonly headerNames: readonly string[];
  headers(): CredentialHeaders;
  close(): void;
}

export function createUpstreamCredential(config: CredentialConfig): UpstreamCredential {
  if (config.type === 'none') {
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
