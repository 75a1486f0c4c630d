import type { IncomingMessage, ServerResponse } from 'node:http';
import { AuthFailure } from '../auth/failure.ts';
import type { Verdict } from '../limits/request-limiter.ts';
import type { Access } from './access.ts';
import type { PipelineParts } from './parts.ts';
import { refuse } from './refuse.ts';
import type { Step } from './step.ts';

/**
 * `limits.requests`: a verified principal's request takes a token from the buckets of its principal, its
 * client and its IP address, or is refused 429 with Retry-After. Answers carry the RateLimit-Policy and
 * RateLimit fields (draft-ietf-httpapi-ratelimit-headers) so clients can pace themselves. Without limits
 * the stage is not in the chain at all.
 */
export function limitRequests(parts: PipelineParts, next: Step): Step {
  const limiter = parts.requestLimiter;
  if (!limiter) return next;
  const { policy } = limiter;
  const answer = (req: IncomingMessage, res: ServerResponse, access: Access, verdict: Verdict): void | Promise<void> => {
    const issuer = access.principal!.issuer;
    if (verdict.kind === 'unavailable') return refuse(parts, res, access, new AuthFailure('rate_limit_unavailable', undefined, issuer));
    if (verdict.rateLimit !== undefined) {
      res.setHeader('ratelimit-policy', policy);
      res.setHeader('ratelimit', verdict.rateLimit);
    }
    if (verdict.kind === 'limit') return refuse(parts, res, access, new AuthFailure('too_many_requests', undefined, issuer, verdict.retryAfter));
    return next(req, res, access);
  };
  return (req, res, access) => {
    const verdict = limiter.decide(access.principal!, access.socket.remoteAddress ?? '', access.tokenHash);
    return verdict instanceof Promise ? verdict.then((settled) => answer(req, res, access, settled)) : answer(req, res, access, verdict);
  };
}
