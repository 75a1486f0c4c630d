import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Principal } from '../../src/auth/principal.ts';
import { IntrospectionCache } from '../../src/auth/introspection-cache.ts';
import { LookupLimiter } from '../../src/auth/lookup-limiter.ts';
import { SessionBinding } from '../../src/mcp/session-binding.ts';
import { StreamSlots } from '../../src/proxy/stream-slots.ts';
import { startFaultyServer } from '../helpers/jwks-server.ts';
import { waitFor } from '../helpers/stack.ts';
import { expectRefused, post, startStack, validToken, type Stack } from './helpers.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const dir = mkdtempSync(join(tmpdir(), 'warden-f-'));
const keyFile = join(dir, 'upstream-key');

let upstream: Awaited<ReturnType<typeof startFaultyServer>>;
let stack: Stack;
/** What the fake upstream saw of each request: whether it was aborted before it ended. */
const upstreamEvents: string[] = [];

/** A hand-made upstream for faults the SDK server will not produce: silence, resets, garbage. */
function upstreamBehaviour(req: IncomingMessage, res: ServerResponse): void {
  req.on('close', () => upstreamEvents.push(`${req.url} closed${res.writableEnded ? '' : ' early'}`));
  switch (req.url) {
    case '/mcp/silent':
      return;
    case '/mcp/reset':
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('event: message\ndata: {"n":1}\n\n');
      setTimeout(() => res.socket?.destroy(), 100);
      return;
    case '/mcp/stream':
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('event: message\ndata: {"n":1}\n\n');
      return;
    case '/mcp/garbage':
      res.socket?.end('HTTP/1.1 abc nonsense\r\n\r\n');
      return;
    default:
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","id":1,"result":{}}');
  }
}

beforeAll(async () => {
  writeFileSync(keyFile, 'first-key\n');
  upstream = await startFaultyServer(upstreamBehaviour);
  stack = await startStack((base) => ({
    ...base,
    upstream: { url: upstream.url, response_timeout: '500ms', credential: { type: 'bearer', value: `\${file:${keyFile}}` } },
  }));
});
afterAll(async () => {
  await stack?.close();
  await upstream?.close();
  rmSync(dir, { recursive: true, force: true });
});

const bearer = async () => ({ authorization: `Bearer ${await validToken(stack)}` });
const metrics = async (target: Stack) => (await fetch(`${target.warden.adminUrl}/metrics`)).text();

describe('F. upstream, credential and lifecycle faults', () => {
  it('SEC-F01 an upstream that refuses connections gives 502 with a JSON body and no stack trace, counted', async () => {
    const down = await startStack((base) => ({ ...base, upstream: { url: 'http://127.0.0.1:1' } }));
    try {
      const response = await post(down, { authorization: `Bearer ${await validToken(down)}` });
      expect(response.status).toBe(502);
      const body = await response.text();
      expect(JSON.parse(body)).toEqual({ error: 'upstream_unavailable', error_description: 'the upstream server could not be reached' });
      expect(body).not.toMatch(/ at |Error:/);
      expect(await metrics(down)).toMatch(/mcp_warden_upstream_errors_total\{kind="refused"\} 1/);
    } finally {
      await down.close();
    }
  });

  it('SEC-F02 an upstream that never answers gives 504 after response_timeout, and its socket is closed', async () => {
    const started = performance.now();
    const response = await post(stack, await bearer(), '/mcp/silent');
    expect(response.status).toBe(504);
    expect(performance.now() - started).toBeLessThan(2000);
    await waitFor(() => upstreamEvents.includes('/mcp/silent closed early'), 'the upstream socket closed', 2000);
  });

  it('SEC-F03 an upstream reset mid-stream aborts the client stream (no clean end), once, and the proxy keeps serving', async () => {
    const response = await post(stack, await bearer(), '/mcp/reset');
    expect(response.status).toBe(200);
    await expect(response.text()).rejects.toThrow();
    const ok = await post(stack, await bearer());
    expect(ok.status).toBe(200);
    await ok.text();
    await sleep(50);
    expect(stack.logs.filter((line) => line.msg === 'request' && line.upstream_failure === 'reset')).toHaveLength(1);
  });

  it('SEC-F04 a client that goes away mid-stream gets the upstream request aborted', async () => {
    const controller = new AbortController();
    const response = await fetch(new URL('/mcp/stream', stack.mcpUrl), { headers: { ...(await bearer()), accept: 'text/event-stream' }, signal: controller.signal });
    expect(response.status).toBe(200);
    controller.abort();
    await waitFor(() => upstreamEvents.includes('/mcp/stream closed early'), 'the upstream request aborted', 2000);
    await sleep(50);
    expect(await metrics(stack)).toMatch(/mcp_warden_open_streams 0/);
  });

  it('SEC-F05 a credential file that disappears gives 503 upstream_credential_unavailable, never a request without it', async () => {
    rmSync(keyFile);
    await sleep(2600);
    const before = upstream.hits;
    const response = await post(stack, await bearer());
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({ error: 'upstream_credential_unavailable' });
    expect(upstream.hits).toBe(before);
    writeFileSync(keyFile, 'second-key\n');
    await sleep(2600);
    const recovered = await post(stack, await bearer());
    expect(recovered.status).toBe(200);
    await recovered.text();
  });

  it('SEC-F06 SIGTERM: not ready, no new connections, in-flight requests finish, streams close, all within the grace', async () => {
    const doomed = await startStack((base) => ({ ...base, lifecycle: { shutdown_grace: '3s' } }));
    const auth = { authorization: `Bearer ${await validToken(doomed)}` };
    const init = await post(doomed, auth);
    await init.text();
    const session = { 'mcp-session-id': init.headers.get('mcp-session-id')!, 'mcp-protocol-version': '2025-11-25' };
    const call = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'slow', arguments: { ms: 800 } } });
    const before = doomed.mcp.requests.length;
    const slow = post(doomed, { ...auth, ...session }, '/mcp', call);
    await waitFor(() => doomed.mcp.requests.length > before, 'the slow call reached the upstream');
    const started = performance.now();
    const shutdown = doomed.warden.shutdown();
    expect(doomed.warden.readiness.ready).toBe(false);
    await expect(fetch(doomed.mcpUrl)).rejects.toThrow();
    const response = await slow;
    expect(response.status).toBe(200);
    expect(await response.text()).toContain('"result"');
    await shutdown;
    expect(performance.now() - started).toBeLessThan(3000);
    await doomed.close().catch(() => undefined);
  });

  it('SEC-F07 an unhandled rejection is logged and counted, and the process keeps serving; a malformed upstream answer is a 502', async () => {
    const garbage = await post(stack, await bearer(), '/mcp/garbage');
    expect(garbage.status).toBe(502);
    await garbage.text();
    // Vitest fails any run that sees an unhandled rejection, so the proxy runs in a child process here.
    const fixture = new URL('../fixtures/unhandled-rejection.ts', import.meta.url).pathname;
    const { stdout } = await promisify(execFile)(process.execPath, [fixture], { timeout: 15_000 });
    expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toEqual({ count: '1', alive: 200 });
  });

  it('SEC-F08 every per-token, per-session, per-client and per-principal structure is bounded', async () => {
    const principal = (sub: string): Principal => ({ issuer: 'i', subject: sub, clientId: undefined, scopes: new Set(), expiresAt: undefined, claims: {} });
    const cache = new IntrospectionCache({ maxEntries: 100, maxTtlMs: 60_000, negativeTtlMs: 1000, clockToleranceSeconds: 0, introspect: async (token) => principal(token) });
    for (let i = 0; i < 1000; i += 1) await cache.verify(`token-${i}`);
    expect(cache.size).toBe(100);

    const sessions = new SessionBinding({ maxEntries: 100, idleTtlMs: 60_000 });
    for (let i = 0; i < 1000; i += 1) sessions.bind(`session-${i}`, principal('u'));
    expect(sessions.check('session-0', principal('u'))).toBe('unknown');
    expect(sessions.check('session-999', principal('u'))).toBe('bound');

    const limiter = new LookupLimiter({ perClientPerSecond: 1, maxConcurrent: 2 });
    const admitted = Array.from({ length: 5 }, () => limiter.admit('10.0.0.1'));
    expect(admitted.filter((admission) => admission.ok)).toHaveLength(2);
    for (const admission of admitted) if (admission.ok) admission.done();

    const slots = new StreamSlots({ total: 3, perPrincipal: 2 });
    const taken = ['a', 'a', 'a', 'b', 'c'].map((who) => slots.acquire(who));
    expect(taken.map((slot) => (slot.ok ? 'ok' : slot.refusal))).toEqual(['ok', 'ok', 'too_many_streams', 'ok', 'overloaded']);
    for (const slot of taken) if (slot.ok) slot.release();
    expect(slots.acquire('c').ok).toBe(true);

    expect((await metrics(stack)).match(/^mcp_warden_introspection_cache_entries \d+/m)).toBeTruthy();
    await expectRefused(stack, () => post(stack), 401);
  });
});
