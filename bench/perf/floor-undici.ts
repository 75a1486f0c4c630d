// Target (o), the undici floor, run as its own child process:
//   node bench/perf/floor-undici.ts --port N --upstream http://127.0.0.1:M
// A node:http server that forwards every request with mcp-warden's own Forwarder (src/proxy/forward.ts,
// undici's Pool through its dispatcher API) and the same request-header scrubbing, with its default
// limits and V8 flag: what forwarding costs with the engine mcp-warden adopted in issue 24, before anything of
// mcp-warden's own (token, stages, logs, metrics, audit). (c) minus (o) is what mcp-warden adds to its engine.
// First, as in mcp-warden's command line: V8's allocation-site pretenuring off (src/lifecycle/gc-flags.ts).
import '../../src/lifecycle/gc-flags.ts';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import type { Principal } from '../../src/auth/principal.ts';
import { Forwarder } from '../../src/proxy/forward.ts';
import { createRequestHeaderScrubber } from '../../src/proxy/request-headers.ts';

/** mcp-warden's defaults: limits.max_connections, upstream.connect_timeout and upstream.timeout. */
const MAX_SOCKETS = 1024;
const CONNECT_TIMEOUT_MS = 5_000;
const RESPONSE_TIMEOUT_MS = 60_000;
const NOBODY: Principal = { issuer: 'bench', subject: 'bench', clientId: undefined, scopes: new Set(), expiresAt: undefined, claims: {} };

function main(): void {
  const { values } = parseArgs({ options: { port: { type: 'string' }, upstream: { type: 'string' } }, strict: true });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port <= 0 || !values.upstream) throw new Error('--port and --upstream are required');
  const forwarder = new Forwarder({ target: values.upstream, connectTimeoutMs: CONNECT_TIMEOUT_MS, responseTimeoutMs: RESPONSE_TIMEOUT_MS, maxSockets: MAX_SOCKETS });
  const scrub = createRequestHeaderScrubber({ injectedNames: [] });
  const server = createServer((req, res) => {
    req.headers = scrub(req.headers, false);
    forwarder.forward({ req, res, principal: NOBODY, inject: {}, body: undefined });
  });
  server.listen(port, '127.0.0.1');
  process.on('SIGTERM', () => process.exit(0));
}

main();
