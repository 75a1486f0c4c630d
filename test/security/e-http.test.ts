import { readdirSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFaultyServer } from '../helpers/jwks-server.ts';
import { claims, expectRefused, forge, post, rawExchange, startStack, statusOf, validToken, type Stack } from './helpers.ts';

const UPSTREAM_KEY = 'upstream-key-e-55d1';
let stack: Stack;
let host: string;

beforeAll(async () => {
  process.env.WARDEN_TEST_E_UPSTREAM_KEY = UPSTREAM_KEY;
  stack = await startStack((base) => {
    const port = (base.listen as { port: number }).port;
    return {
      ...base,
      listen: { ...(base.listen as object), allowed_hosts: [`127.0.0.1:${port}`] },
      tokens: { ...(base.tokens as object), required_scopes: ['mcp:read'] },
      upstream: { ...(base.upstream as object), credential: { type: 'header', name: 'X-Api-Key', value: '${env:WARDEN_TEST_E_UPSTREAM_KEY}' } },
      // Rules make the proxy read bodies, which is what max_body_bytes bounds.
      policy: { rules: [{ match: { method: 'tools/call', tool: 'delete_*' }, scopes: ['mcp:admin'] }], max_body_bytes: 65_536 },
      cors: { allowed_origins: ['https://app.example'] },
      limits: { headers_timeout: '1s', request_timeout: '2s', max_streams: 4, max_streams_per_principal: 2, max_connections_per_ip: 40 },
    };
  });
  host = new URL(stack.mcpUrl).host;
});
afterAll(async () => {
  await stack?.close();
});

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const PING = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' });
const jsonLines = ['Content-Type: application/json', 'Accept: application/json, text/event-stream', `Content-Length: ${PING.length}`];
const lastRecorded = () => stack.mcp.requests.at(-1)!;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Raw request text with a valid token, for cases fetch cannot express. */
async function raw(lines: string[], body = '', token?: string): Promise<{ response: string; closed: boolean }> {
  const auth = token === undefined ? `Authorization: Bearer ${await validToken(stack)}` : token;
  return rawExchange(stack.mcpUrl, [lines[0], `Host: ${host}`, ...(auth ? [auth] : []), ...lines.slice(1), '', body].join('\r\n'));
}

/** Opens an MCP session with `token`; returns the headers that name it. */
async function openSession(token: string): Promise<Record<string, string>> {
  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...bearer(token) };
  const init = await post(stack, bearer(token));
  await init.text();
  const session = { 'mcp-session-id': init.headers.get('mcp-session-id')!, 'mcp-protocol-version': '2025-11-25' };
  await (await fetch(stack.mcpUrl, { method: 'POST', headers: { ...headers, ...session }, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) })).text();
  return session;
}

const openStream = (token: string, session: Record<string, string>, signal?: AbortSignal) =>
  fetch(stack.mcpUrl, { headers: { accept: 'text/event-stream', ...bearer(token), ...session }, ...(signal ? { signal } : {}) });

describe('E. reverse-proxy and HTTP-layer attacks', () => {
  it('SEC-E01 Content-Length with Transfer-Encoding, odd codings and duplicate lengths get 400 and a closed connection; the lenient parser is never on', async () => {
    const before = stack.mcp.requests.length;
    for (const headers of [
      ['Content-Length: 4', 'Transfer-Encoding: chunked'],
      ['Transfer-Encoding: chunked, identity'],
      ['Content-Length: 4', 'Content-Length: 5'],
    ]) {
      const { response, closed } = await raw(['POST /mcp HTTP/1.1', 'Content-Type: application/json', ...headers], '0\r\n\r\n');
      expect(statusOf(response), headers.join(' ')).toBe(400);
      expect(closed).toBe(true);
    }
    expect(stack.mcp.requests.length).toBe(before);
    const sources = readdirSync(new URL('../../src/', import.meta.url), { recursive: true, encoding: 'utf8' }).filter((name) => name.endsWith('.ts'));
    for (const name of sources) expect(readFileSync(new URL(`../../src/${name}`, import.meta.url), 'utf8'), name).not.toMatch(/insecureHTTPParser|insecure-http-parser/);
    expect(process.execArgv.join(' ') + (process.env.NODE_OPTIONS ?? '')).not.toContain('insecure-http-parser');
  });

  it('SEC-E02 obs-fold, bare CR and a missing CRLF get 400', async () => {
    const before = stack.mcp.requests.length;
    const token = await validToken(stack);
    for (const text of [
      `GET /mcp HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${token}\r\nX-Folded: a\r\n b\r\n\r\n`,
      `GET /mcp HTTP/1.1\r\nHost: ${host}\r\nX-Bad: a\rb\r\n\r\n`,
      `GET /mcp HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${token}\r\nContent-Length: 0\r\n\r`,
    ]) {
      const { response } = await rawExchange(stack.mcpUrl, text, 1500);
      // An unfinished header block never becomes a request: the headers timeout answers it with 408.
      expect([400, 408], JSON.stringify(text.slice(-30))).toContain(statusOf(response));
    }
    expect(stack.mcp.requests.length).toBe(before);
  });

  it('SEC-E03 headers a client lists in Connection cannot drop the injected credential', async () => {
    for (const connection of ['close, x-api-key', 'x-api-key, authorization', 'X-Upstream-Key, keep-alive']) {
      const { response } = await raw(['POST /mcp HTTP/1.1', `Connection: ${connection}`, 'X-Api-Key: client-value', ...jsonLines], PING);
      expect(statusOf(response)).toBeGreaterThan(0);
      const seen = lastRecorded();
      expect(seen.headers['x-api-key'], connection).toBe(UPSTREAM_KEY);
      expect(seen.headers.connection ?? '').not.toMatch(/x-api-key|authorization/i);
    }
  });

  it('SEC-E04 hop-by-hop headers and Proxy-Authorization are never forwarded', async () => {
    const before = stack.mcp.requests.length;
    for (const lines of [
      ['Keep-Alive: timeout=99', 'Proxy-Connection: keep-alive', 'TE: trailers', 'Proxy-Authorization: Basic c2VjcmV0OnNlY3JldA=='],
      ['Trailer: X-Checksum', 'Upgrade: websocket'],
    ]) {
      const { response } = await raw(['POST /mcp HTTP/1.1', ...lines, ...jsonLines], PING);
      expect(statusOf(response)).toBeGreaterThan(0);
    }
    expect(stack.mcp.requests.length).toBe(before + 2);
    for (const seen of stack.mcp.requests.slice(-2)) {
      for (const name of ['keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'proxy-authorization']) expect(seen.headers[name], name).toBeUndefined();
    }
  });

  it('SEC-E05 h2c and websocket upgrades get no tunnel: the upgrade headers are stripped and a plain response comes back', async () => {
    for (const upgrade of [['Connection: Upgrade, HTTP2-Settings', 'Upgrade: h2c', 'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA'], ['Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13']]) {
      const { response } = await raw(['GET /mcp HTTP/1.1', 'Accept: text/event-stream', ...upgrade]);
      expect(statusOf(response)).not.toBe(101);
      expect(lastRecorded().headers.upgrade).toBeUndefined();
      expect(lastRecorded().headers['http2-settings']).toBeUndefined();
    }
    const { response } = await raw(['GET /mcp HTTP/1.1', 'Connection: Upgrade', 'Upgrade: h2c'], '', '');
    expect(statusOf(response)).toBe(401);
  });

  it('SEC-E06 client forwarding headers are dropped; the proxy sets its own, and auth never reads them', async () => {
    const spoofed = {
      'x-forwarded-for': '10.0.0.1',
      'x-forwarded-host': 'evil.example',
      'x-forwarded-proto': 'http',
      'x-forwarded-uri': '/.well-known/oauth-protected-resource',
      forwarded: 'for=10.0.0.1;host=evil.example',
      'x-original-url': '/.well-known/oauth-protected-resource',
      'x-rewrite-url': '/.well-known/oauth-protected-resource',
      'x-real-ip': '10.0.0.1',
    };
    const refused = await expectRefused(stack, () => post(stack, spoofed), 401);
    expect(refused.headers.get('www-authenticate')).not.toContain('evil');
    const response = await post(stack, { ...bearer(await validToken(stack)), ...spoofed });
    await response.body?.cancel();
    const seen = lastRecorded().headers;
    expect(seen['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen['x-forwarded-host']).toBe(host);
    expect(seen['x-forwarded-proto']).toBe('http');
    for (const name of ['x-forwarded-uri', 'forwarded', 'x-original-url', 'x-rewrite-url', 'x-real-ip']) expect(seen[name], name).toBeUndefined();
  });

  it('SEC-E07 Host never shapes the metadata or challenge; unknown Hosts get 421, missing or duplicate ones 400', async () => {
    const { response: prm } = await rawExchange(stack.mcpUrl, `GET /.well-known/oauth-protected-resource/mcp HTTP/1.1\r\nHost: ${host}\r\nX-Forwarded-Host: evil.example\r\nConnection: close\r\n\r\n`);
    expect(prm).toContain(`"resource":"${stack.mcpUrl}"`);
    const before = stack.mcp.requests.length;
    expect(statusOf((await rawExchange(stack.mcpUrl, 'GET /mcp HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n')).response)).toBe(421);
    expect(statusOf((await rawExchange(stack.mcpUrl, 'GET /mcp HTTP/1.1\r\nConnection: close\r\n\r\n')).response)).toBe(400);
    expect(statusOf((await rawExchange(stack.mcpUrl, `GET /mcp HTTP/1.1\r\nHost: ${host}\r\nHost: evil.example\r\nConnection: close\r\n\r\n`)).response)).toBe(400);
    expect(stack.mcp.requests.length).toBe(before);
  });

  it('SEC-E08 path tricks: only exact metadata paths are open; ambiguous encodings get 400, the rest need a token', async () => {
    const before = stack.mcp.requests.length;
    const cases: Array<[string, number]> = [
      ['//mcp', 400],
      ['/mcp/../mcp', 400],
      ['/.well-known/oauth-protected-resource/../../mcp', 400],
      ['/.well-known/oauth-protected-resource/%2e%2e/%2e%2e/mcp', 400],
      ['/.well-known%2foauth-protected-resource/mcp', 400],
      ['/.well-known/oauth-protected-resource%5cmcp', 400],
      ['/mcp\\..\\admin', 400],
      ['/mcp#frag', 400],
      ['/MCP', 401],
      ['/mcp/', 401],
      ['/mcp;x=1', 401],
      ['/healthz?/mcp', 401],
      ['/mcp?/.well-known/oauth-protected-resource/mcp', 401],
      ['/.well-known/oauth-protected-resource/mcp/', 401],
      ['/.well-known/OAUTH-protected-resource/mcp', 401],
      ['/.well-known/oauth-protected-resource/mcp?x=1', 200],
    ];
    for (const [path, status] of cases) {
      const { response } = await rawExchange(stack.mcpUrl, `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      expect(statusOf(response), path).toBe(status);
    }
    const token = await validToken(stack);
    for (const path of ['/mcp/..%2f..%2fadmin', '/mcp/./x']) {
      const { response } = await rawExchange(stack.mcpUrl, `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`);
      expect(statusOf(response), path).toBe(400);
    }
    expect(stack.mcp.requests.length).toBe(before);
  });

  it('SEC-E09 health and metrics are matched by path on the admin listener only, never by a header, and it never proxies', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics']) {
      await expectRefused(stack, () => fetch(new URL(path, stack.mcpUrl), { headers: { 'user-agent': 'kube-probe/1.30', 'x-health-check': '1' } }), 401);
    }
    expect((await fetch(`${stack.warden.adminUrl}/healthz`)).status).toBe(200);
    const before = stack.mcp.requests.length;
    const viaAdmin = await fetch(`${stack.warden.adminUrl}/mcp`, { method: 'POST', headers: bearer(await validToken(stack)), body: '{}' });
    expect([404, 405]).toContain(viaAdmin.status);
    expect(stack.mcp.requests.length).toBe(before);
  });

  it('SEC-E10 over 16 KiB of headers, over max_headers lines, or one huge header get 431 before any auth work', async () => {
    const before = stack.mcp.requests.length;
    const token = await validToken(stack);
    const manyLines = Array.from({ length: 150 }, (_, i) => `X-Filler-${i}: v`).join('\r\n');
    const tooBig = Array.from({ length: 40 }, (_, i) => `X-Big-${i}: ${'v'.repeat(500)}`).join('\r\n');
    for (const extra of [manyLines, tooBig, `X-Huge: ${'h'.repeat(20_000)}`]) {
      const { response } = await rawExchange(stack.mcpUrl, `GET /mcp HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${token}\r\n${extra}\r\nConnection: close\r\n\r\n`);
      expect(statusOf(response)).toBe(431);
    }
    // Exactly one line over max_headers (100 here, with Host, Authorization and Connection): the proxy's own check.
    const oneOver = Array.from({ length: 98 }, (_, i) => `X-Filler-${i}: v`).join('\r\n');
    const { response } = await rawExchange(stack.mcpUrl, `GET /mcp HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${token}\r\n${oneOver}\r\nConnection: close\r\n\r\n`);
    expect(statusOf(response)).toBe(431);
    expect(stack.mcp.requests.length).toBe(before);
  });

  it('SEC-E11 dribbled headers and a dribbled body are cut by the timeouts; one IP cannot hold every connection', async () => {
    const { port } = new URL(stack.mcpUrl);
    const dribble = (text: string) =>
      new Promise<{ response: string; ms: number }>((resolve) => {
        const started = performance.now();
        const socket = connect(Number(port), '127.0.0.1', () => socket.write(text));
        let response = '';
        socket.on('data', (chunk) => (response += chunk));
        socket.on('close', () => resolve({ response, ms: performance.now() - started }));
        socket.on('error', () => undefined);
        setTimeout(() => socket.destroy(), 8000);
      });
    const slowHeaders = await dribble(`GET /mcp HTTP/1.1\r\nHost: ${host}\r\nX-Slow: `);
    expect(slowHeaders.ms).toBeLessThan(4000);
    expect(statusOf(slowHeaders.response)).toBe(408);
    const token = await validToken(stack);
    const slowBody = await dribble(`POST /mcp HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"jsonrpc"`);
    expect(slowBody.ms).toBeLessThan(6000);

    const sockets: Socket[] = [];
    const closedEarly: boolean[] = [];
    for (let i = 0; i < 45; i += 1) {
      const socket = connect(Number(port), '127.0.0.1');
      socket.on('error', () => undefined);
      const index = closedEarly.push(false) - 1;
      socket.on('close', () => (closedEarly[index] = true));
      sockets.push(socket);
    }
    await sleep(300);
    expect(closedEarly.filter(Boolean).length).toBeGreaterThan(0);
    for (const socket of sockets) socket.destroy();
    const metrics = await (await fetch(`${stack.warden.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/mcp_warden_connections_dropped_total\{reason="max_connections_per_ip"\} [1-9]/);
    await sleep(200);
  });

  it('SEC-E12 an oversized JSON-RPC body gets 413; Expect: 100-continue with a bad token gets 401 and no 100', async () => {
    const token = await validToken(stack);
    const big = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'x'.repeat(70_000) } } });
    await expectRefused(stack, () => post(stack, bearer(token), '/mcp', big), 413, 'none');

    const before = stack.mcp.requests.length;
    const refused = await rawExchange(stack.mcpUrl, `POST /mcp HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer nope\r\nContent-Type: application/json\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n`);
    expect(refused.response).not.toContain('100 Continue');
    expect(statusOf(refused.response)).toBe(401);
    expect(stack.mcp.requests.length).toBe(before);

    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } });
    const accepted = await new Promise<string>((resolve) => {
      const { port } = new URL(stack.mcpUrl);
      const socket = connect(Number(port), '127.0.0.1', () =>
        socket.write(`POST /mcp HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`),
      );
      let text = '';
      socket.on('data', (chunk) => {
        if (!text.includes('100 Continue') && chunk.toString().includes('100 Continue')) socket.write(body);
        text += chunk;
      });
      socket.on('close', () => resolve(text));
    });
    expect(accepted).toMatch(/^HTTP\/1\.1 100 Continue/);
    expect(accepted).toContain('HTTP/1.1 200');
  });

  it('SEC-E13 open GET streams are capped per principal (429) and in all (503)', async () => {
    const aborts: AbortController[] = [];
    try {
      const token = await validToken(stack, { sub: 'streamer' });
      for (let i = 0; i < 2; i += 1) {
        const controller = new AbortController();
        aborts.push(controller);
        expect((await openStream(token, await openSession(token), controller.signal)).status).toBe(200);
      }
      const third = await openStream(token, await openSession(token));
      expect(third.status).toBe(429);
      expect(third.headers.get('retry-after')).toBe('5');
      await third.body?.cancel();
      for (const sub of ['other-1', 'other-2']) {
        const otherToken = await validToken(stack, { sub });
        const controller = new AbortController();
        aborts.push(controller);
        expect((await openStream(otherToken, await openSession(otherToken), controller.signal)).status).toBe(200);
      }
      const overflowToken = await validToken(stack, { sub: 'other-3' });
      const overflow = await openStream(overflowToken, await openSession(overflowToken));
      expect(overflow.status).toBe(503);
      await overflow.body?.cancel();
      const metrics = await (await fetch(`${stack.warden.adminUrl}/metrics`)).text();
      expect(metrics).toMatch(/mcp_warden_open_streams [4-9]/);
    } finally {
      for (const controller of aborts) controller.abort();
      await sleep(200);
    }
  });

  it('SEC-E14 a standalone GET stream ends when its token expires; the client reconnects with a fresh one', async () => {
    const exp = Math.floor(Date.now() / 1000) + 2;
    const token = await validToken(stack, { sub: 'expiring', exp });
    const stream = await openStream(token, await openSession(token));
    expect(stream.status).toBe(200);
    const started = Date.now();
    const reader = stream.body!.getReader();
    while (!(await reader.read()).done) {
      if (Date.now() - started > 6000) throw new Error('the stream outlived its token');
    }
    expect(Date.now()).toBeGreaterThanOrEqual(exp * 1000 - 50);
  });

  it('SEC-E15 a session id never stands in for a token, nor moves to another principal', async () => {
    const owner = await validToken(stack, { sub: 'owner' });
    const session = await openSession(owner);
    await expectRefused(stack, () => post(stack, session), 401);
    const thief = await validToken(stack, { sub: 'thief' });
    await expectRefused(stack, () => post(stack, { ...bearer(thief), ...session }), 404, 'none');
  });

  it('SEC-E16 a present Origin outside the allowlist gets 403', async () => {
    await expectRefused(stack, () => post(stack, { ...bearer('x'), origin: 'http://evil.example' }), 403, 'none');
    const allowed = await post(stack, { ...bearer(await validToken(stack)), origin: 'https://app.example' });
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example');
    await allowed.body?.cancel();
  });

  it('SEC-E17 preflight is answered without a token and never forwarded; other OPTIONS need a token', async () => {
    const before = stack.mcp.requests.length;
    const good = await fetch(stack.mcpUrl, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' } });
    expect(good.status).toBe(204);
    expect(good.headers.get('access-control-allow-origin')).toBe('https://app.example');
    const bad = await fetch(stack.mcpUrl, { method: 'OPTIONS', headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' } });
    expect(bad.headers.get('access-control-allow-origin')).toBeNull();
    expect(stack.mcp.requests.length).toBe(before);
    await expectRefused(stack, () => fetch(stack.mcpUrl, { method: 'OPTIONS' }), 401);
  });

  it('SEC-E18 HEAD with an expired token gets 401 with the challenge and no body', async () => {
    const expired = await forge(stack, claims(stack, { exp: Math.floor(Date.now() / 1000) - 60 }));
    const { response } = await rawExchange(stack.mcpUrl, `HEAD /mcp HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${expired}\r\nConnection: close\r\n\r\n`);
    expect(statusOf(response)).toBe(401);
    expect(response).toMatch(/WWW-Authenticate: Bearer resource_metadata="[^"]+".*error="invalid_token"/i);
    expect(response.split('\r\n\r\n')[1]).toBe('');
  });
});

describe('SEC-E19 what the upstream answers', () => {
  let upstream: Awaited<ReturnType<typeof startFaultyServer>>;
  let behind: Stack;
  beforeAll(async () => {
    upstream = await startFaultyServer((req, res) => {
      if (req.url === '/mcp/reject') {
        res.writeHead(401, { 'www-authenticate': 'Bearer realm="upstream", authorization_uri="https://wrong-as.example"', 'content-type': 'text/plain' }).end('no');
        return;
      }
      res.writeHead(200, {
        'content-type': 'application/json',
        'set-cookie': 'session=abc; HttpOnly',
        'x-api-key': req.headers['x-api-key'] as string,
        'keep-alive': 'timeout=99',
        'proxy-authenticate': 'Basic',
        connection: 'x-internal',
        'x-internal': 'secret-topology',
      }).end('{}');
    });
    process.env.WARDEN_TEST_E19_KEY = 'e19-upstream-key';
    behind = await startStack((base) => ({
      ...base,
      upstream: { url: upstream.url, credential: { type: 'header', name: 'X-Api-Key', value: '${env:WARDEN_TEST_E19_KEY}' }, strip_response_headers: ['Set-Cookie'] },
    }));
  });
  afterAll(async () => {
    await behind?.close();
    await upstream?.close();
  });

  it("SEC-E19 an upstream 401 becomes 502 without its challenge; cookies, hop-by-hop and echoed credentials are dropped", async () => {
    const token = await validToken(behind);
    const rejected = await post(behind, bearer(token), '/mcp/reject');
    expect(rejected.status).toBe(502);
    expect(rejected.headers.get('www-authenticate')).toBeNull();
    expect(await rejected.json()).toMatchObject({ error: 'upstream_auth_failed' });

    const ok = await post(behind, bearer(token));
    expect(ok.status).toBe(200);
    for (const name of ['set-cookie', 'x-api-key', 'proxy-authenticate', 'x-internal']) expect(ok.headers.get(name), name).toBeNull();
    // Node writes its own Keep-Alive for the client connection; the upstream's never passes.
    expect(ok.headers.get('keep-alive')).not.toBe('timeout=99');
    await ok.body?.cancel();
  });
});
