import type { ServerResponse } from 'node:http';
import type { UpstreamFailure } from '../upstream/upstream.ts';
import { sendJson } from './respond.ts';

/** The client's answer when the upstream gave none: 504 when it was too slow, 502 otherwise. */
export function answerUpstreamFailure(res: ServerResponse, failure: UpstreamFailure): void {
  const timedOut = failure === 'connect_timeout' || failure === 'response_timeout';
  sendJson(res, timedOut ? 504 : 502, {
    error: timedOut ? 'upstream_timeout' : 'upstream_unavailable',
    error_description: timedOut ? 'the upstream server did not answer in time' : 'the upstream server could not be reached',
  });
}

/** An upstream that refused our credential: the client's own token was fine, so this is a gateway error. */
export function answerUpstreamAuthFailed(res: ServerResponse): void {
  sendJson(res, 502, { error: 'upstream_auth_failed', error_description: 'the upstream server refused the proxy credential' });
}
