import type { Principal } from '../auth/principal.ts';

const VISIBLE = /^[\x20-\x7e]{1,1024}$/;

/**
 * Builds the configured identity headers (header name → claim name) from a verified token. A claim
 * that is absent, not a scalar, or not printable ASCII is left out rather than mangled.
 */
export function createIdentityHeaders(mapping: Readonly<Record<string, string>>): {
  readonly headerNames: readonly string[];
  headers(principal: Principal): Record<string, string>;
} {
  const entries = Object.entries(mapping).map(([header, claim]) => [header.toLowerCase(), claim] as const);
  return {
    headerNames: entries.map(([header]) => header),
    headers(principal) {
      const headers: Record<string, string> = {};
      for (const [header, claim] of entries) {
        const value = principal.claims[claim];
        if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') continue;
        const text = String(value);
        if (VISIBLE.test(text)) headers[header] = text;
      }
      return headers;
    },
  };
}
