import { AuthFailure } from '../auth/failure.ts';
import { legacyEndpointWatcher } from '../mcp/legacy-endpoint.ts';
import { decodeHeaderValue } from '../mcp/request-headers.ts';
import { createRequestHeaderScrubber } from '../proxy/request-headers.ts';
import { TRACE_HEADERS } from '../tracing/request-trace.ts';
import { sendContinue } from './continue.ts';
import type { PipelineParts } from './parts.ts';
import { refuse, refuseThrown } from './refuse.ts';
import type { Step } from './step.ts';

/** The client's credentials out, ours in, and on to the upstream; the sessions it issues are bound to the principal. */
export function forward(parts: PipelineParts): Step {
  const { config, upstream, sessions, credential, identity, metrics, inFlight, streams } = parts;
  const publicUrl = new URL(config.resource.url);
  // With tracing on, the upstream sees one trace context, ours, naming the upstream call; off, the client's passes.
  const traceHeaders = parts.tracing ? TRACE_HEADERS : [];
  const scrub = createRequestHeaderScrubber({ injectedNames: [...credential.headerNames, ...identity.headerNames, 'x-request-id', ...traceHeaders] });
  const forwardedHeaders = { 'x-forwarded-proto': publicUrl.protocol.slice(0, -1), 'x-forwarded-host': publicUrl.host };
  const clockToleranceSeconds = config.tokens.clock_tolerance / 1000;
  return (req, res, access) => {
    const principal = access.principal!;
    const presentedSession = req.headers['mcp-session-id'];
    const mcpMethod = req.headers['mcp-method'];
    // A body that was not read (no rules, no audit) leaves the 2026-07-28 Mcp-Method header as the only hint.
    if (!access.rpc && typeof mcpMethod === 'string') {
      const name = req.headers['mcp-name'];
      access.rpc = { methods: [mcpMethod], target: typeof name === 'string' ? decodeHeaderValue(name) : undefined };
    }
    let onStreamStart: ((end: () => void) => void) | undefined;
    if (req.method === 'GET') {
      const slot = streams.acquire(`${principal.issuer} ${principal.subject ?? access.tokenHash}`);
      if (!slot.ok) return refuse(parts, res, access, new AuthFailure(slot.refusal, undefined, principal.issuer));
      // A standalone stream would outlive its token; it ends at exp and the client reconnects with a fresh one.
      const { expiresAt } = principal;
      let expiry: NodeJS.Timeout | undefined;
      // One listener for both, and `on` since `close` comes once: an open stream keeps every listener,
      // and `once` would add a wrapper closure to each.
      res.on('close', () => {
        slot.release();
        clearTimeout(expiry);
      });
      onStreamStart = (end) => {
        inFlight.standaloneStream(access.ticket, end);
        if (expiresAt !== undefined) expiry = expiryTimer(end, expiresAt + clockToleranceSeconds);
      };
    }
    if (access.rpc) for (const method of access.rpc.methods) metrics.mcpRequest(method);
    // A compressed answer could not be read: an upstream whose answers are watched is asked for them as they are.
    req.headers = scrub(req.headers, access.answers !== undefined);
    sendContinue(res, access);
    access.outcome = 'allowed';
    try {
      access.upstream = upstream.forward({
      req,
      res,
      principal,
      inject: {
        ...access.credential,
        ...identity.headers(principal),
        ...forwardedHeaders,
        'x-forwarded-for': access.socket.remoteAddress ?? '',
        'x-request-id': access.requestId,
        ...access.trace?.upstreamCall(req.method),
      },
      body: access.body,
      answers: access.answers,
      onResponse: sessions
        ? (status, headers) => {
            const issued = headers['mcp-session-id'];
            if (typeof issued === 'string' && issued !== presentedSession) sessions.bind(issued, principal);
            if (req.method === 'DELETE' && typeof presentedSession === 'string' && status >= 200 && status < 300) sessions.forget(presentedSession);
          }
        : undefined,
      onEventStream: sessions && req.method === 'GET' ? () => legacyEndpointWatcher((id) => sessions.bind(id, principal)) : undefined,
      onStreamStart,
      });
    } catch (error) {
      refuseThrown(parts, res, access, error);
    }
  };
}

/** setTimeout's longest delay (about 24.8 days): a stream of a token valid for longer ends then, early rather than never. */
const MAX_TIMER_MS = 2 ** 31 - 1;

function expiryTimer(end: () => void, expiresAtSeconds: number): NodeJS.Timeout {
  return setTimeout(end, Math.min(MAX_TIMER_MS, Math.max(0, expiresAtSeconds * 1000 - Date.now())));
}
