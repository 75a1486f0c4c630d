import type { TokenVerifier } from '../auth/verifier.ts';
import type { Logger } from '../observability/logger.ts';

const KEY_RETRY_MIN_MS = 1_000;
const KEY_RETRY_MAX_MS = 30_000;

export interface VerifierUpkeep {
  stop(): void;
}

/**
 * Keeps the verifier supplied: until ready, retries with backoff; after that, every `periodMs` it
 * refreshes keys that are due, so keys that went past max_stale during an outage come back (and the pod
 * turns ready again) without a request or a restart.
 */
export function maintainVerifier(verifier: TokenVerifier, logger: Logger, periodMs: number): VerifierUpkeep {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let wasReady = false;
  const attempt = async (delay: number) => {
    const failures = await verifier.prepare();
    if (stopped) return;
    const ready = verifier.ready;
    for (const [issuer, error] of failures) logger.warn({ issuer, err: error.message, retry_ms: ready ? periodMs : delay }, ready ? 'key refresh failed, serving the last good keys' : 'verifier not ready');
    if (ready !== wasReady) {
      if (ready) logger.info({ issuers: verifier.issuers }, 'verifiers ready');
      else logger.error({ issuers: verifier.issuers }, 'verifiers no longer ready: signing keys older than max_stale');
      wasReady = ready;
    }
    const next = ready ? periodMs : delay;
    timer = setTimeout(() => void attempt(ready ? KEY_RETRY_MIN_MS : Math.min(delay * 2, KEY_RETRY_MAX_MS)), next);
    timer.unref();
  };
  void attempt(KEY_RETRY_MIN_MS);
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
