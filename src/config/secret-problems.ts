import { ConfigError, type ConfigProblem } from './errors.ts';
import type { Config } from './schema.ts';
import { openSecretSource } from './secret-source.ts';
import type { SecretRef } from './secret-ref.ts';

/** Keys whose secret is parsed as a document (a JWK) rather than sent in a header, so JSON whitespace is allowed. */
const DOCUMENT_SECRETS: ReadonlySet<string> = new Set(['private_key']);

/**
 * Every secret reference in a validated config that cannot be read now, by its YAML path. Reads the
 * environment and files only, never the network. Found by shape rather than by a list of keys, so a
 * secret added to the schema is covered without a change here.
 */
export function unresolvedSecrets(config: Config): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const { path, key, ref } of secretRefs(config, '', '')) {
    const source = openSecretSource(ref, DOCUMENT_SECRETS.has(key) ? 'document' : 'header');
    const value = source.current();
    source.close();
    if (!value.ok) problems.push({ path: yamlPath(path), message: value.problem });
  }
  return problems;
}

/** Throws a ConfigError, named by `source` (the config file), when a secret the config names cannot be read. */
export function requireSecrets(config: Config, source: string): void {
  const problems = unresolvedSecrets(config);
  if (problems.length > 0) throw new ConfigError(source, problems);
}

/** The schema gathers a stdio upstream's keys (written beside `command`) under `upstream.stdio`; the user sees the YAML's path. */
function yamlPath(configPath: string): string {
  return configPath.startsWith('upstream.stdio.') ? `upstream.${configPath.slice('upstream.stdio.'.length)}` : configPath;
}

function* secretRefs(value: unknown, path: string, key: string): Generator<{ path: string; key: string; ref: SecretRef }> {
  if (isSecretRef(value)) {
    yield { path, key, ref: value };
    return;
  }
  // A stdio child's environment value: `{ kind: 'secret', ref }`, named by its variable's path.
  if (isRecord(value) && value.kind === 'secret' && isSecretRef(value.ref)) {
    yield { path, key, ref: value.ref };
    return;
  }
  if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) yield* secretRefs(item, `${path}[${index}]`, key);
    return;
  }
  if (!isRecord(value)) return;
  for (const [name, item] of Object.entries(value)) yield* secretRefs(item, path ? `${path}.${name}` : name, name);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype;
}

function isSecretRef(value: unknown): value is SecretRef {
  if (!isRecord(value) || Object.keys(value).length !== 2) return false;
  return (value.kind === 'env' && typeof value.name === 'string') || (value.kind === 'file' && typeof value.path === 'string');
}
