import { readFileSync } from 'node:fs';
import { describeSecretRef, type SecretRef } from './secret-ref.ts';

const FILE_POLL_MS = 2000;

/** A secret's current value, or why there is none. Header-unsafe values count as none. */
export type SecretValue = { ok: true; value: string } | { ok: false; problem: string };

export interface SecretSource {
  current(): SecretValue;
  close(): void;
}

/**
 * Reads a secret from the environment once, or from a file that is re-read every two seconds: a
 * Kubernetes Secret mounted as a volume is updated in place (a symlink swap, which inotify on the old
 * target would miss), so rotation needs no restart.
 */
export function openSecretSource(ref: SecretRef, use: SecretUse = 'header'): SecretSource {
  if (ref.kind === 'env') {
    const value = checked(process.env[ref.name], ref, use);
    return { current: () => value, close: () => undefined };
  }
  const read = (): SecretValue => {
    try {
      return checked(readFileSync(ref.path, 'utf8').replace(/\r?\n$/, ''), ref, use);
    } catch (error) {
      return { ok: false, problem: `cannot read ${describeSecretRef(ref)} (${(error as NodeJS.ErrnoException).code ?? 'error'})` };
    }
  };
  let value = read();
  // Re-read rather than watch: a stat watcher's first baseline can land after a swap it then never
  // reports, and reading a few bytes every two seconds costs nothing.
  const timer = setInterval(() => (value = read()), FILE_POLL_MS);
  timer.unref();
  return { current: () => value, close: () => clearInterval(timer) };
}

/** Where a secret goes: into a header (no control characters at all), or parsed as a document such as a JWK (JSON whitespace allowed). */
export type SecretUse = 'header' | 'document';

function checked(value: string | undefined, ref: SecretRef, use: SecretUse): SecretValue {
  if (value === undefined || value === '') return { ok: false, problem: `${describeSecretRef(ref)} is empty or not set` };
  // A secret goes into a header; CR, LF or other controls there would be header injection.
  if ((use === 'header' ? /[\x00-\x1f\x7f]/ : /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/).test(value)) return { ok: false, problem: `${describeSecretRef(ref)} contains control characters` };
  return { ok: true, value };
}
