import type { ServerResponse } from 'node:http';

/** Headers a browser-based MCP client must be able to read: the challenge and the session. */
const EXPOSED = 'WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version, DPoP-Nonce';
const ALLOWED_REQUEST_HEADERS = 'Authorization, DPoP, Content-Type, Accept, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID, Mcp-Method, Mcp-Name';

/** CORS for the protected endpoint: only configured origins (and the resource's own) are granted anything. */
export function createCors(allowedOrigins: readonly string[], ownOrigin: string) {
  const allowed = new Set([...allowedOrigins, ownOrigin]);
  const grant = (origin: string | undefined): origin is string => origin !== undefined && (allowed.has('*') || allowed.has(origin));
  return {
    allows: (origin: string) => grant(origin),
    /** Adds the grant to a response for an allowed origin. */
    decorate(origin: string | undefined, res: ServerResponse): void {
      res.setHeader('vary', 'Origin');
      if (!grant(origin)) return;
      res.setHeader('access-control-allow-origin', origin);
      res.setHeader('access-control-expose-headers', EXPOSED);
    },
    /** Answers a preflight itself; it is never forwarded and needs no token. */
    preflight(origin: string | undefined, res: ServerResponse): void {
      const headers: Record<string, string> = { vary: 'Origin', 'content-length': '0' };
      if (grant(origin)) {
        headers['access-control-allow-origin'] = origin;
        headers['access-control-allow-methods'] = 'GET, POST, DELETE, OPTIONS';
        headers['access-control-allow-headers'] = ALLOWED_REQUEST_HEADERS;
        headers['access-control-expose-headers'] = EXPOSED;
        headers['access-control-max-age'] = '600';
      }
      res.writeHead(204, headers);
      res.end();
    },
  };
}

/** The metadata is public: any origin may read it. */
export const METADATA_CORS_HEADERS = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, OPTIONS',
  'access-control-allow-headers': 'MCP-Protocol-Version',
} as const;
