import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectWithOAuth, type OAuthConnection } from '../../demo/oauth-client.ts';
import { startFaultyServer } from '../helpers/jwks-server.ts';
import { startStack, waitFor, type Stack } from '../helpers/stack.ts';

const TWENTY_MB = 20 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 'x');

describe('streams through the proxy', () => {
  let stack: Stack;
  let connection: OAuthConnection;
  beforeAll(async () => {
    stack = await startStack();
    connection = await connectWithOAuth(stack.mcpUrl, { clientName: 'streams' });
  });
  afterAll(async () => {
    await connection?.close();
    await stack?.close();
  });

  it('keeps several concurrent streams of one session apart', async () => {
    const seen: Record<string, number[]> = { a: [], b: [] };
    const call = (name: 'a' | 'b', steps: number) =>
      connection.client.callTool({ name: 'countdown', arguments: { steps, interval_ms: 50 } }, undefined, {
        onprogress: (progress) => seen[name]!.push(progress.progress),
      });
    const [a, b] = await Promise.all([call('a', 3), call('b', 5)]);
    expect([a.content, b.content]).toEqual([[{ type: 'text', text: 'done' }], [{ type: 'text', text: 'done' }]]);
    expect(seen).toEqual({ a: [1, 2, 3], b: [1, 2, 3, 4, 5] });
  });
});

describe('stream mechanics against a fault-injecting upstream', () => {
  let stack: Stack;
  let token: string;
  let written = 0;
  let stalledAt = 0;
  let sentHash = '';
  let resumeUpstream: () => void = () => undefined;
  const upstream = { server: undefined as Awaited<ReturnType<typeof startFaultyServer>> | undefined };

  beforeAll(async () => {
    upstream.server = await startFaultyServer((req, res) => {
      switch (req.url) {
        case '/big':
          return streamBig(res);
        case '/notify':
          req.resume();
          return void res.writeHead(202).end();
        default:
          return void res.writeHead(405, { allow: 'POST', 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","error":{"code":-32000,"message":"Method not allowed."},"id":null}');
      }
    });
    stack = await startStack((base) => ({ ...base, upstream: { url: upstream.server!.url } }));
    token = await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:read' });
  });
  afterAll(async () => {
    await stack?.close();
    await upstream.server?.close();
  });

  /** 20 MB of SSE, written as fast as the proxy lets it: write() returning false is backpressure. */
  function streamBig(res: ServerResponse): void {
    const hash = createHash('sha256');
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const pump = () => {
      while (written < TWENTY_MB) {
        const chunk = written === 0 ? Buffer.concat([Buffer.from('data: '), CHUNK.subarray(6)]) : CHUNK;
        hash.update(chunk);
        written += chunk.length;
        if (!res.write(chunk)) {
          stalledAt ||= written;
          resumeUpstream = () => res.once('drain', pump);
          resumeUpstream();
          return;
        }
      }
      hash.update('\n\n');
      sentHash = hash.digest('hex');
      res.end('\n\n');
    };
    pump();
  }

  it('streams a 20 MB response with backpressure: a client that stops reading stops the upstream', async () => {
    const received = createHash('sha256');
    let bytes = 0;
    await new Promise<void>((resolve, reject) => {
      const req = request(new URL('/big', stack.mcpUrl), { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } }, (res) => {
        expect(res.statusCode).toBe(200);
        res.pause();
        // While the client reads nothing, the upstream must stall well before 20 MB. What it gets out
        // sits in the loopback sockets of both hops (about 8 MB, kernel-tuned); a proxy that buffered
        // would take all 20 MB.
        waitFor(() => stalledAt > 0, 'upstream backpressure', 5000)
          .then(() => new Promise((settle) => setTimeout(settle, 300)))
          .then(() => {
            expect(written).toBeLessThan(15 * 1024 * 1024);
            res.on('data', (chunk: Buffer) => {
              bytes += chunk.length;
              received.update(chunk);
            });
            res.on('end', () => resolve());
            res.resume();
          }, reject);
      });
      req.on('error', reject);
      req.end();
    });
    expect(bytes).toBe(TWENTY_MB + 2);
    expect(received.digest('hex')).toBe(sentHash);
  });

  it('passes a 202 to a notification through as 202 with no body', async () => {
    const response = await fetch(new URL('/notify', stack.mcpUrl), {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    });
    expect(response.status).toBe(202);
    expect(await response.text()).toBe('');
    expect(response.headers.get('content-type')).toBeNull();
  });

  it('passes a stateless (2026-07-28) upstream 405 to GET and DELETE through unchanged', async () => {
    for (const method of ['GET', 'DELETE']) {
      const response = await fetch(new URL('/mcp', stack.mcpUrl), { method, headers: { authorization: `Bearer ${token}` } });
      expect(response.status, method).toBe(405);
      expect(response.headers.get('allow')).toBe('POST');
      expect(await response.json()).toEqual({ jsonrpc: '2.0', error: { code: -32000, message: 'Method not allowed.' }, id: null });
    }
  });
});

describe('the legacy HTTP+SSE transport (2024-11-05)', () => {
  let stack: Stack;
  beforeAll(async () => {
    // Two endpoints (/sse, /messages) make one resource: the origin. The SDK accepts a metadata
    // resource equal to the origin of the URL it connects to.
    stack = await startStack((base) => base, { resourcePath: '' });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('lets the official SDK SSEClientTransport through the OAuth flow to a tool call', async () => {
    const sseUrl = new URL('/sse', stack.mcpUrl).href;
    const connection = await connectWithOAuth(sseUrl, { clientName: 'legacy-sse', legacySse: true });
    try {
      const result = await connection.client.callTool({ name: 'echo', arguments: { text: 'over HTTP+SSE' } });
      expect(result.content).toEqual([{ type: 'text', text: 'over HTTP+SSE' }]);
      const posts = stack.mcp.requests.filter((request) => request.method === 'POST' && request.url.startsWith('/messages?sessionId='));
      expect(posts.length).toBeGreaterThan(0);
      for (const request of stack.mcp.requests) expect(request.headers.authorization).toBeUndefined();
    } finally {
      await connection.close();
    }
  });

  it("refuses another principal's token on a legacy session's POST /messages", async () => {
    const sseUrl = new URL('/sse', stack.mcpUrl).href;
    const connection = await connectWithOAuth(sseUrl, { clientName: 'legacy-owner', legacySse: true });
    try {
      const post = stack.mcp.requests.find((request) => request.method === 'POST' && request.url.startsWith('/messages?sessionId='));
      const sessionId = new URL(post!.url, 'http://x').searchParams.get('sessionId')!;
      const intruder = await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:read' });
      const before = stack.mcp.requests.length;
      const response = await fetch(new URL(`/messages?sessionId=${sessionId}`, stack.mcpUrl), {
        method: 'POST',
        headers: { authorization: `Bearer ${intruder}`, 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 99, method: 'tools/call', params: { name: 'echo', arguments: { text: 'hijack' } } }),
      });
      expect(response.status).toBe(404);
      expect(stack.mcp.requests.length).toBe(before);
      const own = await connection.client.callTool({ name: 'echo', arguments: { text: 'still mine' } });
      expect(own.content).toEqual([{ type: 'text', text: 'still mine' }]);
    } finally {
      await connection.close();
    }
  });

  it('requires a token on both GET /sse and POST /messages', async () => {
    const before = stack.mcp.requests.length;
    const stream = await fetch(new URL('/sse', stack.mcpUrl), { headers: { accept: 'text/event-stream' } });
    expect(stream.status).toBe(401);
    const post = await fetch(new URL('/messages?sessionId=anything', stack.mcpUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(post.status).toBe(401);
    expect(stack.mcp.requests.length).toBe(before);
  });
});

describe('resuming a stream', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack?.close();
  });

  /** Reads SSE events off a fetch body until `count` events with data have arrived. */
  async function readEvents(body: ReadableStream<Uint8Array>, count: number): Promise<Array<{ id?: string; data: string }>> {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    const events: Array<{ id?: string; data: string }> = [];
    let buffer = '';
    while (events.length < count) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) !== -1) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const id = /^id: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (data) events.push({ ...(id ? { id } : {}), data });
      }
    }
    await reader.cancel();
    return events;
  }

  it('resumes a GET stream with Last-Event-ID through the proxy, and needs the token to do so', async () => {
    const token = await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:read' });
    const auth = { authorization: `Bearer ${token}` };
    const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    const init = await fetch(stack.mcpUrl, {
      method: 'POST',
      headers: { ...headers, ...auth },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'resume', version: '1' } } }),
    });
    await init.text();
    const session = { 'mcp-session-id': init.headers.get('mcp-session-id')!, 'mcp-protocol-version': '2025-11-25' };
    await (await fetch(stack.mcpUrl, { method: 'POST', headers: { ...headers, ...auth, ...session }, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) })).text();
    const broadcast = async (id: number, text: string) =>
      (
        await fetch(stack.mcpUrl, {
          method: 'POST',
          headers: { ...headers, ...auth, ...session },
          body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'broadcast', arguments: { text } } }),
        })
      ).text();

    const stream = await fetch(stack.mcpUrl, { headers: { accept: 'text/event-stream', ...auth, ...session } });
    expect(stream.status).toBe(200);
    const firstEvents = readEvents(stream.body!, 1);
    await broadcast(2, 'one');
    const [first] = await firstEvents;
    expect(first!.data).toContain('"one"');
    expect(first!.id).toBeTruthy();
    await broadcast(3, 'two');

    const before = stack.mcp.requests.length;
    const anonymous = await fetch(stack.mcpUrl, { headers: { accept: 'text/event-stream', ...session, 'last-event-id': first!.id! } });
    expect(anonymous.status).toBe(401);
    expect(stack.mcp.requests.length).toBe(before);

    const resumed = await fetch(stack.mcpUrl, { headers: { accept: 'text/event-stream', ...auth, ...session, 'last-event-id': first!.id! } });
    expect(resumed.status).toBe(200);
    const [replayed] = await readEvents(resumed.body!, 1);
    expect(replayed!.data).toContain('"two"');
    expect(stack.mcp.requests.at(-1)!.headers['last-event-id']).toBe(first!.id);
  });
});
