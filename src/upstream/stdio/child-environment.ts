import type { Principal } from '../../auth/principal.ts';
import type { CredentialConfig } from '../../config/schema.ts';
import type { StdioSettings } from '../../config/upstream-schema.ts';
import { openSecretSource, type SecretSource } from '../../config/secret-source.ts';

export type ChildEnvironment =
  | { readonly ok: true; readonly env: Record<string, string> }
  /** `claim`: the token's claim cannot be passed (the request is refused); `secret`: a secret cannot be read (503). */
  | { readonly ok: false; readonly kind: 'claim' | 'secret'; readonly problem: string };

/** A claim becomes a variable only as a printable string: no control, format or line-separator character. */
const PRINTABLE = /^[^\p{Cc}\p{Cf}\p{Zl}\p{Zp}]{1,1024}$/u;

/**
 * The whole environment of a child, and nothing else: the configured variables, the credential, the
 * identity claims, and the allowlisted names copied from our own environment. Built here rather than
 * by a library, whose default would inherit more (the SDK's stdio transport adds SHELL, USER, TERM…).
 */
export class ChildEnvironments {
  readonly #settings: StdioSettings;
  readonly #secrets = new Map<string, SecretSource>();
  readonly #credential: { readonly name: string; readonly source: SecretSource } | undefined;
  /** A client_credentials token: the variable and the live token, read at each spawn. */
  readonly #token: { readonly name: string; readonly current: () => string | undefined } | undefined;

  constructor(settings: StdioSettings, credential: CredentialConfig, token: () => string | undefined = () => undefined) {
    this.#settings = settings;
    for (const [name, value] of Object.entries(settings.env)) {
      if (value.kind === 'secret') this.#secrets.set(name, openSecretSource(value.ref));
    }
    this.#credential = credential.type === 'env' ? { name: credential.name, source: openSecretSource(credential.value) } : undefined;
    this.#token = credential.type === 'client_credentials' && credential.env ? { name: credential.env, current: token } : undefined;
  }

  /** Secrets that cannot be read now, by config path: the process must not start without them. */
  missing(): Array<{ path: string; message: string }> {
    const problems: Array<{ path: string; message: string }> = [];
    for (const [name, source] of this.#secrets) {
      const value = source.current();
      if (!value.ok) problems.push({ path: `upstream.env.${name}`, message: value.problem });
    }
    const credential = this.#credential?.source.current();
    if (credential && !credential.ok) problems.push({ path: 'upstream.credential.value', message: credential.problem });
    return problems;
  }

  /** Read at each spawn, so that a rotated Secret reaches the next child without a restart. */
  for(principal: Principal): ChildEnvironment {
    const env: Record<string, string> = {};
    for (const name of this.#settings.env_passthrough) {
      const value = process.env[name];
      if (value !== undefined) env[name] = value;
    }
    for (const [name, value] of Object.entries(this.#settings.env)) {
      if (value.kind === 'literal') {
        env[name] = value.value;
        continue;
      }
      const secret = this.#secrets.get(name)!.current();
      if (!secret.ok) return { ok: false, kind: 'secret', problem: secret.problem };
      env[name] = secret.value;
    }
    for (const [name, claim] of Object.entries(this.#settings.identity_env)) {
      const value = principal.claims[claim];
      if (value === undefined) continue;
      if (typeof value !== 'string' || !PRINTABLE.test(value)) return { ok: false, kind: 'claim', problem: `claim ${claim} (for ${name}) is not a printable string` };
      env[name] = value;
    }
    if (this.#credential) {
      const secret = this.#credential.source.current();
      if (!secret.ok) return { ok: false, kind: 'secret', problem: secret.problem };
      env[this.#credential.name] = secret.value;
    }
    if (this.#token) {
      const token = this.#token.current();
      if (!token) return { ok: false, kind: 'secret', problem: 'no live upstream token (client_credentials) to give the child' };
      env[this.#token.name] = token;
    }
    return { ok: true, env };
  }

  close(): void {
    for (const source of this.#secrets.values()) source.close();
    this.#credential?.source.close();
  }
}
