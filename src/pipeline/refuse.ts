import type { ServerResponse } from 'node:http';
import { challengeFor } from '../auth/challenge.ts';
import { AuthFailure } from '../auth/failure.ts';
import { stepUpScopes } from '../auth/scopes.ts';
import { sendJson } from '../proxy/respond.ts';
import type { Access } from './access.ts';
import type { PipelineParts } from './parts.ts';

/**
 * The one place a refusal becomes the answer: its challenge, its metric and the access line's outcome.
 * `needed` are the scopes the challenge asks for: the required ones unless a policy rule needs more.
 */
export function refuse(parts: PipelineParts, res: ServerResponse, access: Access, failure: AuthFailure, needed: readonly string[] = parts.config.tokens.required_scopes): void {
  // The body was never asked for, so the connection cannot carry another request after this answer.
  if (access.awaitingContinue) res.setHeader('connection', 'close');
  const granted = access.principal?.scopes ?? new Set<string>();
  const unionChallenge = parts.config.policy.challenge_scope === 'granted_and_required';
  const scope = failure.reason === 'insufficient_scope' && unionChallenge ? stepUpScopes(granted, needed) : [...needed];
  const { dpop } = parts;
  const dpopContext = dpop && { algorithms: dpop.algorithms, required: parts.config.tokens.dpop.mode === 'required', nonce: parts.config.tokens.dpop.nonce ? dpop.currentNonce() : undefined, presented: access.dpopProof !== undefined };
  const challenge = challengeFor(failure.reason, { resourceMetadataUrl: parts.metadata.url, scope, rpcId: access.rpcId, dpop: dpopContext, retryAfter: failure.retryAfter });
  access.outcome = challenge.status === 503 ? 'unavailable' : 'denied';
  access.reason = failure.reason;
  parts.metrics.authFailure(failure.reason, failure.issuer ?? access.principal?.issuer);
  sendJson(res, challenge.status, challenge.body, challenge.headers);
}

/** An AuthFailure is answered; anything else is a fault of the proxy and goes on up. */
export function refuseThrown(parts: PipelineParts, res: ServerResponse, access: Access, error: unknown): void {
  if (!(error instanceof AuthFailure)) throw error;
  refuse(parts, res, access, error);
}
