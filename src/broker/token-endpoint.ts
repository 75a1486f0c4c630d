import type { IncomingMessage, ServerResponse } from 'node:http';
import { AuthFailure } from '../auth/failure.ts';
import type { DpopProofVerifier } from '../auth/dpop-proof.ts';
import { rawHeaderValues } from '../proxy/raw-headers.ts';
import { sendJson } from '../proxy/respond.ts';
import type { Logger } from '../observability/logger.ts';
import { presentedClientId, type ClientRegistry } from './clients.ts';
import type { TokenGrant } from './grants/grant.ts';
import { OAuthError, PUBLIC_CORS, rateLimited, readForm } from './http.ts';
import type { BrokerRateLimits } from './rate-limits.ts';

/** The token endpoint's DPoP settings; `verifier` is undefined when `tokens.dpop.mode` is off. */
export interface TokenEndpointDpop {
  readonly verifier: DpopProofVerifier | undefined;
  /** The token endpoint's public URL, from the issuer (never the request's Host): the proofs' `htu`. */
  readonly url: string;
  /** Longest proof read; a longer one is refused unread. */
  readonly maxProofBytes: number;
}

/** Proof ids are remembered per scope: the broker's token endpoint has its own. */
const REPLAY_SCOPE = 'broker-token-endpoint';

export interface TokenEndpointOptions {
  readonly clients: ClientRegistry;
  /** The grant types this endpoint serves; each client may use those of its `grant_types`. */
  readonly grants: readonly TokenGrant[];
  /** Every request's outcome: `ok`, or the refusal's reason, by grant label. */
  readonly onGrant: (label: string, result: string) => void;
  readonly limits: BrokerRateLimits;
  readonly dpop: TokenEndpointDpop;
  readonly logger: Logger;
}

/**
 * RFC 6749 §3.2: authenticates the client, checks the DPoP proof (RFC 9449 §5) and hands the request to
 * its grant type, which the client must be registered for. Every refusal is an OAuth error, counted and
 * logged with its reason.
 */
export class TokenEndpoint {
  readonly #o: TokenEndpointOptions;
  readonly #grants: ReadonlyMap<string, TokenGrant>;

  constructor(options: TokenEndpointOptions) {
    this.#o = options;
    this.#grants = new Map(options.grants.map((grant) => [grant.type, grant]));
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const form = await readForm(req);
    const grant = this.#grants.get(form.get('grant_type') ?? '');
    const label = grant?.label ?? 'other';
    try {
      const wait = await this.#o.limits.take('token', req.socket.remoteAddress ?? '', presentedClientId(req, form));
      if (wait > 0) throw rateLimited('token requests', wait);
      const jkt = await this.#proofKey(req);
      const client = await this.#o.clients.authenticate(req, form);
      if (!grant) throw new OAuthError('unsupported_grant_type', `grant_type must be one of ${[...this.#grants.keys()].join(', ')}`);
      if (!client.grant_types.includes(grant.type)) throw new OAuthError('unauthorized_client', `this client may not use ${grant.type}`, 400, {}, 'grant_not_registered');
      const body = await grant.issue({ client, form, jkt });
      this.#o.onGrant(label, 'ok');
      sendJson(res, 200, body, { ...PUBLIC_CORS, pragma: 'no-cache' });
    } catch (error) {
      if (error instanceof OAuthError) {
        this.#o.onGrant(label, error.reason);
        this.#o.logger.info({ grant_type: label, error: error.code, reason: error.reason, client_id: presentedClientId(req, form)?.slice(0, 256) }, 'broker: token request refused');
      }
      throw error;
    }
  }

  /**
   * The thumbprint of the key the request's DPoP proof (RFC 9449 §4.3) is signed with, or undefined when
   * there is no `DPoP` header. The proof must be the only one, about POST to this endpoint's public URL.
   * With DPoP off a proof is refused rather than ignored: a bound token could never be used at the
   * resource, and a Bearer token would be a downgrade the client asked not to have.
   */
  async #proofKey(req: IncomingMessage): Promise<string | undefined> {
    const proofs = rawHeaderValues(req.rawHeaders, 'dpop');
    if (proofs.length === 0) return undefined;
    const { verifier, url, maxProofBytes } = this.#o.dpop;
    if (!verifier) throw new OAuthError('invalid_dpop_proof', 'DPoP is not enabled at this server');
    if (proofs.length > 1) throw new OAuthError('invalid_dpop_proof', 'a token request takes exactly one DPoP proof header');
    const proof = proofs[0]!;
    if (proof.length > maxProofBytes) throw new OAuthError('invalid_dpop_proof', 'the DPoP proof is too large');
    try {
      return (await verifier.verify(proof, { method: 'POST', url, replayScope: REPLAY_SCOPE })).jkt;
    } catch (error) {
      if (!(error instanceof AuthFailure)) throw error;
      // RFC 9449 §8: the client retries with the nonce the DPoP-Nonce header carries.
      if (error.reason === 'dpop_nonce_required') throw new OAuthError('use_dpop_nonce', 'the DPoP proof must carry the server nonce', 400, { 'dpop-nonce': verifier.currentNonce() });
      throw new OAuthError('invalid_dpop_proof', PROOF_REFUSALS[error.reason] ?? 'the DPoP proof is invalid');
    }
  }
}

/** What a client is told about a refused proof: fixed descriptions, one per defect. */
const PROOF_REFUSALS: Partial<Record<string, string>> = {
  dpop_invalid_proof: 'the DPoP proof is invalid',
  dpop_algorithm: 'the DPoP proof algorithm is not accepted',
  dpop_private_key: 'the DPoP proof key must be a public key',
  dpop_method_mismatch: 'the DPoP proof is for another method',
  dpop_url_mismatch: 'the DPoP proof is for another URL',
  dpop_stale: 'the DPoP proof is too old or dated in the future',
  dpop_replayed: 'the DPoP proof was used before',
};
