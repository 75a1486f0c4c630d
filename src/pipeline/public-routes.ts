import { createCors, METADATA_CORS_HEADERS } from '../proxy/cors.ts';
import { sendJson } from '../proxy/respond.ts';
import type { PipelineParts } from './parts.ts';
import type { Step } from './step.ts';

/** Answered without a token: the protected resource metadata, the broker's endpoints and CORS preflights. */
export function publicRoutes(parts: PipelineParts, next: Step): Step {
  const { config, metadata, broker } = parts;
  const cors = createCors(config.cors.allowed_origins, new URL(config.resource.url).origin);
  return (req, res, access) => {
    const { path } = access;
    if (metadata.paths.has(path)) {
      access.outcome = 'metadata';
      if (req.method === 'GET' || req.method === 'HEAD') {
        sendJson(res, 200, metadata.body, { ...METADATA_CORS_HEADERS, 'cache-control': 'public, max-age=300' });
      } else if (req.method === 'OPTIONS') {
        res.writeHead(204, { ...METADATA_CORS_HEADERS, 'content-length': '0' });
        res.end();
      } else {
        sendJson(res, 405, { error: 'method_not_allowed' }, { allow: 'GET, HEAD, OPTIONS' });
      }
      return;
    }
    // The authorization server's own endpoints: public by nature, each checks what it needs.
    if (broker?.routes(path)) {
      access.outcome = 'broker';
      return broker.handle(req, res, path, access.query);
    }
    const origin = req.headers.origin;
    if (req.method === 'OPTIONS' && origin !== undefined && req.headers['access-control-request-method'] !== undefined) {
      access.outcome = 'preflight';
      cors.preflight(origin, res);
      return;
    }
    return next(req, res, access);
  };
}
