import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdminServer } from './admin/admin-server.ts';
import { TokenVerifier } from './auth/verifier.ts';
import { ConfigError, type ConfigProblem } from './config/errors.ts';
import type { Config } from './config/schema.ts';
import { openSecretSource, type SecretSource } from './config/secret-source.ts';
import { InFlight } from './lifecycle/in-flight.ts';
import { Readiness } from './lifecycle/readiness.ts';
import { Policy } from './mcp/policy.ts';
import { SessionBinding } from './mcp/session-binding.ts';
import { buildProtectedResourceMetadata } from './metadata/protected-resource.ts';
import { createLogger, type Logger } from './observability/logger.ts';
import { Metrics } from './observability/metrics.ts';
import { Forwarder } from './proxy/forward.ts';
import { createRequestPipeline } from './request-pipeline.ts';
import { createUpstreamCredential, type UpstreamCredential } from './upstream/credential.ts';
import { createIdentityHeaders } from './upstream/identity-headers.ts';

/** Slow clients are cut while sending the request; responses (long streams) are not bounded by these. */
const SERVER_LIMITS = { maxHeaderSize: 16 * 1024, headersTimeout: 10_000, requestTimeout: 30_000, keepAliveTimeout: 5_000 } as const;
const KEY_RETRY_MIN_MS = 1_000;
const KEY_RETRY_MAX_MS = 30_000;

export interface Warden {
  /** Where the main listener is, e.g. http://127.0.0.1:8080 */
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
  const credential = createUpstreamCredential(config.upstream.credential);
  const introspectionSecrets = new Map<string, SecretSource>();
  config.authorization_servers.forEach((server) => {
    if (server.introspection) introspectionSecrets.set(server.issuer, openSecretSource(server.introspection.client_secret));
  });
  const closeSecrets = () => {
    credential.close();
    for (const source of introspectionSecrets.values()) source.close();
  };
  const missing = missingSecrets(config, credential, introspectionSecrets);
  if (missing.length > 0) {
    closeSecrets();
    throw new ConfigError('config', missing);
  }
  const metrics = new Metrics(config.authorization_servers.map((server) => server.issuer), { version: packageVersion() });
  const verifier = new TokenVerifier(config, introspectionSecrets, {
    onKeyFetch: (issuer, result, count) => metrics.keyFetch(issuer, result, count),
    onIntrospection: (issuer, result, seconds) => metrics.introspection(issuer, result, seconds),
    onCacheLookup: (issuer, lookup) => metrics.cacheLookup(issuer, lookup),
    onVerification: (method, cache, seconds) => metrics.verification(method, cache, seconds),
  });
  metrics.countCachedTokens(() => verifier.cachedTokens);
  const readiness = new Readiness(() => verifier.ready);
  const inFlight = new InFlight();
  const forwarder = new Forwarder({
    target: config.upstream.url,
    connectTimeoutMs: config.upstream.connect_timeout,
    responseTimeoutMs: config.upstream.response_timeout,
    onStreamStart: (req, res, end) => {
      metrics.streamOpened();
      res.once('close', () => metrics.streamClosed());
      if (req.method === 'GET') inFlight.standaloneStream(req, end);
    },
  });
  const pipeline = createRequestPipeline({
    config,
    metadata: buildProtectedResourceMetadata(config),
    verifier,
    policy: new Policy(config),
    sessions: config.sessions.bind ? new SessionBinding({ maxEntries: config.sessions.max_entries, idleTtlMs: config.sessions.idle_ttl }) : undefined,
    forwarder,
    credential,
    identity: createIdentityHeaders(config.upstream.identity_headers),
    metrics,
    logger,
    inFlight,
  });

  const main = createServer(SERVER_LIMITS, pipeline);
  const admin = createAdminServer(readiness, metrics);
  await Promise.all([listen(main, config.listen.host, config.listen.port), listen(admin, config.admin.host, config.admin.port)]);
  const url = baseUrl(main);
  const adminUrl = baseUrl(admin);
  logger.info({ url, admin_url: adminUrl, resource: config.resource.url, upstream: config.upstream.url }, 'listening');

  const keyRetry = fetchKeysUntilReady(verifier, logger);

  let shuttingDown: Promise<void> | undefined;
  const shutdown = () =>
    (shuttingDown ??= (async () => {
      readiness.startDraining();
      keyRetry.stop();
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
      forwarder.close();
      closeSecrets();
      logger.info('stopped');
    })());

  return { url, adminUrl, readiness, metrics, shutdown };
}

/** src/ and dist/ both sit one level below package.json. */
function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

/** Secrets the config names that cannot be read now: the process must not start without them. */
function missingSecrets(config: Config, credential: UpstreamCredential, introspection: ReadonlyMap<string, SecretSource>): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const upstream = credential.headers();
  if (!upstream.ok) problems.push({ path: 'upstream.credential.value', message: upstream.problem });
  config.authorization_servers.forEach((server, index) => {
    const secret = introspection.get(server.issuer)?.current();
    if (secret && !secret.ok) problems.push({ path: `authorization_servers[${index}].introspection.client_secret`, message: secret.problem });
  });
  return problems;
}

/** Keeps trying to fetch every issuer's keys and introspection endpoint, with backoff, until all are known. */
function fetchKeysUntilReady(verifier: TokenVerifier, logger: Logger): { stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const attempt = async (delay: number) => {
    const failures = await verifier.prepare();
    if (stopped) return;
    for (const [issuer, error] of failures) logger.warn({ issuer, err: error.message, retry_ms: delay }, 'verifier not ready yet');
    if (failures.size === 0 && verifier.ready) {
      logger.info({ issuers: verifier.issuers }, 'verifiers ready');
      return;
    }
    timer = setTimeout(() => void attempt(Math.min(delay * 2, KEY_RETRY_MAX_MS)), delay);
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

async function listen(server: Server, host: string, port: number): Promise<void> {
  server.listen(port, host);
  await once(server, 'listening');
}

function baseUrl(server: Server): string {
  const { address, port } = server.address() as AddressInfo;
  return `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
}
