// The upstream MCP server stand-in, run as its own child process: `node bench/perf/upstream.ts --port N`.
// It must never be the bottleneck, so it is a bare node:http server, not the MCP SDK:
//   POST /mcp          -> 200 with one fixed JSON-RPC result: the 200-tool list of tool-list.ts when the body
//                         names the method tools/list (a substring check, no parse), else {"result":{}}
//   GET  /mcp          -> an SSE stream: headers only, then idle until the client goes away
//   GET  /mcp?tick=MS&count=N -> an SSE stream with N events, one every MS ms, each carrying its send time
//   GET  /_stats       -> {"openStreams": n}, so the bench can see how many streams reached the upstream
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';
import { LIST_METHOD_MARK, LIST_RESPONSE } from './tool-list.ts';

const RESULT = Buffer.from('{"jsonrpc":"2.0","id":1,"result":{}}');
const RESULT_HEADERS = { 'content-type': 'application/json', 'content-length': String(RESULT.length) };
const LIST = Buffer.from(LIST_RESPONSE);
const LIST_HEADERS = { 'content-type': 'application/json', 'content-length': String(LIST.length) };
/** The bench's bodies are ~100 bytes; only this much of a body is kept to look for the method. */
const MAX_PEEK_BYTES = 64 * 1024;
const MAX_TICK_EVENTS = 10_000;
const MIN_TICK_MS = 10;

let openStreams = 0;

function handle(req: IncomingMessage, res: ServerResponse): void {
  const [path, query = ''] = (req.url ?? '/').split('?');
  if (req.method === 'POST' && path === '/mcp') {
    // Read the whole body (the keep-alive connection can then carry the next request), keeping its start.
    const chunks: Buffer[] = [];
    let kept = 0;
    req.on('data', (chunk: Buffer) => {
      if (kept >= MAX_PEEK_BYTES) return;
      chunks.push(chunk);
      kept += chunk.length;
    });
    req.once('end', () => {
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      const list = body.includes(LIST_METHOD_MARK);
      res.writeHead(200, list ? LIST_HEADERS : RESULT_HEADERS);
      res.end(list ? LIST : RESULT);
    });
    return;
  }
  if (req.method === 'GET' && path === '/mcp') {
    stream(req, res, new URLSearchParams(query));
    return;
  }
  if (req.method === 'GET' && path === '/_stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ openStreams }));
    return;
  }
  res.writeHead(404, { 'content-length': '0' });
  res.end();
}

function stream(req: IncomingMessage, res: ServerResponse, params: URLSearchParams): void {
  openStreams += 1;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.flushHeaders();
  let timer: NodeJS.Timeout | undefined;
  res.once('close', () => {
    openStreams -= 1;
    clearInterval(timer);
  });
  const tickMs = Number(params.get('tick'));
  const count = Math.min(Number(params.get('count')), MAX_TICK_EVENTS);
  if (!(tickMs >= MIN_TICK_MS) || !(count > 0)) return; // an idle stream: nothing is ever written
  let sent = 0;
  timer = setInterval(() => {
    sent += 1;
    // Wall-clock milliseconds with sub-ms precision: the receiver is another process, so a monotonic
    // clock of this one would mean nothing there. A constant offset between the two processes' clocks
    // cancels out, because the bench compares the proxied stream with a direct one.
    const sentAt = performance.timeOrigin + performance.now();
    res.write(`id: ${sent}\ndata: {"sentAt":${sentAt}}\n\n`);
    if (sent >= count) {
      clearInterval(timer);
      res.end();
    }
  }, tickMs);
  req.socket.setNoDelay(true);
}

function main(): void {
  const { values } = parseArgs({ options: { port: { type: 'string' } }, strict: true });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port <= 0) throw new Error('--port is required');
  const server = createServer({ keepAliveTimeout: 5_000 }, handle);
  server.listen(port, '127.0.0.1');
  // The parent ends us with SIGTERM; streams are cut, which is what it wants at that point.
  process.on('SIGTERM', () => process.exit(0));
}

main();
