import type { IncomingMessage, ServerResponse } from 'node:http';
import type { OwnIssuer } from '../auth/verifier.ts';
import type { BrokerConfig, Config } from '../config/schema.ts';
import type { SecretRef } from '../config/secret-ref.ts';
import { openSecretSource, type SecretSource } from '../config/secret-source.ts';
import { MemoryBuckets, type BucketStore } from '../limits/bucket-store.ts';
import { RedisBuckets } from '../limits/redis-buckets.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { sendJson } from '../proxy/respond.ts';
import { dpopVerifierOf } from '../auth/dpop-verifier-of.ts';
import { AccessTokens } from './access-tokens.ts';
import { ClientMetadataDocuments } from './client-metadata-documents.ts';
import { ClientRegistry } from './clients.ts';
import { BrowserCookies } from './cookies.ts';
import { brokerEndpoints, brokerIssuerOf, pathOf } from './endpoints.ts';
import { methodNotAllowed, OAuthError, PUBLIC_CORS, rateLimited, readJson, sendOAuthError } from './http.ts';
import { IdentityProvider } from './identity-provider.ts';
import { LoginFlow } from './login-flow.ts';
import { buildAuthorizationServerMetadata } from './metadata.ts';
import { consentPageSettings } from './consent-page.ts';
import { sendErrorPage } from './error-page.ts';
import { BrokerRateLimits } from './rate-limits.ts';
import { RedisStore } from './redis-store.ts';
import { handleRevocation } from './revocation-endpoint.ts';
import { Revocations } from './revocations.ts';
import { loadSigningKey } from './signing-key.ts';
import { SqliteStore } from './sqlite-store.ts';
import type { BrokerStore } from './store.ts';
import { TokenEndpoint } from './token-endpoint.ts';
import { assertionChecks, clientAssertionSettings, CLIENT_ASSERTION_ALGORITHMS, preRegisteredClients, tokenGrants } from './token-service.ts';
import { UserTokens, userTokenKey } from './user-tokens.ts';
import type { UserTokenSource } from '../upstream/credential.ts';

const PURGE_EVERY_MS = 60_000;
const REVOCATION_SYNC_MS = 2_000;

/** The configured store, ready to use, and where the rate limits keep their buckets beside it. */
async function openStore(
  settings: BrokerConfig['store'],
  required: (ref: SecretRef, path: string) => { value: string },
): Promise<{ store: BrokerStore; buckets: BucketStore; shared: boolean }> {
  if (settings.type === 'sqlite') return { store: new SqliteStore(settings.path), buckets: new MemoryBuckets(), shared: false };
  const store = new RedisStore(required(settings.url, 'broker.store.url').value, settings.key_prefix);
  try {
    await store.ready();
  } catch (error) {
    store.close();
    throw new Error(`broker.store: the Redis server does not answer (${(error as Error).message})`);
  }
  return { store, buckets: new RedisBuckets(store.client, settings.key_prefix), shared: true };
}

export interface Broker {
  readonly issuer: string;
  /** How the resource-server path verifies the broker's tokens, and refuses revoked ones. */
  readonly ownIssuer: OwnIssuer;
  /** The identity provider's tokens per user, when the upstream credential is user_token. */
  readonly userTokens: UserTokenSource | undefined;
  /** Whether a request path is one of the broker's. */
  routes(path: string): boolean;
  handle(req: IncomingMessage, res: ServerResponse, path: string, query: string): Promise<void>;
  close(): void;
}

type Handler = (req: IncomingMessage, res: ServerResponse, query: string) => Promise<void> | void;
interface Route {
  readonly methods: Readonly<Record<string, Handler>>;
  /** Browser fetches from any origin are allowed (no cookies are involved); navigations get no CORS. */
  readonly cors: boolean;
}

/**
 * Builds the broker from its config: the store (opened, key loaded or created, revocations read) before
 * the main listener takes a request, so a broker that cannot keep its promises never starts.
 */
export async function createBroker(config: Config, settings: BrokerConfig, deps: { logger: Logger; metrics: Metrics }): Promise<Broker> {
  const { logger, metrics } = deps;
  const issuer = brokerIssuerOf(config)!;
  const endpoints = brokerEndpoints(issuer);
  const secrets: SecretSource[] = [];
  const openTracked = (ref: SecretRef) => {
    const source = openSecretSource(ref);
    secrets.push(source);
    return source;
  };
  /** A secret the broker cannot start without: read now, and an error naming its config path when it cannot be. */
  const required = (ref: SecretRef, path: string) => {
    const source = openTracked(ref);
    const value = source.current();
    if (!value.ok) throw new Error(`${path}: ${value.problem}`);
    return { source, value: value.value };
  };
  const closers: Array<() => void> = [];
  let opened: Awaited<ReturnType<typeof openStore>> | undefined;
  const closeAll = () => {
    for (const source of secrets) source.close();
    for (const close of closers) close();
    opened?.store.close();
  };
  try {
    opened = await openStore(settings.store, required);
    const { store } = opened;
    const key = await loadSigningKey(store, settings.signing_key && required(settings.signing_key, 'broker.signing_key').value);
    const revocations = new Revocations(store, issuer, Math.max(settings.tokens.refresh_ttl, settings.tokens.access_ttl));
    await revocations.load();
    // Another replica's revocations reach this one's request path within this period; the token
    // endpoint asks the store itself, so a revoked grant never refreshes anywhere.
    if (opened.shared) {
      const sync = setInterval(() => revocations.load().catch((error: unknown) => logger.error({ err: error }, 'broker: reading revocations failed')), REVOCATION_SYNC_MS);
      sync.unref();
      closers.push(() => clearInterval(sync));
    }
    const idpSecret = required(settings.identity_provider.client_secret, 'broker.identity_provider.client_secret').source;
    const preRegistered = preRegisteredClients(settings, openTracked);
    const checks = assertionChecks(store, config, settings);
    const documents = settings.registration.client_id_metadata_documents ? new ClientMetadataDocuments(settings.client_metadata) : undefined;
    closers.push(() => void documents?.close());
    const clients = new ClientRegistry(store, preRegistered, documents, clientAssertionSettings(settings, endpoints, checks));
    const accessTokens = new AccessTokens(issuer, key, settings.tokens.access_ttl);
    const limits = new BrokerRateLimits(settings.rate_limits, opened.buckets);
    const identityProvider = new IdentityProvider(settings.identity_provider, idpSecret);
    const { credential } = config.upstream;
    let userTokens: UserTokens | undefined;
    if (credential.type === 'user_token' && settings.encryption_key) {
      userTokens = new UserTokens({
        store,
        identityProvider,
        key: userTokenKey(required(settings.encryption_key, 'broker.encryption_key').value),
        refreshBeforeMs: credential.refresh_before,
        keepMs: settings.tokens.refresh_ttl,
        onRefresh: (result) => metrics.brokerEvent('user_token_refresh', result),
      });
    }
    const login = new LoginFlow({
      store,
      clients,
      identityProvider,
      userTokens,
      endpoints,
      cookies: new BrowserCookies(issuer),
      terms: { resource: config.resource.url, scopesSupported: config.resource.scopes_supported, defaultScopes: config.tokens.required_scopes },
      loginTtlMs: settings.tokens.login_ttl,
      codeTtlMs: settings.tokens.code_ttl,
      consentTtlMs: settings.consent.remember,
      onEvent: (event, result) => metrics.brokerEvent(event, result),
      logger,
      limits,
      consentPage: consentPageSettings(config.resource, settings),
    });
    // The token endpoint's proof verifier has the resource side's settings: a token it binds is one the
    // resource path will accept with a proof of the same kind.
    const dpopVerifier = dpopVerifierOf(config);
    const grants = tokenGrants({ config, settings, store, login, revocations, accessTokens, checks, issuer, metrics, logger });
    const tokens = new TokenEndpoint({
      clients,
      grants,
      onGrant: (label, result) => metrics.brokerEvent(`token:${label}`, result),
      limits,
      dpop: { verifier: dpopVerifier, url: endpoints.token, maxProofBytes: config.tokens.max_token_bytes },
      logger,
    });
    const metadata = buildAuthorizationServerMetadata(endpoints, {
      dpopAlgorithms: dpopVerifier?.algorithms,
      scopes: config.resource.scopes_supported,
      dynamicRegistration: settings.registration.dynamic,
      clientIdMetadataDocuments: settings.registration.client_id_metadata_documents,
      grantTypes: grants.map((grant) => grant.type),
      clientAssertionAlgorithms: settings.clients.some((client) => client.jwks) ? CLIENT_ASSERTION_ALGORITHMS : undefined,
    });
    const jwks = JSON.stringify({ keys: [key.publicJwk] });

    const register: Handler = async (req, res) => {
      const wait = await limits.take('registration', req.socket.remoteAddress ?? '');
      if (wait > 0) {
        metrics.brokerEvent('register', 'rate_limited');
        throw rateLimited('registrations from this address', wait);
      }
      const body = await readJson(req);
      if ((await store.count('client')) >= settings.registration.max_clients) {
        metrics.brokerEvent('register', 'full');
        return sendOAuthError(res, new OAuthError('temporarily_unavailable', 'this server takes no more client registrations', 503));
      }
      const registered = await clients.register(body);
      metrics.brokerEvent('register', 'ok');
      logger.info({ client_id: registered.client_id, client_name: registered.client_name, redirect_uris: registered.redirect_uris }, 'broker: client registered');
      sendJson(res, 201, registered, PUBLIC_CORS);
    };
    const document = (body: string, cache: string): Handler => (_req, res) => sendJson(res, 200, body, { ...PUBLIC_CORS, 'cache-control': cache });

    const routes = new Map<string, Route>();
    for (const path of endpoints.metadataPaths) routes.set(path, { cors: true, methods: { GET: document(metadata, 'public, max-age=300') } });
    routes.set(pathOf(endpoints.jwks), { cors: true, methods: { GET: document(jwks, 'public, max-age=300') } });
    routes.set(pathOf(endpoints.token), { cors: true, methods: { POST: (req, res) => tokens.handle(req, res) } });
    routes.set(pathOf(endpoints.revocation), {
      cors: true,
      methods: {
        POST: (req, res) =>
          handleRevocation({ store, clients, accessTokens, revocations, onRevoke: (kind) => metrics.brokerEvent('revoke', kind) }, req, res),
      },
    });
    if (settings.registration.dynamic) routes.set(pathOf(endpoints.registration), { cors: true, methods: { POST: register } });
    routes.set(pathOf(endpoints.authorization), { cors: false, methods: { GET: (req, res, query) => login.authorize(req, res, query) } });
    routes.set(pathOf(endpoints.consent), { cors: false, methods: { POST: (req, res) => login.consent(req, res) } });
    routes.set(pathOf(endpoints.callback), { cors: false, methods: { GET: (req, res, query) => login.callback(req, res, query) } });

    const purge = setInterval(() => {
      revocations.prune();
      store.purgeExpired().catch((error: unknown) => logger.error({ err: error }, 'broker: purging expired records failed'));
    }, PURGE_EVERY_MS);
    purge.unref();
    logger.info({ issuer, store: settings.store.type, kid: key.kid, identity_provider: settings.identity_provider.issuer }, 'broker ready');

    return {
      issuer,
      ownIssuer: { issuer, jwks: { keys: [key.publicJwk] }, algorithms: [key.alg], isRevoked: revocations.isRevoked },
      userTokens: userTokens && { issuer, headersFor: (subject) => userTokens.headersFor(subject) },
      routes: (path) => routes.has(path),
      async handle(req, res, path, query) {
        const route = routes.get(path)!;
        const method = req.method === 'HEAD' && route.methods.GET ? 'GET' : (req.method ?? '');
        if (method === 'OPTIONS' && route.cors) {
          res.writeHead(204, { ...PUBLIC_CORS, 'access-control-allow-methods': `${Object.keys(route.methods).join(', ')}, OPTIONS`, 'content-length': '0' });
          res.end();
          return;
        }
        const handler = route.methods[method];
        if (!handler) return methodNotAllowed(res, [...Object.keys(route.methods), ...(route.methods.GET ? ['HEAD'] : []), ...(route.cors ? ['OPTIONS'] : [])].join(', '));
        try {
          await handler(req, res, query);
        } catch (error) {
          if (!(error instanceof OAuthError)) throw error;
          if (route.cors) return sendOAuthError(res, error, error.code === 'invalid_client' && req.headers.authorization ? { 'www-authenticate': 'Basic realm="mcp-warden"' } : {});
          sendErrorPage(res, error.status, error.message, error.status === 429 ? 'wait' : error.status >= 500 ? 'operator' : 'retry');
        }
      },
      close() {
        clearInterval(purge);
        closeAll();
      },
    };
  } catch (error) {
    closeAll();
    throw error;
  }
}
