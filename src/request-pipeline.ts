import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { extractBearerToken } from './auth/bearer.ts';
import { challengeFor } from './auth/challenge.ts';
import type { Broker } from './broker/broker.ts';
import { AuthFailure } from './auth/failure.ts';
import type { Principal } from './auth/principal.ts';
import { stepUpScopes } from './auth/scopes.ts';
import { tokenLabel } from './auth/token-digest.ts';
import type { TokenVerifier } from './auth/verifier.ts';
import type { Config } from './config/schema.ts';
import type { InFlight } from './lifecycle/in-flight.ts';
import { isJson, judgeBody } from './mcp/judge.ts';
import { watchLegacyEndpoint } from './mcp/legacy-endpoint.ts';
import type { Policy, PolicyDecision } from './mcp/policy.ts';
import type { SessionBinding } from './mcp/session-binding.ts';
import type { ProtectedResourceMetadata } from './metadata/protected-resource.ts';
import type { Logger } from './observability/logger.ts';
import type { Metrics, Outcome } from './observability/metrics.ts';
import { createCors, METADATA_CORS_HEADERS } from './proxy/cors.ts';
import { readBody } from './proxy/read-body.ts';
import { createRequestHeaderScrubber } from './proxy/request-headers.ts';
import { rawHeaderValues } from './proxy/raw-headers.ts';
import { parseRequestPath } from './proxy/request-path.ts';
import type { StreamSlots } from './proxy/stream-slots.ts';
import { sendJson } from './proxy/respond.ts';
import type { CredentialHeaders, UpstreamCredential } from './upstream/credential.ts';
import type { createIdentityHeaders } from './upstream/identity-headers.ts';
import type { Upstream, UpstreamOutcome } from './upstream/upstream.ts';

export interface PipelineParts {
  readonly config: Config;
  readonly metadata: ProtectedResourceMetadata;
  /** Broker mode: its endpoints are served here, before any token is asked for. */
  readonly broker: Broker | undefined;
  readonly verifier: TokenVerifier;
  readonly policy: Policy;
  readonly sessions: SessionBinding | undefined;
  readonly upstream: Upstream;
  readonly credential: UpstreamCredential;
  readonly identity: ReturnType<typeof createIdentityHeaders>;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly inFlight: InFlight;
  readonly streams: StreamSlots;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** What the access log line says about a request, filled in as it goes. */
class Access {
  outcome: Outcome = 'denied';
  reason: string | undefined = undefined;
  principal: Principal | undefined = undefined;
  /** Filled in by the upstream as the exchange goes; final once the response has closed. */
  upstream: UpstreamOutcome | undefined = undefined;
  /** A short hash of the token, to correlate lines of one token without ever logging it. */
  tokenHash: string | undefined = undefined;
  /** The JSON-RPC methods of the request, and the first message's target, when known. */
  rpc: { methods: ReadonlyArray<string | undefined>; target: string | undefined } | undefined = undefined;
  /** The client sent `Expect: 100-continue` and has not been told to send its body. */
  awaitingContinue = false;
  /** The line is written once both the pipeline and the response are over: this counts them down. */
  pending = 2;
  readonly started = performance.now();
  readonly requestId: string;
  /** The request's ticket in the in-flight count. */
  readonly ticket: number;
  /** Kept here: Node detaches it from a request that was destroyed, and the line still needs it. */
  readonly socket: Socket;
  /** What the connection had written before this response, so the line can say what this one wrote. */
  readonly bytesBefore: number;

  constructor(requestId: string, ticket: number, socket: Socket) {
    this.requestId = requestId;
    this.ticket = ticket;
    this.socket = socket;
    this.bytesBefore = socket.bytesWritten;
  }
}

/**
 * The way every request on the main port goes: Host, then metadata and preflight (no token), then
 * Origin, the token, scopes, the session's owner and, when rules need it, the JSON-RPC body, before
 * anything reaches the upstream. Deny by default.
 *
 * A token seen before is answered without a promise, and a request that needs no body is forwarded in
 * the same turn it arrived: every promise, listener and closure per request showed in the profile.
 */
export function createRequestPipeline(parts: PipelineParts): (req: IncomingMessage, res: ServerResponse) => void {
  const { config, metadata, broker, verifier, policy, sessions, upstream, credential, identity, metrics, logger, inFlight, streams } = parts;
  const publicUrl = new URL(config.resource.url);
  const cors = createCors(config.cors.allowed_origins, publicUrl.origin);
  const scrub = createRequestHeaderScrubber({ injectedNames: [...credential.headerNames, ...identity.headerNames, 'x-request-id'] });
  const forwardedHeaders = { 'x-forwarded-proto': publicUrl.protocol.slice(0, -1), 'x-forwarded-host': publicUrl.host };
  const allowedHosts = new Set(config.listen.allowed_hosts.map((host) => host.toLowerCase()));
  const required = config.tokens.required_scopes;
  const unionChallenge = config.policy.challenge_scope === 'granted_and_required';

  const refuse = (res: ServerResponse, access: Access, failure: AuthFailure, needed: readonly string[] = required): void => {
    // The body was never asked for, so the connection cannot carry another request after this answer.
    if (access.awaitingContinue) res.setHeader('connection', 'close');
    const granted = access.principal?.scopes ?? new Set<string>();
    const scope = failure.reason === 'insufficient_scope' && unionChallenge ? stepUpScopes(granted, needed) : [...needed];
    const challenge = challengeFor(failure.reason, { resourceMetadataUrl: metadata.url, scope });
    access.outcome = challenge.status === 503 ? 'unavailable' : 'denied';
    access.reason = failure.reason;
    metrics.authFailure(failure.reason, failure.issuer ?? access.principal?.issuer);
    sendJson(res, challenge.status, challenge.body, challenge.headers);
  };

  /** An AuthFailure is answered; anything else is a fault of the proxy and goes on up. */
  const refuseThrown = (res: ServerResponse, access: Access, error: unknown): void => {
    if (!(error instanceof AuthFailure)) throw error;
    refuse(res, access, error);
  };

  const audit = (requestId: string, principal: Principal, decision: PolicyDecision) => {
    for (const message of decision.messages) {
      const allowed = message.missing.length === 0;
      metrics.policyDecision(message.message.method, allowed, message.rule);
      logger.info(
        {
          request_id: requestId,
          iss: principal.issuer,
          sub: principal.subject,
          client_id: principal.clientId,
          rpc_method: message.message.method,
          target: message.message.target,
          decision: allowed ? 'allow' : 'deny',
          rule: message.rule,
          missing_scopes: allowed ? undefined : message.missing,
        },
        'policy decision',
      );
    }
  };

  /** Tells a client that sent `Expect: 100-continue` to send its body: only once it is authorized. */
  const sendContinue = (res: ServerResponse, access: Access) => {
    if (!access.awaitingContinue) return;
    access.awaitingContinue = false;
    res.writeContinue();
  };

  /** Everything up to the token's verdict. Returns a promise only when the token must be looked up. */
  const handle = (req: IncomingMessage, res: ServerResponse, access: Access): void | Promise<void> => {
    const origin = req.headers.origin;
    const expect = req.headers.expect;
    access.awaitingContinue = expect !== undefined && expect.toLowerCase() === '100-continue';

    // Node keeps reading past its header count limit and drops the rest silently: refuse instead.
    if (req.rawHeaders.length / 2 > config.limits.max_headers) return refuse(res, access, new AuthFailure('too_many_headers'));
    if (rawHeaderValues(req.rawHeaders, 'host').length > 1) return refuse(res, access, new AuthFailure('malformed_request', 'more than one Host header'));
    if (allowedHosts.size > 0 && !allowedHosts.has((req.headers.host ?? '').toLowerCase())) return refuse(res, access, new AuthFailure('host_denied'));
    const target = parseRequestPath(req.url ?? '/');
    if (!target.ok) return refuse(res, access, new AuthFailure('ambiguous_path', target.problem));
    const { path, query } = target;
    if (metadata.paths.has(path)) {
      access.outcome = 'metadata';
      if (req.method === 'GET' || req.method === 'HEAD') {
        sendJson(res, 200, metadata.body, { ...METADATA_CORS_HEADERS, 'cache-control': 'public, max-age=300' });
      } else if (req.method === 'OPTIONS') {
        res.writeHead(204, { ...METADATA_CORS_HEADERS, 'content-length': '0' });
        res.end();
      } else {
        sendJson(res, 405, { error: 'method_not_allowed' }, { allow: 'GET, HEAD, OPTIONS' });
      }
      return;
    }
    // The authorization server's own endpoints: public by nature, each checks what it needs.
    if (broker?.routes(path)) {
      access.outcome = 'broker';
      return broker.handle(req, res, path, query);
    }
    if (req.method === 'OPTIONS' && origin !== undefined && req.headers['access-control-request-method'] !== undefined) {
      access.outcome = 'preflight';
      cors.preflight(origin, res);
      return;
    }
    // DNS rebinding: a browser page from elsewhere is refused before its token is even looked at.
    if (origin !== undefined && !cors.allows(origin)) return refuse(res, access, new AuthFailure('origin_denied'));
    cors.decorate(origin, res);

    let token: string;
    try {
      token = extractBearerToken(req.rawHeaders, query, config.tokens.max_token_bytes);
    } catch (error) {
      return refuseThrown(res, access, error);
    }
    access.tokenHash = tokenLabel(token);
    let verdict: Principal | Promise<Principal>;
    try {
      verdict = verifier.verify(token, access.socket.remoteAddress ?? '');
    } catch (error) {
      return refuseThrown(res, access, error);
    }
    if (!(verdict instanceof Promise)) return admit(req, res, access, verdict, query);
    return verdict.then(
      (principal) => admit(req, res, access, principal, query),
      (error: unknown) => refuseThrown(res, access, error),
    );
  };

  /** A verified principal: its scopes and sessions, then (with rules) the body. */
  const admit = (req: IncomingMessage, res: ServerResponse, access: Access, principal: Principal, query: string): void | Promise<void> => {
    access.principal = principal;
    if (policy.lacksRequired(principal.scopes)) return refuse(res, access, new AuthFailure('insufficient_scope'));
    const sessionId = req.headers['mcp-session-id'];
    if (sessions && typeof sessionId === 'string') {
      const owner = sessions.check(sessionId, principal);
      if (owner !== 'bound') return refuse(res, access, new AuthFailure(owner === 'foreign' ? 'session_foreign' : 'session_unknown', undefined, principal.issuer));
    }
    // A legacy session id rides in the query. Only a foreign one is refused: the parameter may mean
    // something else to a server that is not legacy, and a legacy session dies with its stream anyway.
    const legacySession = query === '' ? null : new URLSearchParams(query).get('sessionId');
    if (sessions && legacySession && sessions.check(legacySession, principal) === 'foreign') {
      return refuse(res, access, new AuthFailure('session_foreign', 'legacy sessionId of another principal', principal.issuer));
    }
    if (policy.inspectsBodies && req.method === 'POST') return inspect(req, res, access, principal);
    return pass(req, res, access, principal, undefined);
  };

  /** Rules are on: the JSON-RPC body is read and judged whole before a byte of it is forwarded. */
  const inspect = async (req: IncomingMessage, res: ServerResponse, access: Access, principal: Principal): Promise<void> => {
    if (!isJson(req.headers)) return refuse(res, access, new AuthFailure('unsupported_media_type'));
    sendContinue(res, access);
    const read = await readBody(req, config.policy.max_body_bytes);
    if (!read.ok && read.problem === 'client_gone') return;
    if (!read.ok) {
      // The rest of the body was not read, so the connection cannot carry another request.
      res.setHeader('connection', 'close');
      return refuse(res, access, new AuthFailure('body_too_large'));
    }
    const judgement = judgeBody(req.headers, read.body, principal.scopes, policy);
    if (judgement.decision) {
      audit(access.requestId, principal, judgement.decision);
      const { messages } = judgement.decision;
      access.rpc = { methods: messages.map((decision) => decision.message.method), target: messages[0]?.message.target };
    }
    if (!judgement.allowed) return refuse(res, access, new AuthFailure(judgement.reason, judgement.detail, principal.issuer), judgement.decision?.needed);
    return pass(req, res, access, principal, read.body);
  };

  /** Authorized: our credential for the upstream, at once when it is static, else once the user's is at hand. */
  const pass = (req: IncomingMessage, res: ServerResponse, access: Access, principal: Principal, body: Buffer | undefined): void | Promise<void> => {
    const upstreamCredential = credential.headers(principal);
    if (!(upstreamCredential instanceof Promise)) return forward(req, res, access, principal, body, upstreamCredential);
    return upstreamCredential.then((resolved) => {
      // The client may have gone while the user's token was looked up: nothing is sent for it then.
      if (!res.destroyed) forward(req, res, access, principal, body, resolved);
    });
  };

  /** The client's credentials out, ours in, and on to the upstream. */
  const forward = (req: IncomingMessage, res: ServerResponse, access: Access, principal: Principal, body: Buffer | undefined, upstreamCredential: CredentialHeaders): void => {
    if (!upstreamCredential.ok) {
      access.outcome = 'unavailable';
      access.reason = 'upstream_credential_unavailable';
      logger.error({ request_id: access.requestId, problem: upstreamCredential.problem }, 'upstream credential unavailable');
      sendJson(res, 503, { error: 'upstream_credential_unavailable', error_description: 'the proxy has no upstream credential' }, { 'retry-after': '5' });
      return;
    }
    const presentedSession = req.headers['mcp-session-id'];
    const mcpMethod = req.headers['mcp-method'];
    // Without rules the body is never read: the 2026-07-28 Mcp-Method header is then the only hint.
    if (!access.rpc && typeof mcpMethod === 'string') {
      const name = req.headers['mcp-name'];
      access.rpc = { methods: [mcpMethod], target: typeof name === 'string' ? name : undefined };
    }
    let onStreamStart: ((end: () => void) => void) | undefined;
    if (req.method === 'GET') {
      const slot = streams.acquire(`${principal.issuer} ${principal.subject ?? access.tokenHash}`);
      if (!slot.ok) return refuse(res, access, new AuthFailure(slot.refusal, undefined, principal.issuer));
      res.once('close', slot.release);
      // A standalone stream would outlive its token; it ends at exp and the client reconnects with a fresh one.
      const { expiresAt } = principal;
      onStreamStart = (end) => {
        inFlight.standaloneStream(access.ticket, end);
        if (expiresAt !== undefined) endAtExpiry(res, end, expiresAt + config.tokens.clock_tolerance / 1000);
      };
    }
    if (access.rpc) for (const method of access.rpc.methods) metrics.mcpRequest(method);
    scrub(req.headers);
    sendContinue(res, access);
    access.outcome = 'allowed';
    access.upstream = upstream.forward({
      req,
      res,
      principal,
      inject: {
        ...upstreamCredential.headers,
        ...identity.headers(principal),
        ...forwardedHeaders,
        'x-forwarded-for': access.socket.remoteAddress ?? '',
        'x-request-id': access.requestId,
      },
      body,
      onResponse: sessions
        ? (status, headers) => {
            const issued = headers['mcp-session-id'];
            if (typeof issued === 'string' && issued !== presentedSession) sessions.bind(issued, principal);
            if (req.method === 'DELETE' && typeof presentedSession === 'string' && status >= 200 && status < 300) sessions.forget(presentedSession);
          }
        : undefined,
      onEventStream: sessions && req.method === 'GET' ? (stream) => watchLegacyEndpoint(stream, (id) => sessions.bind(id, principal)) : undefined,
      onStreamStart,
    });
  };

  /** A fault of the proxy itself, not of the request: logged, and a 500 if the client can still get one. */
  const failed = (res: ServerResponse, access: Access, error: unknown): void => {
    logger.error({ request_id: access.requestId, err: error }, 'request failed');
    if (!res.headersSent) sendJson(res, 500, { error: 'internal_error' });
    else res.destroy();
  };

  /** Counts down to the access line: once for the pipeline, once for the response's close. */
  const settle = (req: IncomingMessage, res: ServerResponse, access: Access): void => {
    access.pending -= 1;
    if (access.pending > 0) return;
    const { upstream, principal, rpc } = access;
    if (upstream) {
      const { upstreamStatus, headersSeconds, failure } = upstream;
      if (upstreamStatus !== undefined && headersSeconds !== undefined) metrics.upstreamResponse(upstreamStatus, headersSeconds);
      if (failure) metrics.upstreamError(failure);
      if (failure && failure !== 'reset') access.outcome = 'upstream_error';
    }
    const status = res.headersSent ? res.statusCode : 0;
    metrics.request(access.outcome, status);
    const url = req.url ?? '/';
    const queryAt = url.indexOf('?');
    logger.info(
      {
        request_id: access.requestId,
        method: req.method,
        path: queryAt === -1 ? url : url.slice(0, queryAt),
        status,
        duration_ms: Math.round((performance.now() - access.started) * 10) / 10,
        bytes: access.socket.bytesWritten - access.bytesBefore,
        outcome: access.outcome,
        reason: access.reason,
        iss: principal?.issuer,
        sub: principal?.subject,
        client_id: principal?.clientId,
        token_hash: access.tokenHash,
        rpc_method: rpc?.methods[0],
        rpc_batch: rpc && rpc.methods.length > 1 ? rpc.methods.length : undefined,
        rpc_target: rpc?.target,
        upstream_status: upstream?.upstreamStatus,
        upstream_failure: upstream?.failure,
        stream: upstream?.stream || undefined,
        aborted: !res.writableFinished || undefined,
      },
      'request',
    );
  };

  return (req, res) => {
    const inbound = req.headers['x-request-id'];
    const requestId = typeof inbound === 'string' && REQUEST_ID.test(inbound) ? inbound : randomUUID();
    res.setHeader('x-request-id', requestId);
    const access = new Access(requestId, inFlight.begin(), req.socket);
    res.once('close', () => {
      inFlight.end(access.ticket);
      settle(req, res, access);
    });
    let running: void | Promise<void> = undefined;
    try {
      running = handle(req, res, access);
    } catch (error) {
      failed(res, access, error);
    }
    if (!running) {
      settle(req, res, access);
      return;
    }
    running.then(
      () => settle(req, res, access),
      (error: unknown) => {
        failed(res, access, error);
        settle(req, res, access);
      },
    );
  };
}

/** setTimeout's longest delay (about 24.8 days): a stream of a token valid for longer ends then, early rather than never. */
const MAX_TIMER_MS = 2 ** 31 - 1;

function endAtExpiry(res: ServerResponse, end: () => void, expiresAtSeconds: number): void {
  const timer = setTimeout(end, Math.min(MAX_TIMER_MS, Math.max(0, expiresAtSeconds * 1000 - Date.now())));
  res.once('close', () => clearTimeout(timer));
}
