import { z } from 'zod';
import { parseDuration } from './duration.ts';
import { parseSecretRef } from './secret-ref.ts';
import { substitute } from './substitute.ts';

// The kinds of value the config is made of, each checked and converted once, with the message a user sees.

/** A string setting in which `${env:NAME}` and `${file:/path}` are replaced. */
export const text = () =>
  z.string().transform((value, ctx) => {
    const result = substitute(value);
    if (!result.ok) {
      ctx.addIssue({ code: 'custom', message: result.problem });
      return z.NEVER;
    }
    return result.value;
  });

export const httpUrl = () =>
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

export const duration = (fallback: string, max?: number) =>
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

export const port = (fallback: number) =>
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

export const secret = () =>
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
export const headerName = () => z.string().regex(HEADER_NAME, 'expected an HTTP header name');
export const scopeToken = () => z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'expected a scope token (RFC 6749 §3.3)');

/** A duration with no schema default, so that a key given where it does not belong can be seen. */
export const optionalDuration = () =>
  z
    .string()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined) return undefined;
      const ms = parseDuration(value);
      if (ms === undefined) ctx.addIssue({ code: 'custom', message: `expected a duration such as 250ms, 30s, 5m or 1h, got "${value}"` });
      return ms;
    });

/** An environment variable name as POSIX shells accept it: nothing a child could read as something else. */
export const envName = () => z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'expected an environment variable name (letters, digits, _; not starting with a digit)');

export const count = (fallback: number, min: number, max: number) => z.number().int().min(min).max(max).default(fallback);
