import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { AUTH_FAILURE_REASONS, type AuthFailureReason } from '../auth/failure.ts';
import type { IntrospectionResult } from '../auth/introspection.ts';
import type { CacheLookup } from '../auth/introspection-cache.ts';
import type { KeyFetchResult } from '../auth/key-set.ts';
import type { ConnectionDrop } from '../proxy/connection-limits.ts';
import { LabelChildren } from './label-children.ts';

/** How a request ended, from the client's point of view; a closed set. */
export type Outcome = 'allowed' | 'denied' | 'unavailable' | 'upstream_error' | 'metadata' | 'preflight' | 'broker';

const UNKNOWN_ISSUER = 'unknown';

/** The status_class label of each hundred, made once rather than per request. */
const STATUS_CLASSES = Array.from({ length: 10 }, (_, hundred) => `${hundred}xx`);

function statusClass(status: number): string {
  return STATUS_CLASSES[Math.floor(status / 100)] ?? `${Math.floor(status / 100)}xx`;
}

/** The methods MCP defines; anything else a client sends is counted as "other". */
const MCP_METHODS = new Set([
  'initialize',
  'ping',
  'tools/list',
  'tools/call',
  'prompts/list',
  'prompts/get',
  'resources/list',
  'resources/templates/list',
  'resources/read',
  'resources/subscribe',
  'resources/unsubscribe',
  'completion/complete',
  'logging/setLevel',
  'tasks/get',
  'tasks/list',
  'tasks/result',
  'tasks/cancel',
  'notifications/initialized',
  'notifications/cancelled',
  'notifications/progress',
  'notifications/roots/list_changed',
]);

/**
 * The proxy's Prometheus metrics on their own registry. Label values come only from closed sets or
 * from config (issuer URLs): nothing a client sends can mint a new series.
 */
export class Metrics {
  readonly registry = new Registry();
  #issuers: ReadonlySet<string>;
  readonly #requests: Counter<'outcome' | 'status_class'>;
  readonly #authFailures: Counter<'reason' | 'issuer'>;
  readonly #keyFetches: Counter<'issuer' | 'result'>;
  readonly #keyCount: Gauge<'issuer'>;
  readonly #openStreams: Gauge;
  readonly #introspections: Counter<'issuer' | 'result'>;
  readonly #introspectionSeconds: Histogram<'issuer'>;
  readonly #cacheLookups: Counter<'issuer' | 'result'>;
  #cachedTokens: () => number = () => 0;
  readonly #policyDecisions: Counter<'method' | 'decision' | 'rule'>;
  readonly #verificationSeconds: Histogram<'method' | 'cache'>;
  readonly #upstreamSeconds: Histogram<'status_class'>;
  readonly #upstreamErrors: Counter<'kind'>;
  readonly #mcpRequests: Counter<'method'>;
  readonly #droppedConnections: Counter<'reason'>;
  readonly #unhandledErrors: Counter;
  readonly #brokerEvents: Counter<'event' | 'result'>;

  constructor(issuers: readonly string[], build: { version: string }) {
    this.#issuers = new Set(issuers);
    new Gauge({
      name: 'mcp_warden_build_info',
      help: 'Always 1; the labels say which mcp-warden and Node.js are running.',
      labelNames: ['version', 'node_version'],
      registers: [this.registry],
    }).set({ version: build.version, node_version: process.version }, 1);
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
    this.#introspections = new Counter({
      name: 'mcp_warden_introspection_requests_total',
      help: 'RFC 7662 introspection calls, by result (active, inactive, rejected, or the kind of failure).',
      labelNames: ['issuer', 'result'],
      registers: [this.registry],
    });
    this.#introspectionSeconds = new Histogram({
      name: 'mcp_warden_introspection_duration_seconds',
      help: 'Time an introspection call took, whatever its result.',
      labelNames: ['issuer'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [this.registry],
    });
    this.#cacheLookups = new Counter({
      name: 'mcp_warden_introspection_cache_lookups_total',
      help: 'Introspection cache lookups: hit, miss (an introspection call), or inflight (joined a call already under way).',
      labelNames: ['issuer', 'result'],
      registers: [this.registry],
    });
    const cachedTokens = () => this.#cachedTokens();
    new Gauge({
      name: 'mcp_warden_introspection_cache_entries',
      help: 'Introspection results currently cached.',
      registers: [this.registry],
      collect() {
        this.set(cachedTokens());
      },
    });
    this.#policyDecisions = new Counter({
      name: 'mcp_warden_policy_decisions_total',
      help: 'JSON-RPC messages judged by policy, by MCP method (known methods, else "other"), decision and the rule that spoke ("none" for required scopes only).',
      labelNames: ['method', 'decision', 'rule'],
      registers: [this.registry],
    });
    this.#verificationSeconds = new Histogram({
      name: 'mcp_warden_token_verification_seconds',
      help: 'Time to verify a token, by method (jwt, introspection) and introspection cache result (hit, miss, inflight; none for jwt).',
      labelNames: ['method', 'cache'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [this.registry],
    });
    this.#upstreamSeconds = new Histogram({
      name: 'mcp_warden_upstream_response_seconds',
      help: 'Time from forwarding a request to the upstream response headers (streams then run on), by status class.',
      labelNames: ['status_class'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60],
      registers: [this.registry],
    });
    this.#upstreamErrors = new Counter({
      name: 'mcp_warden_upstream_errors_total',
      help: 'Forwarded requests that failed upstream, by kind: refused, connect_timeout, response_timeout, reset, upstream_auth (a 401/403 to our credential), error.',
      labelNames: ['kind'],
      registers: [this.registry],
    });
    this.#mcpRequests = new Counter({
      name: 'mcp_warden_mcp_requests_total',
      help: 'JSON-RPC messages seen, by MCP method (known methods, else "other"): from the body when policy rules read it, else from the Mcp-Method header.',
      labelNames: ['method'],
      registers: [this.registry],
    });
    this.#droppedConnections = new Counter({
      name: 'mcp_warden_connections_dropped_total',
      help: 'Connections closed on arrival because a limit was reached: max_connections, max_connections_per_ip.',
      labelNames: ['reason'],
      registers: [this.registry],
    });
    this.#unhandledErrors = new Counter({
      name: 'mcp_warden_unhandled_errors_total',
      help: 'Promise rejections nothing handled: logged and counted, the process keeps serving.',
      registers: [this.registry],
    });
    this.#brokerEvents = new Counter({
      name: 'mcp_warden_broker_events_total',
      help: 'Broker mode: registrations, authorizations, consents, logins at the identity provider, token grants, replays and revocations, by result (ok or an OAuth error code).',
      labelNames: ['event', 'result'],
      registers: [this.registry],
    });
    for (const reason of ['max_connections', 'max_connections_per_ip'] satisfies ConnectionDrop[]) this.#droppedConnections.inc({ reason }, 0);
    // Every reason exists from the start, so rate() and alerts work before the first failure.
    for (const reason of AUTH_FAILURE_REASONS) this.#authFailures.inc({ reason, issuer: UNKNOWN_ISSUER }, 0);
  }

  // Label children of the per-request metrics (label-children.ts); resolved lazily, after the constructor.
  readonly #requestChildren = new LabelChildren((outcome, statusClass) => this.#requests.labels({ outcome, status_class: statusClass }));
  readonly #lookupChildren = new LabelChildren((issuer, result) => this.#cacheLookups.labels({ issuer, result }));
  readonly #verificationChildren = new LabelChildren((method, cache) => this.#verificationSeconds.labels({ method, cache }));
  readonly #upstreamChildren = new LabelChildren((statusClass) => this.#upstreamSeconds.labels({ status_class: statusClass }));
  readonly #mcpChildren = new LabelChildren((method) => this.#mcpRequests.labels({ method }));
  readonly #policyChildren = new LabelChildren((method, decision, rule) => this.#policyDecisions.labels({ method, decision, rule }));

  /** `status` is 0 when the client went away before any response began. */
  request(outcome: Outcome, status: number): void {
    this.#requestChildren.of(outcome, status > 0 ? statusClass(status) : 'none').inc();
  }

  /** The issuers a reloaded config names: the only values the issuer label takes from then on. */
  trackIssuers(issuers: readonly string[]): void {
    this.#issuers = new Set(issuers);
  }

  authFailure(reason: AuthFailureReason, issuer: string | undefined): void {
    this.#authFailures.inc({ reason, issuer: issuer && this.#issuers.has(issuer) ? issuer : UNKNOWN_ISSUER });
  }

  keyFetch(issuer: string, result: KeyFetchResult, keyCount: number): void {
    this.#keyFetches.inc({ issuer, result });
    if (result === 'ok') this.#keyCount.set({ issuer }, keyCount);
  }

  introspection(issuer: string, result: IntrospectionResult, seconds: number): void {
    this.#introspections.inc({ issuer, result });
    this.#introspectionSeconds.observe({ issuer }, seconds);
  }

  cacheLookup(issuer: string, result: CacheLookup): void {
    this.#lookupChildren.of(issuer, result).inc();
  }

  /** Where the entries gauge reads its value at scrape time. */
  countCachedTokens(source: () => number): void {
    this.#cachedTokens = source;
  }

  verification(method: 'jwt' | 'introspection', cache: string, seconds: number): void {
    this.#verificationChildren.of(method, cache).observe(seconds);
  }

  upstreamResponse(status: number, seconds: number): void {
    this.#upstreamChildren.of(statusClass(status)).observe(seconds);
  }

  upstreamError(kind: string): void {
    this.#upstreamErrors.inc({ kind });
  }

  mcpRequest(method: string | undefined): void {
    this.#mcpChildren.of(methodLabel(method)).inc();
  }

  /** `rule` is a config path such as policy.rules[2]; method names outside MCP's own become "other". */
  policyDecision(method: string | undefined, allowed: boolean, rule: string | undefined): void {
    this.#policyChildren.of(methodLabel(method), allowed ? 'allow' : 'deny', rule ?? 'none').inc();
  }

  connectionDropped(reason: ConnectionDrop): void {
    this.#droppedConnections.inc({ reason });
  }

  /** Both labels come from the broker's own fixed strings, never from a request. */
  brokerEvent(event: string, result: string): void {
    this.#brokerEvents.inc({ event, result });
  }

  unhandledError(): void {
    this.#unhandledErrors.inc();
  }

  streamOpened(): void {
    this.#openStreams.inc();
  }

  streamClosed(): void {
    this.#openStreams.dec();
  }
}

function methodLabel(method: string | undefined): string {
  return method === undefined ? 'response' : MCP_METHODS.has(method) ? method : 'other';
}
