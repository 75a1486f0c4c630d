import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DpopProofVerifier } from '../auth/dpop-proof.ts';
import { dpopVerifierOf } from '../auth/dpop-verifier-of.ts';
import { TokenVerifier } from '../auth/verifier.ts';
import type { Broker } from '../broker/broker.ts';
import { ConfigError, type ConfigProblem } from '../config/errors.ts';
import { sameSettings } from '../config/reload-rules.ts';
import type { Config } from '../config/schema.ts';
import { openSecretSource, type SecretSource } from '../config/secret-source.ts';
import type { RequestLimits } from '../limits/request-limits.ts';
import { Policy } from '../mcp/policy.ts';
import type { SessionBinding } from '../mcp/session-binding.ts';
import { buildProtectedResourceMetadata } from '../metadata/protected-resource.ts';
import type { Logger } from '../observability/logger.ts';
import type { McpMetrics } from '../observability/mcp-metrics.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { UpstreamTokenMetrics } from '../observability/upstream-token-metrics.ts';
import type { StreamSlots } from '../proxy/stream-slots.ts';
import { createRequestPipeline } from '../request-pipeline.ts';
import type { Tracing } from '../tracing/tracing.ts';
import { createUpstreamCredential } from '../upstream/create-credential.ts';
import { isStaticCredential, type UpstreamCredential } from '../upstream/credential.ts';
import { createUpstream } from '../upstream/create-upstream.ts';
import { createIdentityHeaders } from '../upstream/identity-headers.ts';
import type { Upstream } from '../upstream/upstream.ts';
import { InFlight } from './in-flight.ts';
import { maintainVerifier, type VerifierUpkeep } from './verifier-upkeep.ts';

/** What lives as long as the process, whatever config is current: shared by every generation. */
export interface SharedParts {
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly mcpMetrics: McpMetrics;
  readonly tokenMetrics: UpstreamTokenMetrics;
  readonly broker: Broker | undefined;
  readonly sessions: SessionBinding | undefined;
  readonly streams: StreamSlots;
  /** A session ended at the upstream: the session table lets it go. */
  readonly onSessionEnd: (sessionId: string) => void;
  /** `limits.requests`: each config gets its limiter, over buckets (and a Redis connection) that outlive it. */
  readonly requestLimits: RequestLimits;
  /** OpenTelemetry traces, made once (a reload may not change `tracing`); undefined when off. */
  readonly tracing: Tracing | undefined;
}

/** The token verifier and what keeps it supplied; replaced only when what it verifies against changes. */
interface Verification {
  readonly verifier: TokenVerifier;
  readonly upkeep: VerifierUpkeep;
  readonly secrets: ReadonlyMap<string, SecretSource>;
}

/** How requests reach the upstream; replaced only when the `upstream` section changes. */
interface Forwarding {
  readonly upstream: Upstream;
  readonly credential: UpstreamCredential;
  readonly identity: ReturnType<typeof createIdentityHeaders>;
}

/**
 * One config's request pipeline and the parts built from it. A reload builds the next generation
 * (taking over whatever the config change leaves as it was) and retires this one: requests and streams
 * it took finish on it, and what it alone holds is closed once the last of them has.
 */
export interface Generation {
  readonly config: Config;
  readonly handle: (req: IncomingMessage, res: ServerResponse) => void;
  readonly inFlight: InFlight;
  readonly upstream: Upstream;
  readonly ready: boolean;
  /**
   * Settles once a new verifier has tried its keys: rejects with a ConfigError when it cannot verify yet,
   * so a reload never swaps in a config that would refuse every token. Resolved at once for one taken over.
   */
  readonly prepared: Promise<void>;
  /**
   * Stops taking part in readiness; closes its own parts once nothing in flight needs them. What the
   * successor took over is the successor's to close from now on: it serves the successor's requests.
   */
  retire(successor: Generation): void;
  /** Closes its own parts now (shutdown, after the drain). */
  close(): Promise<void>;
  /** For the next generation: what it may take over. */
  readonly verification: Verification;
  readonly forwarding: Forwarding;
  readonly dpop: DpopProofVerifier | undefined;
}

const VERIFIER_CHECK_MIN_MS = 100;
const CREDENTIAL_WAIT_MS = 10_000;
const CREDENTIAL_POLL_MS = 50;

/**
 * Builds the generation for `config`, taking over from `previous` what `config` leaves unchanged (the
 * verifier with its keys and caches, the upstream with its connections and processes, the DPoP replay
 * memory). Throws ConfigError when a secret it needs cannot be read, closing what it built.
 */
export async function buildGeneration(config: Config, shared: SharedParts, previous?: Generation): Promise<Generation> {
  // First, as it may throw (an unreadable store URL) before anything here needs closing.
  const requestLimiter = shared.requestLimits.limiterFor(config);
  const verification = previous && sameVerification(previous.config, config) ? previous.verification : startVerification(config, shared);
  let forwarding: Forwarding;
  try {
    forwarding = previous && sameSettings(previous.config.upstream, config.upstream) ? previous.forwarding : await startForwarding(config, shared);
  } catch (error) {
    if (verification !== previous?.verification) closeVerification(verification);
    throw error;
  }
  // What it closes when it goes: what it built, and later what it takes over when its predecessor retires.
  const own = { verification: verification !== previous?.verification, forwarding: forwarding !== previous?.forwarding };
  const dpop = previous && sameSettings([previous.config.tokens.dpop, previous.config.tokens.clock_tolerance], [config.tokens.dpop, config.tokens.clock_tolerance]) ? previous.dpop : dpopVerifierOf(config);
  const inFlight = new InFlight();
  const { verifier } = verification;
  const { upstream, credential, identity } = forwarding;
  const handle = createRequestPipeline({
    config,
    metadata: buildProtectedResourceMetadata(config, shared.broker?.issuer),
    broker: shared.broker,
    verifier,
    dpop,
    policy: new Policy(config),
    sessions: shared.sessions,
    upstream,
    credential,
    identity,
    metrics: shared.metrics,
    logger: shared.logger,
    inFlight,
    mcpMetrics: shared.mcpMetrics,
    streams: shared.streams,
    requestLimiter,
    tracing: shared.tracing,
  });
  const keysReady = own.verification
    ? verifier.prepare().then((failures) => {
        if (verifier.ready) return;
        const problems = [...failures].map(([issuer, error]) => ({ path: 'authorization_servers', message: `${issuer}: cannot verify tokens yet (${error.message})` }));
        // The upkeep may have tried first (one fetch is shared): then the failure is only known as not ready.
        const issuers = config.authorization_servers.map((server) => server.issuer).join(', ');
        throw new ConfigError('config', problems.length > 0 ? problems : [{ path: 'authorization_servers', message: `${issuers}: cannot verify tokens yet (no signing keys could be fetched)` }]);
      })
    : Promise.resolve();
  // A new credential that fetches a token of its own (client credentials) has it before it serves.
  const credentialReady = own.forwarding ? whenTrue(() => credential.ready !== false, CREDENTIAL_WAIT_MS, 'upstream.credential', 'its first token did not come') : Promise.resolve();
  const prepared = Promise.all([keysReady, credentialReady]).then(() => undefined);
  let retired = false;
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      if (own.verification) closeVerification(verification);
      if (own.forwarding) {
        await upstream.close();
        credential.close();
      }
    })());
  const generation: Generation = {
    config,
    handle,
    inFlight,
    upstream,
    verification,
    forwarding,
    dpop,
    prepared,
    get ready() {
      return !retired && verifier.ready && credential.ready !== false;
    },
    retire(successor) {
      retired = true;
      const theirs = OWNED.get(successor)!;
      if (successor.verification === verification) [own.verification, theirs.verification] = [false, true];
      if (successor.forwarding === forwarding) [own.forwarding, theirs.forwarding] = [false, true];
      if (own.verification || own.forwarding) void inFlight.quiet().then(close);
    },
    close,
  };
  OWNED.set(generation, own);
  return generation;
}

/**
 * Which shared parts each generation is to close. A successor that takes a part over shares it while the
 * retired one drains, so exactly one of them may close it: the one serving last, however many reloads later.
 */
const OWNED = new WeakMap<Generation, { verification: boolean; forwarding: boolean }>();

/** Resolves once `condition` holds, or rejects with a ConfigError at `path` after `timeoutMs`. */
function whenTrue(condition: () => boolean, timeoutMs: number, path: string, problem: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const check = () => {
      if (condition()) return resolve();
      if (Date.now() >= deadline) return reject(new ConfigError('config', [{ path, message: problem }]));
      setTimeout(check, CREDENTIAL_POLL_MS).unref();
    };
    check();
  });
}

/** Everything the token verifier is built from: when none of it changes, its keys and caches carry over. */
function sameVerification(a: Config, b: Config): boolean {
  const inputs = (config: Config) => [
    config.authorization_servers,
    config.resource.url,
    config.tokens.audiences,
    config.tokens.clock_tolerance,
    config.tokens.jwks,
    config.tokens.cache,
    config.limits.introspections_per_client,
    config.limits.max_concurrent_introspections,
  ];
  return sameSettings(inputs(a), inputs(b));
}

function startVerification(config: Config, shared: SharedParts): Verification {
  const { metrics, logger } = shared;
  const secrets = new Map<string, SecretSource>();
  for (const server of config.authorization_servers) {
    if (server.introspection) secrets.set(server.issuer, openSecretSource(server.introspection.client_secret));
  }
  const problems: ConfigProblem[] = [];
  config.authorization_servers.forEach((server, index) => {
    const secret = secrets.get(server.issuer)?.current();
    if (secret && !secret.ok) problems.push({ path: `authorization_servers[${index}].introspection.client_secret`, message: secret.problem });
  });
  if (problems.length > 0) {
    for (const source of secrets.values()) source.close();
    throw new ConfigError('config', problems);
  }
  const verifier = new TokenVerifier(
    config,
    secrets,
    {
      onKeyFetch: (issuer, result, count) => metrics.keyFetch(issuer, result, count),
      onIntrospection: (issuer, result, seconds) => metrics.introspection(issuer, result, seconds),
      onCacheLookup: (issuer, lookup) => metrics.cacheLookup(issuer, lookup),
      onVerification: (method, cache, seconds) => metrics.verification(method, cache, seconds),
    },
    shared.broker?.ownIssuer,
  );
  const upkeep = maintainVerifier(verifier, logger, Math.max(config.tokens.jwks.cooldown, VERIFIER_CHECK_MIN_MS));
  return { verifier, upkeep, secrets };
}

function closeVerification(verification: Verification): void {
  verification.upkeep.stop();
  for (const source of verification.secrets.values()) source.close();
}

/** The upstream and its credential; a static credential must be readable, and so must the upstream's secrets. */
async function startForwarding(config: Config, shared: SharedParts): Promise<Forwarding> {
  const { logger, metrics } = shared;
  const settings = config.upstream.credential;
  const credential = isStaticCredential(settings)
    ? createUpstreamCredential(settings)
    : createUpstreamCredential(settings, { users: shared.broker?.userTokens, tokenMetrics: shared.tokenMetrics, logger, allowHttp: config.insecure_allow_http });
  const current = isStaticCredential(settings) ? credential.headers() : undefined;
  if (current && !(current instanceof Promise) && !current.ok) {
    credential.close();
    throw new ConfigError('config', [{ path: 'upstream.credential.value', message: current.problem }]);
  }
  const identity = createIdentityHeaders(config.upstream.identity_headers, logger);
  const upstream = createUpstream(config, {
    metrics,
    logger,
    injectedHeaders: [...credential.headerNames, ...identity.headerNames],
    credential,
    onSessionEnd: shared.onSessionEnd,
  });
  const missing = [...upstream.missingSecrets(), ...(credential.missingSecrets?.() ?? [])];
  if (missing.length > 0) {
    await upstream.close();
    credential.close();
    throw new ConfigError('config', missing);
  }
  credential.start?.();
  return { upstream, credential, identity };
}
