import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Access } from './pipeline/access.ts';
import { admit } from './pipeline/admit.ts';
import { authenticate } from './pipeline/authenticate.ts';
import { credential } from './pipeline/credential.ts';
import { forward } from './pipeline/forward.ts';
import { inspect } from './pipeline/inspect.ts';
import { legacyDiscovery } from './pipeline/legacy-discovery.ts';
import { limitRequests } from './pipeline/limit-requests.ts';
import { checkOrigin } from './pipeline/origin.ts';
import type { PipelineParts } from './pipeline/parts.ts';
import { proveKey } from './pipeline/prove-key.ts';
import { publicRoutes } from './pipeline/public-routes.ts';
import { screen } from './pipeline/screen.ts';
import { settle } from './pipeline/settle.ts';
import { chain } from './pipeline/step.ts';
import { watchAnswers } from './pipeline/watch-answers.ts';
import { sendJson } from './proxy/respond.ts';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * The way every request on the main port goes: Host, then what is answered without a token (2025-03-26
 * discovery when `legacy_clients` is on, metadata, preflight), then Origin, the token and its DPoP
 * proof, the request limits, scopes, the session's owner and, when rules or the audit need it, the
 * JSON-RPC body, before anything reaches the upstream; then what of the answers must be read on their
 * way back. Deny by default. With tracing on, each request runs inside its span.
 *
 * A token seen before is answered without a promise, and a request that needs no body is forwarded in
 * the same turn it arrived: every promise, listener and closure per request showed in the profile.
 */
export function createRequestPipeline(parts: PipelineParts): (req: IncomingMessage, res: ServerResponse) => void {
  const handle = chain(parts, [screen, legacyDiscovery, publicRoutes, checkOrigin, authenticate, proveKey, limitRequests, admit, inspect, watchAnswers, credential], forward);
  const finish = settle(parts);
  const { inFlight, logger, tracing } = parts;
  const traceScope = tracing?.scopeFor(parts.config);

  /** A fault of the proxy itself, not of the request: logged, and a 500 if the client can still get one. */
  const failed = (res: ServerResponse, access: Access, error: unknown): void => {
    logger.error({ request_id: access.requestId, err: error }, 'request failed');
    if (!res.headersSent) sendJson(res, 500, { error: 'internal_error' });
    else res.destroy();
  };

  return (req, res) => {
    const inbound = req.headers['x-request-id'];
    const requestId = typeof inbound === 'string' && REQUEST_ID.test(inbound) ? inbound : randomUUID();
    res.setHeader('x-request-id', requestId);
    const access = new Access(req, requestId, inFlight.begin());
    if (tracing) access.trace = tracing.begin(req, traceScope!);
    // `close` comes once; `once` would wrap the listener in a closure of its own that an open stream keeps.
    res.on('close', () => {
      inFlight.end(access.ticket);
      finish(req, res, access);
    });
    let running: void | Promise<void> = undefined;
    try {
      running = tracing ? tracing.run(access.trace!, handle, req, res, access) : handle(req, res, access);
    } catch (error) {
      failed(res, access, error);
    }
    if (!running) {
      finish(req, res, access);
      return;
    }
    running.then(
      () => finish(req, res, access),
      (error: unknown) => {
        failed(res, access, error);
        finish(req, res, access);
      },
    );
  };
}
