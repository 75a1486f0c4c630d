import { AuthFailure } from '../auth/failure.ts';
import type { Access } from './access.ts';
import type { PipelineParts } from './parts.ts';
import { refuse, refuseThrown } from './refuse.ts';
import type { Step } from './step.ts';

/**
 * A token bound to a key (RFC 9449 `cnf.jkt`) is used only with a proof of that key, and only with the
 * `DPoP` scheme: a bound token sent as Bearer is refused, whoever holds it. The proof is checked on every
 * request (only the token's signature is cached): it names this method and public URL, this token, and a
 * fresh id. With `tokens.dpop.mode: required`, unbound tokens are refused too.
 */
export function proveKey(parts: PipelineParts, next: Step): Step {
  const { config, dpop } = parts;
  const publicOrigin = new URL(config.resource.url).origin;
  const required = config.tokens.dpop.mode === 'required';
  const refused = (res: Parameters<Step>[1], access: Access, reason: ConstructorParameters<typeof AuthFailure>[0]) =>
    refuse(parts, res, access, new AuthFailure(reason, undefined, access.principal!.issuer));
  return (req, res, access) => {
    const principal = access.principal!;
    const proof = access.dpopProof;
    if (proof === undefined) {
      if (principal.jkt !== undefined) return refused(res, access, 'sender_constrained');
      if (required) return refused(res, access, 'dpop_required');
      return next(req, res, access);
    }
    if (!dpop) return refused(res, access, 'sender_constrained');
    if (principal.jkt === undefined) return refused(res, access, 'dpop_token_unbound');
    const target = { method: req.method ?? 'GET', url: `${publicOrigin}${access.path}`, accessToken: access.token, jkt: principal.jkt, replayScope: principal.issuer };
    return dpop.verify(proof, target).then(
      () => next(req, res, access),
      (error: unknown) => refuseThrown(parts, res, access, error instanceof AuthFailure ? new AuthFailure(error.reason, error.message, principal.issuer) : error),
    );
  };
}
