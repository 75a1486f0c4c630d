import { createServer, type Server } from 'node:http';
import type { Readiness } from '../lifecycle/readiness.ts';
import type { Metrics } from '../observability/metrics.ts';
import { sendJson } from '../proxy/respond.ts';

/**
 * The admin listener: health, readiness and metrics, matched by exact path only, on a port of its
 * own. It never proxies, so no header or path trick on it can reach the upstream.
 */
export function createAdminServer(readiness: Readiness, metrics: Metrics): Server {
  return createServer(async (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendJson(res, 405, { error: 'method_not_allowed' }, { allow: 'GET, HEAD' });
      return;
    }
    switch (path) {
      case '/healthz':
        sendJson(res, 200, { status: 'ok' });
        return;
      case '/readyz':
        sendJson(res, readiness.ready ? 200 : 503, { status: readiness.ready ? 'ready' : readiness.draining ? 'draining' : 'starting' });
        return;
      case '/metrics': {
        const body = await metrics.registry.metrics();
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(req.method === 'HEAD' ? undefined : body);
        return;
      }
      default:
        sendJson(res, 404, { error: 'not_found' });
    }
  });
}
