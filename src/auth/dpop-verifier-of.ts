import type { Config } from '../config/schema.ts';
import { DpopProofVerifier } from './dpop-proof.ts';

/**
 * A DPoP proof verifier with `tokens.dpop`'s settings, or none when DPoP is off. The resource path and
 * the broker's token endpoint each build their own (each its own replay memory) from these same settings,
 * so a token the broker binds is one the resource path accepts with a proof of the same kind.
 */
export function dpopVerifierOf(config: Config): DpopProofVerifier | undefined {
  const { dpop, clock_tolerance } = config.tokens;
  if (dpop.mode === 'off') return undefined;
  return new DpopProofVerifier({ algorithms: dpop.algorithms, maxAgeMs: dpop.max_age, clockToleranceMs: clock_tolerance, maxReplayEntries: dpop.max_replay_entries, nonce: dpop.nonce });
}
