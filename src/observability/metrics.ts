import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { AUTH_FAILURE_REASONS, type AuthFailureReason } from '../auth/failure.ts';
import type { KeyFetchResult } from '../auth/key-set.ts';

/** How a request ended, from the client's point of view; a closed set. */
export type Outcome = 'allowed' | 'denied' | 'unavailable' | 'upstream_error' | 'metadata' | 'preflight';

const UNKNOWN_ISSUER = 'unknown';

/**
 * The proxy's Prometheus metrics on their own registry. Label values come only from closed sets or
 * from config (issuer URLs): nothing a client sends can mint a new series.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly #issuers: ReadonlySet<string>;
  readonly #requests: Counter<'outcome' | 'status_class'>;
  readonly #authFailures: Counter<'reason' | 'issuer'>;
  readonly #keyFetches: Counter<'issuer' | 'result'>;
  readonly #keyCount: Gauge<'issuer'>;
  readonly #openStreams: Gauge;

  constructor(issuers: readonly string[]) {
    this.#issuers = new Set(issuers);
    collectDefaultMetrics({ register: this.registry, prefix: 'mcp_warden_' });
    this.#requests = new Counter({
      name: 'mcp_warden_requests_total',
      help: 'Requests answered, by outcome and HTTP status class.',
      labelNames: ['outcome', 'status_class'],
      registers: [this.registry],
    });
    this.#authFailures = new Counter({
      name: 'mcp_warden_auth_failures_total',
      help: 'Requests refused by authentication or authorization, by reason and by configured issuer ("unknown" otherwise).',
      labelNames: ['reason', 'issuer'],
      registers: [this.registry],
    });
    this.#keyFetches = new Counter({
      name: 'mcp_warden_jwks_fetches_total',
      help: 'Fetches of an issuer signing key set, by result.',
      labelNames: ['issuer', 'result'],
      registers: [this.registry],
    });
    this.#keyCount = new Gauge({
      name: 'mcp_warden_jwks_keys',
      help: 'Usable keys in the last good key set of each issuer.',
      labelNames: ['issuer'],
      registers: [this.registry],
    });
    this.#openStreams = new Gauge({
      name: 'mcp_warden_open_streams',
      help: 'Event streams currently open through the proxy.',
      registers: [this.registry],
    });
    // Every reason exists from the start, so rate() and alerts work before the first failure.
    for (const reason of AUTH_FAILURE_REASONS) this.#authFailures.inc({ reason, issuer: UNKNOWN_ISSUER }, 0);
  }

  /** `status` is 0 when the client went away before any response began. */
  request(outcome: Outcome, status: number): void {
    this.#requests.inc({ outcome, status_class: status > 0 ? `${Math.floor(status / 100)}xx` : 'none' });
  }

  authFailure(reason: AuthFailureReason, issuer: string | undefined): void {
    this.#authFailures.inc({ reason, issuer: issuer && this.#issuers.has(issuer) ? issuer : UNKNOWN_ISSUER });
  }

  keyFetch(issuer: string, result: KeyFetchResult, keyCount: number): void {
    this.#keyFetches.inc({ issuer, result });
    if (result === 'ok') this.#keyCount.set({ issuer }, keyCount);
  }

  streamOpened(): void {
    this.#openStreams.inc();
  }

  streamClosed(): void {
    this.#openStreams.dec();
  }
}
