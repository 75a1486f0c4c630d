import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFaultyServer } from '../helpers/jwks-server.ts';
import { INITIALIZE, MCP_HEADERS, startStack, waitFor, type Stack } from '../helpers/stack.ts';
import { validToken } from '../security/helpers.ts';

describe('what the upstream receives', () => {
  let stack: Stack;
  let token: string;
  beforeAll(async () => {
    process.env.WARDEN_TEST_UPSTREAM_KEY = 'proxy-own-key';
    stack = await startStack((base) => ({
      ...base,
      upstream: {
        ...(base.upstream as object),
        credential: { type: 'header', name: 'X-API-Key', value: '${env:WARDEN_TEST_UPSTREAM_KEY}' },
        identity_headers: { 'X-MCP-Subject': 'sub', 'X-MCP-Client': 'client_id' },
      },
    }));
    token = await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:read' });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('gets the proxy credential and trusted identity headers, never the client token or spoofed copies', async () => {
    const before = stack.mcp.requests.length;
    const response = await fetch(stack.mcpUrl, {
      method: 'POST',
      headers: {
        ...MCP_HEADERS,
        authorization: `Bearer ${token}`,
        'x-api-key': 'client-chosen',
        x_api_key: 'client-chosen',
        'X-MCP-Subject': 'admin',
        x_mcp_client: 'trusted-app',
        'x-forwarded-host': 'evil.example',
        'x-forwarded-for': '10.9.9.9',
        'x-real-ip': '10.9.9.9',
        forwarded: 'for=10.9.9.9',
        'x-request-id': 'req-123',
        'mcp-protocol-version': '2025-11-25',
        'accept-encoding': 'gzip',
      },
      body: INITIALIZE,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-request-id')).toBe('req-123');
    await response.body?.cancel();
    const received = stack.mcp.requests.slice(before);
    expect(received).toHaveLength(1);
    const { headers, rawHeaders } = received[0]!;
    expect(JSON.stringify(rawHeaders)).not.toContain(token);
    expect(JSON.stringify(rawHeaders)).not.toContain('client-chosen');
    expect(headers.authorization).toBeUndefined();
    expect(rawHeaders.filter((_, i) => i % 2 === 0 && /^x[-_]api[-_]key$/i.test(rawHeaders[i]!))).toHaveLength(1);
    expect(headers['x-api-key']).toBe('proxy-own-key');
    expect(headers['x-mcp-subject']).not.toBe('admin');
    expect(headers['x-mcp-client']).not.toBe('trusted-app');
    expect(headers['x-mcp-client']).toBeTruthy();
    expect(headers['x-forwarded-host']).toBe(new URL(stack.mcpUrl).host);
    expect(headers['x-forwarded-proto']).toBe('http');
    expect(headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(headers['x-real-ip']).toBeUndefined();
    expect(headers.forwarded).toBeUndefined();
    expect(headers['x-request-id']).toBe('req-123');
    expect(headers['mcp-protocol-version']).toBe('2025-11-25');
    // No answer of an initialize is read on its way, so the client's encodings pass.
    expect(headers['accept-encoding']).toBe('gzip');
  });

  it('keeps its credential when the client names it in Connection', async () => {
    const before = stack.mcp.requests.length;
    const response = await new Promise<number>((resolve, reject) => {
      const req = request(stack.mcpUrl, {
        method: 'POST',
        headers: { ...MCP_HEADERS, authorization: `Bearer ${token}`, connection: 'close, x-api-key, x-mcp-subject' },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      req.end(INITIALIZE);
    });
    expect(response).toBe(200);
    const { headers } = stack.mcp.requests.slice(before)[0]!;
    expect(headers['x-api-key']).toBe('proxy-own-key');
    expect(headers['x-mcp-subject']).toBeTruthy();
  });
});

describe('identity claims that are not printable ASCII', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack((base) => ({
      ...base,
      upstream: { ...(base.upstream as object), identity_headers: { 'X-MCP-Subject': 'sub', 'X-MCP-Email': 'email' } },
    }));
  });
  afterAll(async () => {
    await stack?.close();
  });

  const send = async (token: string) => {
    const before = stack.mcp.requests.length;
    const response = await fetch(stack.mcpUrl, { method: 'POST', headers: { ...MCP_HEADERS, authorization: `Bearer ${token}` }, body: INITIALIZE });
    expect(response.status).toBe(200);
    await response.body?.cancel();
    const received = stack.mcp.requests.slice(before);
    expect(received).toHaveLength(1);
    return received[0]!;
  };
  const decode = (value: string | string[] | undefined) => {
    const match = typeof value === 'string' ? /^=\?base64\?([A-Za-z0-9+/]+={0,2})\?=$/.exec(value) : null;
    return match ? Buffer.from(match[1]!, 'base64').toString('utf8') : undefined;
  };
  const notSent = () => stack.logs.filter((line) => line.msg === 'identity claim not sent');

  it('reach the upstream encoded as MCP 2026-07-28 header values, which decode to the claims', async () => {
    const { headers } = await send(await validToken(stack, { sub: 'jürgen', email: 'jürgen@example.com' }));
    expect(headers['x-mcp-subject']).toBe('=?base64?asO8cmdlbg==?=');
    expect(decode(headers['x-mcp-subject'])).toBe('jürgen');
    expect(decode(headers['x-mcp-email'])).toBe('jürgen@example.com');
    expect(notSent()).toEqual([]);
  });

  it('never put a subject with CR/LF in a header, and log it once for the principal, without the value', async () => {
    const token = await validToken(stack, { sub: 'a\r\nX-Injected: 1', email: 'a@example.com', client_id: 'crlf-client' });
    for (let i = 0; i < 2; i++) {
      const { headers, rawHeaders } = await send(token);
      expect(headers['x-mcp-subject']).toBeUndefined();
      expect(headers['x-injected']).toBeUndefined();
      expect(headers['x-mcp-email']).toBe('a@example.com');
      expect(JSON.stringify(rawHeaders)).not.toMatch(/injected/i);
    }
    const lines = notSent().filter((line) => line.client_id === 'crlf-client');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, iss: stack.as.issuer, header: 'x-mcp-subject', claim: 'sub', problem: 'control_character' });
    expect(JSON.stringify(notSent())).not.toContain('Injected');
  });
});

describe('upstream faults', () => {
  let stack: Stack;
  let token: string;
  let upstream: Awaited<ReturnType<typeof startFaultyServer>>;
  let upstreamClosedAt = 0;
  let secretFile: string;

  beforeAll(async () => {
    upstream = await startFaultyServer((req, res) => {
      switch (req.url) {
        case '/unauthorized':
          res.writeHead(401, { 'www-authenticate': 'Bearer realm="upstream"', 'content-type': 'text/plain' }).end('upstream says no');
          return;
        case '/silent':
          return;
        case '/idle-stream':
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.flushHeaders();
          setTimeout(() => res.end('data: late\n\n'), 600);
          return;
        case '/endless-stream':
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.write('data: first\n\n');
          res.on('close', () => (upstreamClosedAt = performance.now()));
          return;
        case '/reset-stream':
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.write('data: first\n\n');
          setTimeout(() => res.socket?.destroy(), 100);
          return;
        default:
          res.writeHead(200, { 'content-type': 'application/json', connection: 'x-upstream-secret', 'x-upstream-secret': 'hop' });
          res.end(JSON.stringify({ headers: req.headers }));
      }
    });
    secretFile = join(mkdtempSync(join(tmpdir(), 'warden-secret-')), 'token');
    writeFileSync(secretFile, 'first-secret\n');
    stack = await startStack((base) => ({
      ...base,
      upstream: { url: upstream.url, response_timeout: '300ms', credential: { type: 'bearer', value: `\${file:${secretFile}}` } },
      audit: { tool_calls: false },
    }));
    token = await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:read' });
  });
  afterAll(async () => {
    await stack?.close();
    await upstream?.close();
  });

  const get = (path: string) => fetch(new URL(path, stack.mcpUrl), { headers: { authorization: `Bearer ${token}` } });

  it('turns an upstream 401 into a 502, drops the upstream challenge, and logs both statuses', async () => {
    const response = await get('/unauthorized');
    expect(response.status).toBe(502);
    expect(response.headers.get('www-authenticate')).toBeNull();
    expect(await response.json()).toEqual({ error: 'upstream_auth_failed', error_description: 'the upstream server refused the proxy credential' });
    const requestId = response.headers.get('x-request-id');
    await waitFor(() => stack.logs.some((log) => log.request_id === requestId), 'access log line');
    expect(stack.logs.find((log) => log.request_id === requestId)).toMatchObject({
      status: 502,
      outcome: 'upstream_error',
      upstream_status: 401,
      upstream_failure: 'upstream_auth',
      sub: expect.any(String),
    });
  });

  it('answers 504 when the upstream sends no headers within response_timeout', async () => {
    const started = performance.now();
    const response = await get('/silent');
    expect(response.status).toBe(504);
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('sends stream headers at once, and does not cut a stream quiet for longer than response_timeout', async () => {
    const started = performance.now();
    const response = await get('/idle-stream');
    expect(performance.now() - started).toBeLessThan(300);
    expect(response.status).toBe(200);
    expect(response.headers.get('x-accel-buffering')).toBe('no');
    expect(await response.text()).toBe('data: late\n\n');
  });

  it('streams bodies straight through, uninspected, when neither a policy rule nor the audit needs them', async () => {
    const response = await fetch(new URL('/echo', stack.mcpUrl), { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'text/plain' }, body: 'not json at all' });
    expect(response.status).toBe(200);
    await response.body?.cancel();
  });

  it('drops hop-by-hop response headers, including those the upstream lists in Connection', async () => {
    const response = await get('/echo');
    expect(response.headers.get('x-upstream-secret')).toBeNull();
    const { headers } = (await response.json()) as { headers: Record<string, string> };
    expect(headers.authorization).toBe('Bearer first-secret');
  });

  it('aborts the upstream request within 100 ms of the client going away', async () => {
    const controller = new AbortController();
    const response = await fetch(new URL('/endless-stream', stack.mcpUrl), { headers: { authorization: `Bearer ${token}` }, signal: controller.signal });
    const reader = response.body!.getReader();
    await reader.read();
    upstreamClosedAt = 0;
    const abortedAt = performance.now();
    controller.abort();
    await waitFor(() => upstreamClosedAt > 0, 'upstream close', 2000);
    expect(upstreamClosedAt - abortedAt).toBeLessThan(100);
  });

  it('breaks the client stream promptly when the upstream resets mid-stream', async () => {
    const response = await get('/reset-stream');
    const started = performance.now();
    await expect(response.text()).rejects.toThrow();
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('re-reads a file credential when the file changes, with no restart', async () => {
    writeFileSync(secretFile, 'rotated-secret\n');
    const deadline = Date.now() + 8000;
    let seen = '';
    while (Date.now() < deadline) {
      const { headers } = (await (await get('/echo')).json()) as { headers: Record<string, string> };
      seen = headers.authorization ?? '';
      if (seen === 'Bearer rotated-secret') break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(seen).toBe('Bearer rotated-secret');
  });

  it('answers 502 when the upstream refuses connections', async () => {
    await upstream.close();
    const response = await get('/echo');
    expect(response.status).toBe(502);
    expect(await response.json()).toMatchObject({ error: 'upstream_unavailable' });
  });
});

describe('upstream keep-alive', () => {
  it('retires a pooled socket before the upstream closes it, so reuse never races the close', async () => {
    const upstream = createServer((_req, res) => res.end('ok'));
    upstream.keepAliveTimeout = 2000;
    let connections = 0;
    upstream.on('connection', () => (connections += 1));
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');
    const stack = await startStack((base) => ({ ...base, upstream: { url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` } }));
    try {
      const token = await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:read' });
      const get = async () => {
        const response = await fetch(stack.mcpUrl, { headers: { authorization: `Bearer ${token}` } });
        expect(response.status).toBe(200);
        await response.text();
      };
      await get();
      await get();
      expect(connections).toBe(1);
      // The upstream announced timeout=2; past 1s (the hint less Node's one-second margin) the proxy
      // must have dropped the idle socket itself rather than reuse it into the upstream's close.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await get();
      expect(connections).toBe(2);
    } finally {
      await stack.close();
      upstream.closeAllConnections();
      upstream.close();
    }
  });
});

describe('key outage', () => {
  it('answers 503 with Retry-After, not 401, when no keys can be fetched, and is not ready', async () => {
    const jwks = await startFaultyServer((_req, res) => res.writeHead(500).end());
    const { validateConfig } = await import('../../src/config/load.ts');
    const { startWarden } = await import('../../src/server.ts');
    const { pino } = await import('pino');
    const config = validateConfig({
      listen: { port: 0 },
      admin: { port: 0 },
      resource: { url: 'http://127.0.0.1:1/mcp' },
      authorization_servers: [{ issuer: 'http://127.0.0.1:2', jwks_uri: `${jwks.url}/jwks` }],
      upstream: { url: 'http://127.0.0.1:3' },
    });
    const warden = await startWarden(config, { logger: pino({ level: 'silent' }) });
    try {
      const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
      const token = `${b64({ alg: 'RS256', typ: 'at+jwt', kid: 'k' })}.${b64({ iss: 'http://127.0.0.1:2', aud: 'http://127.0.0.1:1/mcp', exp: 9_999_999_999 })}.c2ln`;
      const response = await fetch(`${warden.url}/mcp`, { headers: { authorization: `Bearer ${token}` } });
      expect(response.status).toBe(503);
      expect(response.headers.get('retry-after')).toBe('5');
      expect(response.headers.get('www-authenticate')).toBeNull();
      expect((await fetch(`${warden.adminUrl}/readyz`)).status).toBe(503);
      expect((await fetch(`${warden.adminUrl}/healthz`)).status).toBe(200);
    } finally {
      await warden.shutdown();
      await jwks.close();
    }
  });
});
