import type { IncomingMessage, ServerResponse } from 'node:http';
import { AuthFailure } from '../auth/failure.ts';
import { sendCredentialUnavailable } from '../proxy/respond.ts';
import { refuse } from './refuse.ts';
import type { CredentialHeaders } from '../upstream/credential.ts';
import type { Access } from './access.ts';
import type { PipelineParts } from './parts.ts';
import type { Step } from './step.ts';

/** Authorized: our credential for the upstream, at once when it is static, else once the user's is at hand. */
export function credential(parts: PipelineParts, next: Step): Step {
  const { credential: source, logger } = parts;
  const use = (req: IncomingMessage, res: ServerResponse, access: Access, headers: CredentialHeaders): void | Promise<void> => {
    if (!headers.ok && headers.refused) {
      logger.warn({ request_id: access.requestId, iss: access.principal?.issuer, sub: access.principal?.subject, problem: headers.problem }, 'upstream credential refused for this user');
      return refuse(parts, res, access, new AuthFailure('upstream_access_denied', headers.problem, access.principal?.issuer));
    }
    if (!headers.ok) {
      access.outcome = 'unavailable';
      access.reason = 'upstream_credential_unavailable';
      logger.error({ request_id: access.requestId, problem: headers.problem }, 'upstream credential unavailable');
      sendCredentialUnavailable(res);
      return;
    }
    access.credential = headers.headers;
    return next(req, res, access);
  };
  return (req, res, access) => {
    const headers = source.headers(access.principal, access.token);
    if (!(headers instanceof Promise)) return use(req, res, access, headers);
    return headers.then((resolved) => {
      // The client may have gone while the user's token was looked up: nothing is sent for it then.
      if (!res.destroyed) return use(req, res, access, resolved);
    });
  };
}
