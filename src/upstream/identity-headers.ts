import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Principal } from '../auth/principal.ts';
import type { Logger } from '../observability/logger.ts';
import { headerValue, type HeaderValueProblem } from './header-value.ts';

/** How many (principal, header) pairs are remembered as already logged; the oldest is forgotten first. */
export const LOGGED_PRINCIPALS_MAX = 10_000;

/** Why a claim was not sent: its value's problem, or a claim that is an array or an object. */
export type UnsentClaimProblem = HeaderValueProblem | 'not_scalar';

export interface IdentityHeaders {
  /** Lower-cased, as the client's copies are removed and ours injected. */
  readonly headerNames: readonly string[];
  headers(principal: Principal): Record<string, string>;
}

/**
 * Builds the configured identity headers (header name → claim name) from a verified token. Strings,
 * numbers and booleans are sent; a value that is not printable ASCII is encoded as MCP 2026-07-28 encodes
 * header values, and one that cannot be sent safely is left out (see {@link headerValue}). An absent or
 * null claim is left out silently; any other claim left out is logged once per principal and header
 * (never its value), so that a user who reaches the upstream without their subject can be found.
 */
export function createIdentityHeaders(mapping: Readonly<Record<string, string>>, logger: Logger): IdentityHeaders {
  const entries = Object.entries(mapping).map(([header, claim]) => [header.toLowerCase(), claim] as const);
  const logged = new LRUCache<string, true>({ max: LOGGED_PRINCIPALS_MAX });
  const notSent = (principal: Principal, header: string, claim: string, problem: UnsentClaimProblem) => {
    const key = createHash('sha256').update(JSON.stringify([principal.issuer, principal.subject, principal.clientId, header])).digest('base64url');
    if (logged.has(key)) return;
    logged.set(key, true);
    // The subject is named only when it could itself be sent: it may be the claim at fault.
    const sub = principal.subject !== undefined && headerValue(principal.subject).ok ? principal.subject : undefined;
    logger.warn({ iss: principal.issuer, sub, client_id: principal.clientId, header, claim, problem }, 'identity claim not sent');
  };
  return {
    headerNames: entries.map(([header]) => header),
    headers(principal) {
      const headers: Record<string, string> = {};
      for (const [header, claim] of entries) {
        const value = principal.claims[claim];
        if (value === undefined || value === null) continue;
        if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
          notSent(principal, header, claim, 'not_scalar');
          continue;
        }
        const sent = headerValue(String(value));
        if (sent.ok) headers[header] = sent.value;
        else notSent(principal, header, claim, sent.problem);
      }
      return headers;
    },
  };
}
