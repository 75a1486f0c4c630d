import { AuthFailure } from '../auth/failure.ts';
import type { PipelineParts } from './parts.ts';
import { refuse } from './refuse.ts';
import type { Step } from './step.ts';

/** A verified principal: it has the required scopes, and a session it names is its own. */
export function admit(parts: PipelineParts, next: Step): Step {
  const { policy, sessions } = parts;
  return (req, res, access) => {
    const principal = access.principal!;
    if (policy.lacksRequired(principal.scopes)) return refuse(parts, res, access, new AuthFailure('insufficient_scope'));
    const sessionId = req.headers['mcp-session-id'];
    if (sessions && typeof sessionId === 'string') {
      const owner = sessions.check(sessionId, principal);
      if (owner !== 'bound') return refuse(parts, res, access, new AuthFailure(owner === 'foreign' ? 'session_foreign' : 'session_unknown', undefined, principal.issuer));
    }
    // A legacy session id rides in the query. Only a foreign one is refused: the parameter may mean
    // something else to a server that is not legacy, and a legacy session dies with its stream anyway.
    const legacySession = access.query === '' ? null : new URLSearchParams(access.query).get('sessionId');
    if (sessions && legacySession && sessions.check(legacySession, principal) === 'foreign') {
      return refuse(parts, res, access, new AuthFailure('session_foreign', 'legacy sessionId of another principal', principal.issuer));
    }
    return next(req, res, access);
  };
}
