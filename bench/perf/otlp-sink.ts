// The OpenTelemetry collector stand-in for (n), run as its own child process: `node bench/perf/otlp-sink.ts --port N`.
// It must cost mcp-warden nothing a real collector would not, and never be the bottleneck, so it accepts and
// discards, without parsing:
//   POST /v1/traces -> 200 {} once the body is read (what an OTLP/HTTP collector answers a full success)
//   GET  /_stats    -> {"exports": n, "bytes": n}, so the bench can see that spans were sent
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';

const OK = Buffer.from('{}');
const OK_HEADERS = { 'content-type': 'application/json', 'content-length': String(OK.length) };

let exports = 0;
let bytes = 0;

function handle(req: IncomingMessage, res: ServerResponse): void {
  if (req.method === 'POST' && req.url === '/v1/traces') {
    req.on('data', (chunk: Buffer) => (bytes += chunk.length));
    req.once('end', () => {
      exports += 1;
      res.writeHead(200, OK_HEADERS);
      res.end(OK);
    });
    return;
  }
  if (req.method === 'GET' && req.url === '/_stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ exports, bytes }));
    return;
  }
  res.writeHead(404, { 'content-length': '0' });
  res.end();
}

function main(): void {
  const { values } = parseArgs({ options: { port: { type: 'string' } }, strict: true });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port <= 0) throw new Error('--port is required');
  createServer({ keepAliveTimeout: 5_000 }, handle).listen(port, '127.0.0.1');
  process.on('SIGTERM', () => process.exit(0));
}

main();
