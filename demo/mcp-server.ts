// A small real MCP server built with the official SDK, with no auth code at all: what mcp-warden
// protects in the demo and the tests. Streamable HTTP with sessions at /mcp, and the legacy HTTP+SSE
// transport (2024-11-05) at /sse + /messages that older servers still speak; bound to 127.0.0.1. It records
// every request it receives, so tests can prove what did (and did not) get through.
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { z } from 'zod';
import { jsonRpcError, parseJsonBody, readBody, StreamableSessions } from './streamable-sessions.ts';

export interface RecordedRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: readonly string[];
  readonly at: number;
  /** The body exactly as received, once read (POST). */
  body?: Buffer;
}

export interface StartedMcpServer {
  /** http://127.0.0.1:PORT */
  readonly origin: string;
  /** origin + /mcp */
  readonly url: string;
  /** Every request that reached this server, in order, recorded before anything else looks at it. */
  readonly requests: RecordedRequest[];
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function buildServer(): McpServer {
  const server = new McpServer({ name: 'mcp-warden-demo-upstream', version: '1.0.0' }, { capabilities: { logging: {} } });
  server.registerTool('echo', { description: 'Returns the text it is given.', inputSchema: { text: z.string() } }, async ({ text }) => ({
    content: [{ type: 'text', text }],
  }));
  server.registerTool(
    'countdown',
    {
      description: 'Sends `steps` progress notifications `interval_ms` apart, each saying when it was sent, then returns "done".',
      inputSchema: { steps: z.number().int().min(1).max(100), interval_ms: z.number().int().min(0).max(10_000) },
    },
    async ({ steps, interval_ms }, extra) => {
      const progressToken = extra._meta?.progressToken;
      for (let step = 1; step <= steps; step += 1) {
        await sleep(interval_ms);
        if (progressToken !== undefined) {
          await extra.sendNotification({
            method: 'notifications/progress',
            params: { progressToken, progress: step, total: steps, message: `sentAt=${Date.now()}` },
          });
        }
      }
      return { content: [{ type: 'text', text: 'done' }] };
    },
  );
  server.registerTool('read_file', { description: 'Pretends to read a file.', inputSchema: { path: z.string() } }, async ({ path }) => ({
    content: [{ type: 'text', text: `contents of ${path}` }],
  }));
  server.registerTool('delete_file', { description: 'Pretends to delete a file: a tool worth guarding.', inputSchema: { path: z.string() } }, async ({ path }) => ({
    content: [{ type: 'text', text: `deleted ${path}` }],
  }));
  server.registerTool(
    'broadcast',
    { description: 'Sends `text` as a log message on the standalone GET stream, not as part of this call.', inputSchema: { text: z.string() } },
    async ({ text }) => {
      await server.server.notification({ method: 'notifications/message', params: { level: 'info', data: text } });
      return { content: [{ type: 'text', text: 'sent' }] };
    },
  );
  server.registerTool('slow', { description: 'Waits `ms` milliseconds, then answers.', inputSchema: { ms: z.number().int().min(0).max(60_000) } }, async ({ ms }) => {
    await sleep(ms);
    return { content: [{ type: 'text', text: `slept ${ms}` }] };
  });
  return server;
}

export async function startMcpServer(options: { port?: number } = {}): Promise<StartedMcpServer> {
  const requests: RecordedRequest[] = [];
  const sessions = new StreamableSessions(buildServer);
  const legacy = new Map<string, SSEServerTransport>();

  /** The 2024-11-05 transport: a GET event stream whose first event names where to POST messages. */
  const handleLegacy = async (req: IncomingMessage, res: ServerResponse, path: string, record: RecordedRequest) => {
    if (path === '/sse' && req.method === 'GET') {
      const transport = new SSEServerTransport('/messages', res);
      legacy.set(transport.sessionId, transport);
      res.on('close', () => legacy.delete(transport.sessionId));
      await buildServer().connect(transport);
      return;
    }
    const sessionId = new URL(req.url ?? '/', 'http://x').searchParams.get('sessionId') ?? '';
    const transport = legacy.get(sessionId);
    if (path !== '/messages' || req.method !== 'POST' || !transport) return jsonRpcError(res, 404, 'Session not found');
    const body = await readBody(req);
    record.body = body;
    await transport.handlePostMessage(req, res, parseJsonBody(body));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, record: RecordedRequest) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === '/sse' || path === '/messages') return handleLegacy(req, res, path, record);
    if (path !== '/mcp') {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    await sessions.handle(req, res, (body) => (record.body = body));
  };

  const server = createServer((req, res) => {
    const record: RecordedRequest = { method: req.method ?? '', url: req.url ?? '', headers: { ...req.headers }, rawHeaders: [...req.rawHeaders], at: Date.now() };
    requests.push(record);
    handle(req, res, record).catch((error: unknown) => {
      if (!res.headersSent) jsonRpcError(res, 500, (error as Error).message);
      else res.destroy();
    });
  });
  server.listen(options.port ?? 0, '127.0.0.1');
  await once(server, 'listening');
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    origin,
    url: `${origin}/mcp`,
    requests,
    async close() {
      await Promise.all([sessions.close(), ...[...legacy.values()].map((transport) => transport.close().catch(() => undefined))]);
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}
