import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createAdminServer } from './admin/admin-server.ts';
import { createBroker } from './broker/broker.ts';
import { brokerIssuerOf } from './broker/endpoints.ts';
import { ConfigError, type ConfigProblem } from './config/errors.ts';
import { changedSections, reloadRefusals } from './config/reload-rules.ts';
import type { Config } from './config/schema.ts';
import { ConfigReloader } from './lifecycle/config-reloader.ts';
import { buildGeneration, type Generation, type SharedParts } from './lifecycle/generation.ts';
import type { InFlight } from './lifecycle/in-flight.ts';
import { Readiness } from './lifecycle/readiness.ts';
import { readTlsPair, watchTlsFiles } from './lifecycle/tls-listener.ts';
import { SessionBinding } from './mcp/session-binding.ts';
import { createLogger, type Logger } from './observability/logger.ts';
import { McpMetrics } from './observability/mcp-metrics.ts';
import { Metrics } from './observability/metrics.ts';
import { ReloadMetrics, type ReloadResult } from './observability/reload-metrics.ts';
import { UpstreamTokenMetrics } from './observability/upstream-token-metrics.ts';
import { packageVersion } from './package-version.ts';
import { RequestLimits } from './limits/request-limits.ts';
import { limitConnections } from './proxy/connection-limits.ts';
import { StreamSlots } from './proxy/stream-slots.ts';
import { createTracing } from './tracing/create-tracing.ts';

const CONNECTION_CHECK_MS = 1000;

export interface Warden {
  /** Where the main listener is, e.g. http://127.0.0.1:8080 (https:// with `listen.tls`) */
  readonly url: string;
  readonly adminUrl: string;
  readonly readiness: Readiness;
  readonly metrics: Metrics;
  /** The config requests are served with now. */
  readonly config: Config;
  /**
   * Serves new requests with `next` from now on; requests and streams already taken finish with the
   * config they started with. Refused, with every reason, when `next` changes what a running process
   * cannot take (see reload-rules.ts) or needs a secret or keys that cannot be had: the current config stays.
   */
  reload(next: Config): Promise<ReloadOutcome>;
  /** Reads the config file again and reloads it (SIGHUP); undefined when the warden was started without one. */
  readonly reloadFile: (() => Promise<ReloadResult>) | undefined;
  /** SIGTERM behaviour: not ready, stop accepting, let requests finish within the grace, close streams. */
  shutdown(): Promise<void>;
}

export type ReloadOutcome = { readonly ok: true; readonly changed: readonly string[] } | { readonly ok: false; readonly problems: readonly ConfigProblem[] };

export interface StartOptions {
  readonly logger?: Logger;
  /** The file the config came from: watched, and reloaded when its content changes. */
  readonly configFile?: string;
  /** How often the config file is looked at (default 2 s). */
  readonly configPollMs?: number;
}

/** The composition root: builds every part from the config, joins auth and proxy, and listens. */
export async function startWarden(config: Config, options: StartOptions = {}): Promise<Warden> {
  const logger = options.logger ?? createLogger(config.logging.level, { pretty: config.logging.pretty });
  // The certificate and key are checked with the secrets: the process must not start without them.
  const tls = config.listen.tls ? readTlsPair(config.listen.tls) : undefined;
  if (tls && !tls.ok) throw new ConfigError('config', tls.problems);
  const brokerIssuer = brokerIssuerOf(config);
  const issuersOf = (of: Config) => [...(brokerIssuer ? [brokerIssuer] : []), ...of.authorization_servers.map((server) => server.issuer)];
  const metrics = new Metrics(issuersOf(config), { version: packageVersion() });
  const requestLimits = new RequestLimits({ registry: metrics.registry, logger });
  const broker = config.broker ? await createBroker(config, config.broker, { logger, metrics }) : undefined;
  const tracing = await createTracing(config, logger, packageVersion());
  // The session table and a stdio upstream each learn when the other lets a session go.
  let current: Generation | undefined;
  const sessions = config.sessions.bind
    ? new SessionBinding({ maxEntries: config.sessions.max_entries, idleTtlMs: config.sessions.idle_ttl, onDrop: (sessionId) => current?.upstream.sessionDropped(sessionId) })
    : undefined;
  const shared: SharedParts = {
    logger,
    metrics,
    mcpMetrics: new McpMetrics(metrics.registry),
    tokenMetrics: new UpstreamTokenMetrics(metrics.registry),
    broker,
    sessions,
    streams: new StreamSlots({ total: config.limits.max_streams, perPrincipal: config.limits.max_streams_per_principal }),
    onSessionEnd: (sessionId) => sessions?.forget(sessionId),
    requestLimits,
    tracing,
  };
  try {
    current = await buildGeneration(config, shared);
  } catch (error) {
    broker?.close();
    requestLimits.close();
    void tracing?.shutdown();
    throw error;
  }
  // At start the listener opens with keys still being fetched: /readyz says when they are (the upkeep logs why not).
  current.prepared.catch(() => undefined);
  /** Generations still serving something: the current one, and retired ones until their last stream ends. */
  const live = new Set<Generation>([current]);
  metrics.countCachedTokens(() => current!.verification.verifier.cachedTokens);
  // A token fetched at start (client credentials) must be at hand before traffic is taken.
  const readiness = new Readiness(() => current!.ready);
  const pipeline = (req: IncomingMessage, res: ServerResponse) => current!.handle(req, res);

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

  let shuttingDown: Promise<void> | undefined;
  let reloading: Promise<ReloadOutcome> = Promise.resolve({ ok: true, changed: [] });
  const reload = (next: Config): Promise<ReloadOutcome> => {
    // One reload at a time, each judged against the config the one before it left.
    reloading = reloading.then(async () => {
      const previous = current!;
      const refusals = shuttingDown ? [{ path: '', message: 'the process is shutting down' }] : reloadRefusals(previous.config, next);
      if (refusals.length > 0) return { ok: false, problems: refusals };
      let fresh: Generation;
      try {
        fresh = await buildGeneration(next, shared, previous);
      } catch (error) {
        if (error instanceof ConfigError) return { ok: false, problems: error.problems };
        throw error;
      }
      try {
        await fresh.prepared;
      } catch (error) {
        await fresh.close();
        if (error instanceof ConfigError) return { ok: false, problems: error.problems };
        throw error;
      }
      metrics.trackIssuers(issuersOf(next));
      live.add(fresh);
      current = fresh;
      previous.retire(fresh);
      void previous.inFlight.quiet().then(() => live.delete(previous));
      return { ok: true, changed: changedSections(previous.config, next) };
    });
    return reloading;
  };

  const reloadMetrics = new ReloadMetrics(metrics.registry);
  const reloader = options.configFile ? new ConfigReloader({ path: options.configFile, apply: reload, logger, metrics: reloadMetrics, periodMs: options.configPollMs }) : undefined;
  reloader?.watch();

  const shutdown = () =>
    (shuttingDown ??= (async () => {
      readiness.startDraining();
      tlsFiles?.close();
      reloader?.close();
      const generations = [...live];
      const count = (of: (inFlight: InFlight) => number) => generations.reduce((sum, generation) => sum + of(generation.inFlight), 0);
      const grace = current!.config.lifecycle.shutdown_grace;
      logger.info({ requests: count((inFlight) => inFlight.requests), streams: count((inFlight) => inFlight.streams), grace_ms: grace }, 'draining');
      const closed = Promise.all([once(main, 'close'), once(admin, 'close')]);
      main.close();
      main.closeIdleConnections();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(generations.map((generation) => generation.inFlight.idle())), new Promise((resolve) => (timer = setTimeout(resolve, grace)))]);
      clearTimeout(timer);
      for (const generation of generations) generation.inFlight.closeStreams();
      // Ended streams flush on the next turn; whatever still holds a socket after that is cut.
      await new Promise((resolve) => setTimeout(resolve, 50));
      main.closeAllConnections();
      admin.close();
      admin.closeAllConnections();
      await closed;
      await Promise.all(generations.map((generation) => generation.close()));
      broker?.close();
      requestLimits.close();
      // Last, so the spans of the requests drained above go out too (bounded by tracing.export_timeout).
      await tracing?.shutdown();
      process.off('unhandledRejection', onUnhandled);
      logger.info('stopped');
    })());

  return {
    url,
    adminUrl,
    readiness,
    metrics,
    get config() {
      return current!.config;
    },
    reload,
    reloadFile: reloader && (() => reloader.reload('signal')),
    shutdown,
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
