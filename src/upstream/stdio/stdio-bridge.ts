import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { isInitializeRequest, isJSONRPCRequest } from '@modelcontextprotocol/sdk/types.js';
import { AuthFailure } from '../../auth/failure.ts';
import type { Principal } from '../../auth/principal.ts';
import type { CredentialConfig } from '../../config/schema.ts';
import type { StdioSettings } from '../../config/upstream-schema.ts';
import { KeyedCounts } from '../../lifecycle/counts.ts';
import { ownerKey } from '../../mcp/session-binding.ts';
import type { Logger } from '../../observability/logger.ts';
import type { ProcessExit, StdioMetrics } from '../../observability/stdio-metrics.ts';
import { sendCredentialUnavailable, sendJson } from '../../proxy/respond.ts';
import type { Upstream, UpstreamFailure, UpstreamOutcome, UpstreamRequest } from '../upstream.ts';
import { ChildEnvironments } from './child-environment.ts';
import { StdioSession } from './stdio-session.ts';

/** JSON-RPC error code the SDK's transport uses for an unknown session; the HTTP status is 404. */
const SESSION_NOT_FOUND = -32001;
const SWEEP_MIN_MS = 100;
const SWEEP_MAX_MS = 30_000;

export interface StdioBridgeOptions {
  readonly settings: StdioSettings;
  readonly credential: CredentialConfig;
  /** The live token of a client_credentials credential, given to each child at spawn. */
  readonly childToken: () => string | undefined;
  readonly logger: Logger;
  readonly metrics: StdioMetrics;
  /** A client opened its standalone GET stream (counted as an open stream until the response closes). */
  readonly onStandaloneStream: (res: ServerResponse) => void;
  /** A session ended (its process is gone): the session binding forgets it. */
  readonly onSessionEnd: (sessionId: string) => void;
}

class StdioOutcome implements UpstreamOutcome {
  upstreamStatus: number | undefined = undefined;
  failure: UpstreamFailure | undefined = undefined;
  stream = false;
  headersSeconds: number | undefined = undefined;
}

/**
 * A stdio MCP server as the upstream: the client speaks Streamable HTTP to the proxy, and each MCP
 * session is one child process of its own, so no state or credential can pass between two users.
 * Process counts are bounded in all and per principal; a child ends on DELETE, when idle, when its
 * session's binding to its principal goes, and at shutdown.
 */
export class StdioBridge implements Upstream {
  readonly kind = 'stdio';
  readonly needsBody = true;
  readonly #options: StdioBridgeOptions;
  readonly #environments: ChildEnvironments;
  readonly #sessions = new Map<string, StdioSession>();
  readonly #perPrincipal = new KeyedCounts();
  readonly #sweeper: NodeJS.Timeout;

  constructor(options: StdioBridgeOptions) {
    this.#options = options;
    this.#environments = new ChildEnvironments(options.settings, options.credential, options.childToken);
    const period = Math.min(SWEEP_MAX_MS, Math.max(SWEEP_MIN_MS, options.settings.idle_timeout / 4));
    this.#sweeper = setInterval(() => this.#sweep(), period);
    this.#sweeper.unref();
  }

  /** Child processes running or starting now. */
  get processes(): number {
    return this.#sessions.size;
  }

  /** Secrets the children need that cannot be read now, by config path. */
  missingSecrets(): Array<{ path: string; message: string }> {
    return this.#environments.missing();
  }

  /** Throws an AuthFailure when the request is refused (process limits, an unusable claim) before answering. */
  forward(request: UpstreamRequest): UpstreamOutcome {
    const outcome = new StdioOutcome();
    const { req, res, principal } = request;
    const sessionId = req.headers['mcp-session-id'];
    const body = request.body === undefined ? undefined : parseJson(request.body);
    if (typeof sessionId === 'string') {
      const session = this.#sessions.get(sessionId);
      if (!session || session.owner !== ownerKey(principal)) {
        sessionGone(res);
        return outcome;
      }
      if (req.method === 'GET') {
        this.#options.onStandaloneStream(res);
        request.onStreamStart?.(() => session.closeStandaloneStream());
      }
      this.#relay(session, request, body, outcome);
      return outcome;
    }
    if (req.method !== 'POST' || !isJSONRPCRequest(body) || !isInitializeRequest(body)) {
      sendJson(res, 400, { jsonrpc: '2.0', id: null, error: { code: -32000, message: 'Bad Request: Mcp-Session-Id header is required' } });
      return outcome;
    }
    const session = this.#open(principal, res, outcome, request.inject);
    if (session) void this.#initialize(session, request, body, outcome);
    return outcome;
  }

  /** Ends every child: SIGTERM, then SIGKILL after the grace; resolves once all have exited. */
  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    await Promise.all([...this.#sessions.values()].map((session) => session.end('shutdown')));
    this.#environments.close();
  }

  /** The binding is gone (evicted, idle): its principal can no longer reach the session, so its process ends. */
  sessionDropped(sessionId: string): void {
    void this.#sessions.get(sessionId)?.end('unbound');
  }

  #open(principal: Principal, res: ServerResponse, outcome: StdioOutcome, inject: Readonly<Record<string, string>>): StdioSession | undefined {
    const { settings, logger, metrics } = this.#options;
    const owner = ownerKey(principal);
    if (this.#perPrincipal.get(owner) >= settings.max_processes_per_principal) throw new AuthFailure('too_many_processes', undefined, principal.issuer);
    if (this.#sessions.size >= settings.max_processes) throw new AuthFailure('overloaded', 'upstream.max_processes reached', principal.issuer);
    const environment = this.#environments.for(principal);
    if (!environment.ok && environment.kind === 'claim') {
      logger.warn({ iss: principal.issuer, sub: principal.subject, problem: environment.problem }, 'stdio server not started: unusable identity claim');
      throw new AuthFailure('unusable_claim', environment.problem, principal.issuer);
    }
    if (!environment.ok) {
      logger.error({ problem: environment.problem }, 'stdio server not started: a secret of its environment cannot be read');
      outcome.failure = 'error';
      sendCredentialUnavailable(res);
      return undefined;
    }
    // The trace context of the request that spawned it (with tracing on), as the OpenTelemetry environment carriers name it.
    if (inject.traceparent) environment.env.TRACEPARENT = inject.traceparent;
    if (inject.tracestate) environment.env.TRACESTATE = inject.tracestate;
    const session = new StdioSession(randomUUID(), owner, settings, environment.env, logger, metrics, (ended, reason) => this.#ended(ended, reason));
    this.#sessions.set(session.id, session);
    this.#perPrincipal.add(owner);
    return session;
  }

  async #initialize(session: StdioSession, request: UpstreamRequest, body: Parameters<StdioSession['start']>[0], outcome: StdioOutcome): Promise<void> {
    const { metrics, logger } = this.#options;
    const started = performance.now();
    const result = await session.start(body);
    if (result !== 'ready') {
      metrics.spawned('failed');
      outcome.failure = result === 'timeout' ? 'startup_timeout' : 'process_exited';
      if (result === 'timeout') {
        logger.error({ session_id: session.id, pid: session.pid, timeout_ms: this.#options.settings.startup_timeout }, 'stdio server did not answer initialize in time; ended');
        void session.end('startup_timeout');
      }
      if (request.res.headersSent || request.res.destroyed) return;
      const timedOut = result === 'timeout';
      sendJson(request.res, timedOut ? 504 : 502, {
        error: timedOut ? 'upstream_timeout' : 'upstream_unavailable',
        error_description: timedOut ? 'the MCP server did not answer initialize in time' : 'the MCP server process exited before answering initialize',
      });
      return;
    }
    metrics.spawned('ok', (performance.now() - started) / 1000);
    // The client went away while the child started: nobody can ever name this session, so it ends now, not when idle.
    if (request.res.destroyed) {
      void session.end('abandoned');
      return;
    }
    logger.info({ session_id: session.id, pid: session.pid, startup_ms: Math.round(performance.now() - started) }, 'stdio server started');
    request.onResponse?.(200, { 'mcp-session-id': session.id });
    this.#relay(session, request, body, outcome);
  }

  #relay(session: StdioSession, request: UpstreamRequest, body: unknown, outcome: StdioOutcome): void {
    const { req, res } = request;
    const started = performance.now();
    session.handle(req, res, body, request.answers).then(
      () => {
        outcome.upstreamStatus = res.statusCode;
        outcome.headersSeconds = (performance.now() - started) / 1000;
        outcome.stream = String(res.getHeader('content-type') ?? '').startsWith('text/event-stream');
        if (req.method === 'DELETE') request.onResponse?.(res.statusCode, {});
      },
      (error: unknown) => {
        outcome.failure = 'error';
        this.#options.logger.error({ session_id: session.id, err: error }, 'stdio session could not handle a request');
        if (!res.headersSent) sendJson(res, 500, { error: 'internal_error' });
        else res.destroy();
      },
    );
  }

  #ended(session: StdioSession, reason: ProcessExit): void {
    if (this.#sessions.get(session.id) !== session) return;
    this.#sessions.delete(session.id);
    this.#perPrincipal.remove(session.owner);
    this.#options.metrics.exited(reason);
    this.#options.logger.info({ session_id: session.id, pid: session.pid, reason }, 'stdio server ended');
    this.#options.onSessionEnd(session.id);
  }

  #sweep(): void {
    const now = Date.now();
    const { idle_timeout: idle } = this.#options.settings;
    for (const session of this.#sessions.values()) {
      if (session.idle(now, idle)) void session.end('idle');
    }
  }
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** As the SDK's transport answers an unknown session: the client then initializes again. */
function sessionGone(res: ServerResponse): void {
  sendJson(res, 404, { jsonrpc: '2.0', id: null, error: { code: SESSION_NOT_FOUND, message: 'Session not found' } });
}
