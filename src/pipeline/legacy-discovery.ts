import type { ServerResponse } from 'node:http';
import { METADATA_CORS_HEADERS } from '../proxy/cors.ts';
import { sendJson } from '../proxy/respond.ts';
import { AuthorizationServerMetadata, type AuthorizationServerMetadataResult } from '../metadata/authorization-server.ts';
import type { Access } from './access.ts';
import type { PipelineParts } from './parts.ts';
import type { Step } from './step.ts';

const METADATA_PATH = '/.well-known/oauth-authorization-server';

/** Each fallback path of the 2025-03-26 revision, the metadata member that names its real endpoint, and how it is redirected. */
interface Fallback {
  readonly member: string;
  /** The status each accepted method is redirected with. */
  readonly methods: Readonly<Record<string, 302 | 307>>;
}

const FALLBACKS: ReadonlyMap<string, Fallback> = new Map<string, Fallback>([
  // 302: the browser's GET is repeated as a GET with the same query; a form POST keeps its body with 307.
  ['/authorize', { member: 'authorization_endpoint', methods: { GET: 302, HEAD: 302, POST: 307 } }],
  // 307, never 302: the POST and its body are sent again to the new location.
  ['/token', { member: 'token_endpoint', methods: { POST: 307 } }],
  ['/register', { member: 'registration_endpoint', methods: { POST: 307 } }],
]);

/** Readable across origins like the protected resource metadata; the fallbacks are POSTed by browser clients too. */
const FALLBACK_CORS_HEADERS = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, POST, OPTIONS',
  'access-control-allow-headers': 'Content-Type, MCP-Protocol-Version',
} as const;

/**
 * `legacy_clients`: what a 2025-03-26 client looks for at the MCP server's origin, answered here without
 * a token and never forwarded. The authorization server's metadata is served as the issuer published it
 * (its `issuer` untouched: the client must see whose tokens it gets), and the fallback paths redirect to
 * the endpoints that metadata names. Every URL in an answer comes from the issuer's metadata, never from
 * the request, apart from the query carried over to the authorization endpoint. When the issuer cannot
 * be reached: 503 with Retry-After, never a guess. Off: the step is left out, and these paths need a
 * token like any other.
 */
export function legacyDiscovery(parts: PipelineParts, next: Step): Step {
  const { config, logger } = parts;
  const [server] = config.authorization_servers;
  if (!config.legacy_clients || !server) return next;
  const source = new AuthorizationServerMetadata(server.issuer, {
    timeoutMs: config.tokens.jwks.timeout,
    onFailure: (message) => logger.warn({ issuer: server.issuer, err: message }, 'authorization server metadata for 2025-03-26 clients unavailable'),
  });

  const answer = (res: ServerResponse, result: AuthorizationServerMetadataResult, path: string, query: string, method: string, access: Access): void => {
    if (!result.ok) {
      access.outcome = 'unavailable';
      access.reason = 'authorization_server_unavailable';
      sendJson(res, 503, { error: 'temporarily_unavailable', error_description: 'the authorization server metadata cannot be fetched' }, {
        ...METADATA_CORS_HEADERS,
        'retry-after': String(result.retryAfterSeconds),
      });
      return;
    }
    if (path === METADATA_PATH) {
      sendJson(res, 200, result.body, { ...METADATA_CORS_HEADERS, 'cache-control': 'public, max-age=300' });
      return;
    }
    const fallback = FALLBACKS.get(path)!;
    const endpoint = endpointOf(result.metadata[fallback.member]);
    if (!endpoint) {
      sendJson(res, 404, { error: 'not_found', error_description: `the authorization server has no ${fallback.member}` }, FALLBACK_CORS_HEADERS);
      return;
    }
    res.writeHead(fallback.methods[method]!, { ...FALLBACK_CORS_HEADERS, location: withQuery(endpoint, query), 'cache-control': 'no-store', 'content-length': '0' });
    res.end();
  };

  return (req, res, access) => {
    const { path } = access;
    const fallback = FALLBACKS.get(path);
    if (path !== METADATA_PATH && !fallback) return next(req, res, access);
    access.outcome = 'metadata';
    const method = req.method ?? 'GET';
    const allowed = fallback ? Object.keys(fallback.methods) : ['GET', 'HEAD'];
    if (method === 'OPTIONS') {
      res.writeHead(204, { ...(fallback ? FALLBACK_CORS_HEADERS : METADATA_CORS_HEADERS), 'content-length': '0' });
      res.end();
      return;
    }
    if (!allowed.includes(method)) {
      sendJson(res, 405, { error: 'method_not_allowed' }, { allow: [...allowed, 'OPTIONS'].join(', ') });
      return;
    }
    // A body (token request, registration) is not ours to read: the client sends it again after the redirect.
    return source.get().then((result) => answer(res, result, path, access.query, method, access));
  };
}

/** An absolute http(s) URL without a fragment, as RFC 8414 requires of an endpoint; anything else is not redirected to. */
function endpointOf(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  return (url.protocol === 'https:' || url.protocol === 'http:') && url.hash === '' && !value.includes('#') ? value : undefined;
}

/** The client's query (with its `?`, or empty) appended to the endpoint's own. */
function withQuery(endpoint: string, query: string): string {
  if (query.length <= 1) return endpoint;
  return endpoint.includes('?') ? `${endpoint}&${query.slice(1)}` : `${endpoint}${query}`;
}
