import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createAdminServer } from './admin/admin-server.ts';
import { createBroker, type Broker } from './broker/broker.ts';
import { brokerIssuerOf } from './broker/endpoints.ts';
import { DpopProofVerifier } from './auth/dpop-proof.ts';
import { TokenVerifier } from './auth/verifier.ts';
import { ConfigError, type ConfigProblem } from './config/errors.ts';
import type { Config } from './config/schema.ts';
import { openSecretSource, type SecretSource } from './config/secret-source.ts';
import { InFlight } from './lifecycle/in-flight.ts';
import { Readiness } from './lifecycle/readiness.ts';
import { readTlsPair, watchTlsFiles } from './lifecycle/tls-listener.ts';
import { Policy } from './mcp/policy.ts';
import { SessionBinding } from './mcp/session-binding.ts';
import { buildProtectedResourceMetadata } from './metadata/protected-resource.ts';
import { createLogger, type Logger } from './observability/logger.ts';
import { McpMetrics } from './observability/mcp-metrics.ts';
import { Metrics } from './observability/metrics.ts';
import { UpstreamTokenMetrics } from './observability/upstream-token-metrics.ts';
import { packageVersion } from './package-version.ts';
import { limitConnections } from './proxy/connection-limits.ts';
import { StreamSlots } from './proxy/stream-slots.ts';
import { createRequestPipeline } from './request-pipeline.ts';
import { createUpstreamCredential } from './upstream/create-credential.ts';
import { isStaticCredential, type UpstreamCredential } from './upstream/credential.ts';
import { createUpstream } from './upstream/create-upstream.ts';
import { createIdentityHeaders } from './upstream/identity-headers.ts';
import type { Upstream } from './upstream/upstream.ts';

const KEY_RETRY_MIN_MS = 1_000;
const KEY_RETRY_MAX_MS = 30_000;
const KEY_CHECK_MIN_MS = 100;
const CONNECTION_CHECK_MS = 1000;

export interface Warden {
  /** Where the main listener is, e.g. http://127.0.0.1:8080 (https:// with `listen.tls`) */
  readonly url: string;
  readonly adminUrl: string;
  readonly readiness: Readiness;
  readonly metrics: Metrics;
  /** SIGTERM behaviour: not ready, stop accepting, let requests finish within the grace, close streams. */
  shutdown(): Promise<void>;
}

export interface StartOptions {
  readonly logger?: Logger;
}

/** The composition root: builds every part from the config, joins auth and proxy, and listens. */
export async function startWarden(config: Config, options: StartOptions = {}): Promise<Warden> {
  const logger = options.logger ?? createLogger(config.logging.level, { pretty: config.logging.pretty });
  // A static credential is checked before anything starts; a per-user one needs the broker's user tokens, and one that fetches tokens, its metrics.
  const staticCredential = isStaticCredential(config.upstream.credential) ? createUpstreamCredential(config.upstream.credential) : undefined;
  const introspectionSecrets = new Map<string, SecretSource>();
  config.authorization_servers.forEach((server) => {
    if (server.introspection) introspectionSecrets.set(server.issuer, openSecretSource(server.introspection.client_secret));
  });
  const closeSecrets = () => {
    staticCredential?.close();
    for (const source of introspectionSecrets.values()) source.close();
  };
  // The certificate and key are checked with the secrets: the process must not start without them.
  const tls = config.listen.tls ? readTlsPair(config.listen.tls) : undefined;
  const missing = [...missingSecrets(config, staticCredential, introspectionSecrets), ...(tls && !tls.ok ? tls.problems : [])];
  if (missing.length > 0) {
    closeSecrets();
    throw new ConfigError('config', missing);
  }
  let broker: Broker | undefined;
  const brokerIssuer = brokerIssuerOf(config);
  const metrics = new Metrics([...(brokerIssuer ? [brokerIssuer] : []), ...config.authorization_servers.map((server) => server.issuer)], { version: packageVersion() });
  if (config.broker) {
    try {
      broker = await createBroker(config, config.broker, { logger, metrics });
    } catch (error) {
      closeSecrets();
      throw error;
    }
  }
  const credential = staticCredential ?? createUpstreamCredential(config.upstream.credential, { users: broker?.userTokens, tokenMetrics: new UpstreamTokenMetrics(metrics.registry), logger, allowHttp: config.insecure_allow_http });
  const verifier = new TokenVerifier(config, introspectionSecrets, {
    onKeyFetch: (issuer, result, count) => metrics.keyFetch(issuer, result, count),
    onIntrospection: (issuer, result, seconds) => metrics.introspection(issuer, result, seconds),
    onCacheLookup: (issuer, lookup) => metrics.cacheLookup(issuer, lookup),
    onVerification: (method, cache, seconds) => metrics.verification(method, cache, seconds),
  }, broker?.ownIssuer);
  metrics.countCachedTokens(() => verifier.cachedTokens);
  // A token fetched at start (client credentials) must be at hand before traffic is taken.
  const readiness = new Readiness(() => verifier.ready && credential.ready !== false);
  const inFlight = new InFlight();
  const identity = createIdentityHeaders(config.upstream.identity_headers, logger);
  // The session table and a stdio upstream each learn when the other lets a session go.
  let upstream: Upstream | undefined;
  const sessions = config.sessions.bind
    ? new SessionBinding({ maxEntries: config.sessions.max_entries, idleTtlMs: config.sessions.idle_ttl, onDrop: (sessionId) => upstream?.sessionDropped(sessionId) })
    : undefined;
  upstream = createUpstream(config, {
    metrics,
    logger,
    injectedHeaders: [...credential.headerNames, ...identity.headerNames],
    credential,
    onSessionEnd: (sessionId) => sessions?.forget(sessionId),
  });
  const upstreamSecrets = [...upstream.missingSecrets(), ...(credential.missingSecrets?.() ?? [])];
  if (upstreamSecrets.length > 0) {
    await upstream.close();
    credential.close();
    broker?.close();
    closeSecrets();
    throw new ConfigError('config', upstreamSecrets);
  }
  credential.start?.();
  const pipeline = createRequestPipeline({
    config,
    metadata: buildProtectedResourceMetadata(config, broker?.issuer),
    broker,
    verifier,
    dpop: dpopVerifierOf(config),
    policy: new Policy(config),
    sessions,
    upstream,
    credential,
    identity,
    metrics,
    logger,
    inFlight,
    mcpMetrics: new McpMetrics(metrics.registry),
    streams: new StreamSlots({ total: config.limits.max_streams, perPrincipal: config.limits.max_streams_per_principal }),
  });

  const { limits } = config;
  // Slow clients are cut while sending the request; responses (long streams) are not bounded by these.
  const httpOptions = {
    maxHeaderSize: limits.max_header_bytes,
    headersTimeout: limits.headers_timeout,
    requestTimeout: limits.request_timeout,
    keepAliveTimeout: limits.idle_timeout,
    // Node checks the two timeouts above only this often (30 s by default), which would stretch them.
    connectionsCheckingInterval: Math.min(CONNECTION_CHECK_MS, limits.headers_timeout / 2),
  };
  // With TLS, headersTimeout starts after the handshake: a client that never finishes one is cut as soon (Node's default is 120 s).
  const secure = tls?.ok ? createHttpsServer({ ...httpOptions, cert: tls.pair.cert, key: tls.pair.key, handshakeTimeout: limits.headers_timeout }, pipeline) : undefined;
  const main: Server | HttpsServer = secure ?? createServer(httpOptions, pipeline);
  // One more than allowed, so that a request over the limit shows it (Node silently drops the rest).
  main.maxHeadersCount = limits.max_headers + 1;
  // `Expect: 100-continue` is answered by the pipeline, after authorization: a refused client never sends its body.
  main.on('checkContinue', pipeline);
  limitConnections(main, { total: limits.max_connections, perIp: limits.max_connections_per_ip }, (reason) => metrics.connectionDropped(reason));
  const onUnhandled = (error: unknown) => {
    metrics.unhandledError();
    logger.error({ err: error }, 'unhandled rejection');
  };
  process.on('unhandledRejection', onUnhandled);
  const admin = createAdminServer(readiness, metrics);
  await Promise.all([listen(main, config.listen.host, config.listen.port), listen(admin, config.admin.host, config.admin.port)]);
  const url = baseUrl(main, tls ? 'https' : 'http');
  const adminUrl = baseUrl(admin, 'http');
  const certificate = tls?.ok ? { tls_serial: tls.pair.serial, tls_valid_to: tls.pair.validTo } : {};
  logger.info({ url, admin_url: adminUrl, resource: config.resource.url, upstream: config.upstream.url ?? config.upstream.stdio?.command[0], ...certificate }, 'listening');
  const tlsFiles = secure && tls?.ok && config.listen.tls ? watchTlsFiles(secure, config.listen.tls, tls.pair, logger) : undefined;

  const keyRetry = maintainVerifier(verifier, logger, Math.max(config.tokens.jwks.cooldown, KEY_CHECK_MIN_MS));

  let shuttingDown: Promise<void> | undefined;
  const shutdown = () =>
    (shuttingDown ??= (async () => {
      readiness.startDraining();
      keyRetry.stop();
      tlsFiles?.close();
      logger.info({ requests: inFlight.requests, streams: inFlight.streams, grace_ms: config.lifecycle.shutdown_grace }, 'draining');
      const closed = Promise.all([once(main, 'close'), once(admin, 'close')]);
      main.close();
      main.closeIdleConnections();
      let grace: NodeJS.Timeout | undefined;
      await Promise.race([inFlight.idle(), new Promise((resolve) => (grace = setTimeout(resolve, config.lifecycle.shutdown_grace)))]);
      clearTimeout(grace);
      inFlight.closeStreams();
      // Ended streams flush on the next turn; whatever still holds a socket after that is cut.
      await new Promise((resolve) => setTimeout(resolve, 50));
      main.closeAllConnections();
      admin.close();
      admin.closeAllConnections();
      await closed;
      await upstream.close();
      credential.close();
      broker?.close();
      closeSecrets();
      process.off('unhandledRejection', onUnhandled);
      logger.info('stopped');
    })());

  return { url, adminUrl, readiness, metrics, shutdown };
}

/** src/ and dist/ both sit one level below package.json. */
/** Secrets the config names that cannot be read now: the process must not start without them. */
function missingSecrets(config: Config, credential: UpstreamCredential | undefined, introspection: ReadonlyMap<string, SecretSource>): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const upstream = credential?.headers();
  if (upstream && !(upstream instanceof Promise) && !upstream.ok) problems.push({ path: 'upstream.credential.value', message: upstream.problem });
  config.authorization_servers.forEach((server, index) => {
    const secret = introspection.get(server.issuer)?.current();
    if (secret && !secret.ok) problems.push({ path: `authorization_servers[${index}].introspection.client_secret`, message: secret.problem });
  });
  return problems;
}

/**
 * Keeps the verifier supplied: until ready, retries with backoff; after that, every `periodMs` it
 * refreshes keys that are due, so keys that went past max_stale during an outage come back (and the pod
 * turns ready again) without a request or a restart.
 */
function maintainVerifier(verifier: TokenVerifier, logger: Logger, periodMs: number): { stop(): void } {
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

async function listen(server: Server | HttpsServer, host: string, port: number): Promise<void> {
  server.listen(port, host);
  await once(server, 'listening');
}

function baseUrl(server: Server | HttpsServer, scheme: 'http' | 'https'): string {
  const { address, port } = server.address() as AddressInfo;
  return `${scheme}://${address.includes(':') ? `[${address}]` : address}:${port}`;
}

/** The DPoP proof verifier `tokens.dpop` asks for, or none when DPoP is off. */
function dpopVerifierOf(config: Config): DpopProofVerifier | undefined {
  const { dpop, clock_tolerance } = config.tokens;
  if (dpop.mode === 'off') return undefined;
  return new DpopProofVerifier({ algorithms: dpop.algorithms, maxAgeMs: dpop.max_age, clockToleranceMs: clock_tolerance, maxReplayEntries: dpop.max_replay_entries, nonce: dpop.nonce });
}
