// Streamable HTTP with sessions for an SDK McpServer on node:http: one transport per session, the GET
// stream, DELETE, and resumable events, for the demo server.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport, type EventStore } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

const MAX_BODY_BYTES = 1024 * 1024;
const MAX_STORED_EVENTS = 1000;

/** A session's events in memory, so a client can resume a stream with Last-Event-ID. */
export function memoryEventStore(): EventStore {
  const events = new Map<string, { streamId: string; message: JSONRPCMessage }>();
  let counter = 0;
  return {
    async storeEvent(streamId, message) {
      counter += 1;
      const eventId = `${streamId}:${counter}`;
      events.set(eventId, { streamId, message });
      if (events.size > MAX_STORED_EVENTS) events.delete(events.keys().next().value!);
      return eventId;
    },
    async getStreamIdForEventId(eventId) {
      return events.get(eventId)?.streamId;
    },
    async replayEventsAfter(lastEventId, { send }) {
      const streamId = events.get(lastEventId)?.streamId ?? '';
      let after = false;
      for (const [eventId, event] of events) {
        if (after && event.streamId === streamId) await send(eventId, event.message);
        if (eventId === lastEventId) after = true;
      }
      return streamId;
    },
  };
}

export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new Error('body too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export function parseJsonBody(body: Buffer): unknown {
  return body.length === 0 ? undefined : JSON.parse(body.toString('utf8'));
}

export function jsonRpcError(res: ServerResponse, status: number, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message }, id: null }));
}

/** Routes requests to their session's transport; an initialize without a session opens a new one. */
export class StreamableSessions {
  readonly #transports = new Map<string, StreamableHTTPServerTransport>();
  readonly #buildServer: () => McpServer;

  constructor(buildServer: () => McpServer) {
    this.#buildServer = buildServer;
  }

  /** `onBody` sees a POST body as received, before the SDK parses it. */
  async handle(req: IncomingMessage, res: ServerResponse, onBody?: (body: Buffer) => void): Promise<void> {
    const sessionId = req.headers['mcp-session-id'];
    const existing = typeof sessionId === 'string' ? this.#transports.get(sessionId) : undefined;
    if (req.method !== 'POST') {
      if (!existing) return jsonRpcError(res, sessionId ? 404 : 400, sessionId ? 'Session not found' : 'Mcp-Session-Id required');
      return existing.handleRequest(req, res);
    }
    const raw = await readBody(req);
    onBody?.(raw);
    const body = parseJsonBody(raw);
    if (existing) return existing.handleRequest(req, res, body);
    if (sessionId) return jsonRpcError(res, 404, 'Session not found');
    if (!isInitializeRequest(body)) return jsonRpcError(res, 400, 'No session: the first request must be initialize');
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      eventStore: memoryEventStore(),
      onsessioninitialized: (id) => void this.#transports.set(id, transport),
    });
    transport.onclose = () => {
      if (transport.sessionId) this.#transports.delete(transport.sessionId);
    };
    await this.#buildServer().connect(transport);
    await transport.handleRequest(req, res, body);
  }

  async close(): Promise<void> {
    await Promise.all([...this.#transports.values()].map((transport) => transport.close().catch(() => undefined)));
  }
}
