import { readFileSync } from 'node:fs';

const REFERENCE = /\$\{(env|file):([^}]*)\}/g;

export type SubstitutionResult = { ok: true; value: string } | { ok: false; problem: string };

/**
 * Replaces every `${env:NAME}` and `${file:/path}` in a non-secret setting. A reference that cannot be
 * resolved is a config problem, never an empty string: a silently empty issuer or URL fails open.
 */
export function substitute(text: string, env: NodeJS.ProcessEnv = process.env): SubstitutionResult {
  const problems: string[] = [];
  const value = text.replace(REFERENCE, (_whole, kind: string, target: string) => {
    if (kind === 'env') {
      const found = env[target];
      if (found === undefined) problems.push(`environment variable ${target} is not set`);
      return found ?? '';
    }
    try {
      return readFileSync(target, 'utf8').trim();
    } catch (error) {
      problems.push(`cannot read file ${target} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
      return '';
    }
  });
  return problems.length === 0 ? { ok: true, value } : { ok: false, problem: problems.join('; ') };
}
