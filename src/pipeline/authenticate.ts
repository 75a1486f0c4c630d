import { extractCredentials } from '../auth/bearer.ts';
import type { Principal } from '../auth/principal.ts';
import { tokenLabel } from '../auth/token-digest.ts';
import type { PipelineParts } from './parts.ts';
import { refuseThrown } from './refuse.ts';
import type { Step } from './step.ts';

/** The token, verified into a principal (its DPoP proof is the next stage's). Returns a promise only when the token must be looked up. */
export function authenticate(parts: PipelineParts, next: Step): Step {
  const { verifier } = parts;
  const maxTokenBytes = parts.config.tokens.max_token_bytes;
  const dpop = parts.config.tokens.dpop.mode !== 'off';
  return (req, res, access) => {
    let token: string;
    try {
      const credentials = extractCredentials(req.rawHeaders, access.query, maxTokenBytes, dpop);
      token = credentials.token;
      access.dpopProof = credentials.proof;
    } catch (error) {
      return refuseThrown(parts, res, access, error);
    }
    access.tokenHash = tokenLabel(token);
    access.token = token;
    let verdict: Principal | Promise<Principal>;
    try {
      verdict = verifier.verify(token, access.socket.remoteAddress ?? '');
    } catch (error) {
      return refuseThrown(parts, res, access, error);
    }
    if (!(verdict instanceof Promise)) {
      access.principal = verdict;
      return next(req, res, access);
    }
    return verdict.then(
      (principal) => {
        access.principal = principal;
        return next(req, res, access);
      },
      (error: unknown) => refuseThrown(parts, res, access, error),
    );
  };
}
