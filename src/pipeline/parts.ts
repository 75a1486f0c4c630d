import type { DpopProofVerifier } from '../auth/dpop-proof.ts';
import type { TokenVerifier } from '../auth/verifier.ts';
import type { Broker } from '../broker/broker.ts';
import type { Config } from '../config/schema.ts';
import type { InFlight } from '../lifecycle/in-flight.ts';
import type { RequestLimiter } from '../limits/request-limiter.ts';
import type { Policy } from '../mcp/policy.ts';
import type { SessionBinding } from '../mcp/session-binding.ts';
import type { ProtectedResourceMetadata } from '../metadata/protected-resource.ts';
import type { Logger } from '../observability/logger.ts';
import type { McpMetrics } from '../observability/mcp-metrics.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { StreamSlots } from '../proxy/stream-slots.ts';
import type { Tracing } from '../tracing/tracing.ts';
import type { UpstreamCredential } from '../upstream/credential.ts';
import type { createIdentityHeaders } from '../upstream/identity-headers.ts';
import type { Upstream } from '../upstream/upstream.ts';

/** What the composition root builds for the request pipeline; each stage takes what it needs once. */
export interface PipelineParts {
  readonly config: Config;
  readonly metadata: ProtectedResourceMetadata;
  /** Broker mode: its endpoints are served here, before any token is asked for. */
  readonly broker: Broker | undefined;
  readonly verifier: TokenVerifier;
  /** DPoP proofs (`tokens.dpop.mode` allowed or required); undefined when DPoP is off. */
  readonly dpop: DpopProofVerifier | undefined;
  readonly policy: Policy;
  readonly sessions: SessionBinding | undefined;
  readonly upstream: Upstream;
  readonly credential: UpstreamCredential;
  readonly identity: ReturnType<typeof createIdentityHeaders>;
  readonly metrics: Metrics;
  readonly mcpMetrics: McpMetrics;
  readonly logger: Logger;
  readonly inFlight: InFlight;
  readonly streams: StreamSlots;
  /** OpenTelemetry traces; undefined when tracing is off, and then nothing on the request path touches it. */
  readonly tracing: Tracing | undefined;
  /** `limits.requests`; undefined when no limit is configured. */
  readonly requestLimiter: RequestLimiter | undefined;
}
