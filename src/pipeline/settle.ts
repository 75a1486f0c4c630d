import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Access } from './access.ts';
import type { PipelineParts } from './parts.ts';

/**
 * The access line, the request metric and the request's spans. The returned function counts down: it is called once when
 * the pipeline is over and once when the response has closed, and writes on the second call.
 */
export function settle({ metrics, logger }: PipelineParts): (req: IncomingMessage, res: ServerResponse, access: Access) => void {
  return (req, res, access) => {
    access.pending -= 1;
    if (access.pending > 0) return;
    const { upstream, principal, rpc } = access;
    access.toolCalls?.finish(upstream !== undefined);
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
    access.trace?.end(req.method, status, access);
  };
}
