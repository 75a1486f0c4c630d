// Target (b), the Node floor, run as its own child process:
//   node bench/perf/floor.ts --port N --upstream http://127.0.0.1:M
// A node:http server that forwards every request with http-proxy-3 over an http.Agent set up exactly as
// mcp-warden's was before it forwarded with undici (issue 24): the least a Node proxy built on those parts
// can cost, and the bar issue 24 measures mcp-warden against. No auth,
// no logs, no body reading, no response rewriting: plain forwarding is the floor as the issue defines it.
import { Agent, createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { createProxyServer } from 'http-proxy-3';

/** The same as mcp-warden's IDLE_UPSTREAM_SOCKET_MS. */
const IDLE_UPSTREAM_SOCKET_MS = 4000;
/** mcp-warden's agent allows one upstream socket per client connection: limits.max_connections, 1024 by default. */
const MAX_SOCKETS = 1024;

function main(): void {
  const { values } = parseArgs({ options: { port: { type: 'string' }, upstream: { type: 'string' } }, strict: true });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port <= 0 || !values.upstream) throw new Error('--port and --upstream are required');

  const agent = new Agent({ keepAlive: true, maxSockets: MAX_SOCKETS, maxFreeSockets: 256, timeout: IDLE_UPSTREAM_SOCKET_MS });
  const proxy = createProxyServer({ target: values.upstream, agent, changeOrigin: true, xfwd: false, ws: false });
  const server = createServer((req, res) => {
    proxy.web(req, res, {}, () => {
      // The upstream could not be reached: answer instead of hanging, so the bench sees a non-2xx.
      if (res.headersSent) res.destroy();
      else res.writeHead(502, { 'content-length': '0' }).end();
    });
  });
  server.listen(port, '127.0.0.1');
  process.on('SIGTERM', () => process.exit(0));
}

main();
