import { request } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWarden, type Warden } from '../../src/server.ts';
import { startRedis, skipWithoutRedis, type StartedRedis } from '../helpers/redis-server.ts';
import { startStack, type Stack } from '../helpers/stack.ts';
import { expectRefused, post, validToken } from '../security/helpers.ts';

type RawConfig = Record<string, unknown>;
const WINDOW_MS = 2_000;
const withLimits = (limits: RawConfig) => (base: RawConfig) => ({ ...base, limits });
const bearer = async (stack: Stack, sub: string, clientId = 'app-1') => ({ authorization: `Bearer ${await validToken(stack, { sub, client_id: clientId, jti: `${sub}-${clientId}` })}` });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** POSTs an initialize and returns the status, reading the body so the connection is free again. */
async function status(stack: Stack, headers: Record<string, string>, url?: string): Promise<number> {
  const response = await (url ? fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers }, body: INITIALIZE }) : post(stack, headers));
  await response.arrayBuffer();
  return response.status;
}

const INITIALIZE = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'limits-test', version: '1' } } });

/** The same POST from another loopback address (127.0.0.2), which fetch cannot choose. */
function statusFrom(localAddress: string, stack: Stack, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(stack.mcpUrl, { method: 'POST', localAddress, headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    req.end(INITIALIZE);
  });
}

/** Spends a bucket of `limit`: each request is allowed until the last, which is refused with Retry-After and the RateLimit fields. */
async function exhaust(stack: Stack, headers: Record<string, string>, limit: number, scope: string): Promise<void> {
  for (let i = 0; i < limit; i += 1) expect(await status(stack, headers)).toBe(200);
  const refused = await expectRefused(stack, () => post(stack, headers), 429);
  expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  expect(Number(refused.headers.get('retry-after'))).toBeLessThanOrEqual(Math.ceil(WINDOW_MS / 1000));
  expect(refused.headers.get('ratelimit-policy')).toBe(`"${scope}";q=${limit};w=2`);
  expect(refused.headers.get('ratelimit')).toMatch(new RegExp(`^"${scope}";r=0;t=[12]$`));
}

const metricsText = async (warden: Warden) => (await fetch(`${warden.adminUrl}/metrics`)).text();

describe('request rate limits', () => {
  it('per principal: a principal that spent its requests gets 429 until the window refills it; others go on', async () => {
    const stack = await startStack(withLimits({ requests: { per_principal: 3, window: '2s' } }));
    try {
      const alice = await bearer(stack, 'alice');
      await exhaust(stack, alice, 3, 'principal');
      // Same client, same address, another subject: its own bucket.
      expect(await status(stack, await bearer(stack, 'bob'))).toBe(200);
      await sleep(WINDOW_MS);
      for (let i = 0; i < 3; i += 1) expect(await status(stack, alice)).toBe(200);
      expect(await status(stack, alice)).toBe(429);
      const metrics = await metricsText(stack.warden);
      expect(metrics).toMatch(/^mcp_warden_rate_limited_requests_total\{scope="principal"\} 2$/m);
      expect(metrics).toMatch(/^mcp_warden_auth_failures_total\{reason="too_many_requests",issuer="[^"]+"\} 2$/m);
      expect(metrics).not.toMatch(/alice/);
      const lines = stack.logs.filter((line) => line.msg === 'request' && line.reason === 'too_many_requests');
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatchObject({ status: 429, outcome: 'denied', sub: 'alice' });
    } finally {
      await stack.close();
    }
  });

  it('per client: every principal of one client draws from the client bucket; another client is unaffected', async () => {
    const stack = await startStack(withLimits({ requests: { per_client: 3, window: '2s' } }));
    try {
      for (const sub of ['alice', 'bob', 'carol']) expect(await status(stack, await bearer(stack, sub, 'app-1'))).toBe(200);
      const dave = await bearer(stack, 'dave', 'app-1');
      const refused = await expectRefused(stack, () => post(stack, dave), 429);
      expect(refused.headers.get('ratelimit-policy')).toBe('"client";q=3;w=2');
      expect(await status(stack, await bearer(stack, 'erin', 'app-2'))).toBe(200);
      await sleep(WINDOW_MS);
      expect(await status(stack, dave)).toBe(200);
      expect(await metricsText(stack.warden)).toMatch(/^mcp_warden_rate_limited_requests_total\{scope="client"\} 1$/m);
    } finally {
      await stack.close();
    }
  });

  it('per IP: the socket address is the key; X-Forwarded-For and other addresses do not change it', async () => {
    const stack = await startStack(withLimits({ requests: { per_ip: 3, window: '2s' } }));
    try {
      for (const [i, sub] of ['alice', 'bob', 'carol'].entries()) expect(await status(stack, { ...(await bearer(stack, sub)), 'x-forwarded-for': `203.0.113.${i}` })).toBe(200);
      const dave = await bearer(stack, 'dave', 'app-9');
      for (const spoofed of ['203.0.113.7', '127.0.0.2', '::1']) {
        const refused = await expectRefused(stack, () => post(stack, { ...dave, 'x-forwarded-for': spoofed, 'x-real-ip': spoofed, forwarded: `for=${spoofed}` }), 429);
        expect(refused.headers.get('ratelimit-policy')).toBe('"ip";q=3;w=2');
      }
      // A client that really comes from another address has its own bucket.
      expect(await statusFrom('127.0.0.2', stack, dave)).toBe(200);
      await sleep(WINDOW_MS);
      expect(await status(stack, dave)).toBe(200);
      expect(await metricsText(stack.warden)).toMatch(/^mcp_warden_rate_limited_requests_total\{scope="ip"\} 3$/m);
    } finally {
      await stack.close();
    }
  });

  it('follow a reload: limits removed let the next request through bare, limits put back find the bucket as it was left', async () => {
    const stack = await startStack(withLimits({ requests: { per_principal: 2, window: '1m' } }));
    try {
      const alice = await bearer(stack, 'alice');
      for (let i = 0; i < 2; i += 1) expect(await status(stack, alice)).toBe(200);
      expect(await status(stack, alice)).toBe(429);
      const limited = stack.config;
      expect(await stack.warden.reload({ ...limited, limits: { ...limited.limits, requests: { window: 60_000 } } })).toMatchObject({ ok: true });
      const bare = await post(stack, alice);
      await bare.arrayBuffer();
      expect(bare.status).toBe(200);
      expect(bare.headers.get('ratelimit')).toBeNull();
      expect(await stack.warden.reload(limited)).toMatchObject({ ok: true });
      expect(await status(stack, alice)).toBe(429);
    } finally {
      await stack.close();
    }
  });

  it('without limits, answers carry no RateLimit fields', async () => {
    const stack = await startStack();
    try {
      const response = await post(stack, await bearer(stack, 'alice'));
      await response.arrayBuffer();
      expect(response.status).toBe(200);
      expect(response.headers.get('ratelimit')).toBeNull();
      expect(response.headers.get('ratelimit-policy')).toBeNull();
    } finally {
      await stack.close();
    }
  });

  it('with limits, allowed answers say what is left', async () => {
    const stack = await startStack(withLimits({ requests: { per_principal: 5, per_ip: 50, window: '1m' } }));
    try {
      const response = await post(stack, await bearer(stack, 'alice'));
      await response.arrayBuffer();
      expect(response.status).toBe(200);
      expect(response.headers.get('ratelimit-policy')).toBe('"principal";q=5;w=60, "ip";q=50;w=60');
      expect(response.headers.get('ratelimit')).toBe('"principal";r=4;t=0, "ip";r=49;t=0');
    } finally {
      await stack.close();
    }
  });
});

describe.skipIf(skipWithoutRedis)('request rate limits shared through Redis', () => {
  let redis: StartedRedis;
  let stack: Stack;
  let replica: Warden;
  let denying: Warden;
  let redisStopped = false;
  beforeAll(async () => {
    redis = await startRedis();
    process.env.WARDEN_TEST_LIMITS_REDIS = redis.url;
    const limits = { requests: { per_principal: 10, window: '10m' }, store: { type: 'redis', url: '${env:WARDEN_TEST_LIMITS_REDIS}', key_prefix: 'limits-test', timeout: '250ms' } };
    stack = await startStack(withLimits(limits));
    const elsewhere = { listen: { ...stack.config.listen, port: 0 }, admin: { ...stack.config.admin, port: 0 } };
    replica = await startWarden({ ...stack.config, ...elsewhere }, { logger: silent() });
    denying = await startWarden({ ...stack.config, ...elsewhere, limits: { ...stack.config.limits, on_store_error: 'deny' } }, { logger: silent() });
  });
  afterAll(async () => {
    await Promise.all([replica?.shutdown(), denying?.shutdown()]);
    await stack?.close();
    if (!redisStopped) await redis?.close();
    delete process.env.WARDEN_TEST_LIMITS_REDIS;
  });

  it('two replicas share one budget: together they allow at most the limit', async () => {
    const alice = await bearer(stack, 'alice');
    const path = new URL(stack.mcpUrl).pathname;
    const statuses = await Promise.all(Array.from({ length: 30 }, (_, i) => status(stack, alice, i % 2 ? `${replica.url}${path}` : undefined)));
    const allowedHere = statuses.filter((code, i) => code === 200 && i % 2 === 0).length;
    const allowedThere = statuses.filter((code, i) => code === 200 && i % 2 === 1).length;
    expect(allowedHere + allowedThere).toBe(10);
    expect(statuses.filter((code) => code !== 200).every((code) => code === 429)).toBe(true);
    // The third process draws from the same exhausted bucket.
    expect(await status(stack, alice, `${denying.url}${path}`)).toBe(429);
  });

  it('Redis stopped mid-test: on_store_error allow lets requests through, counted and logged sparingly; deny answers 503; each within a second', async () => {
    const bob = await bearer(stack, 'bob');
    const path = new URL(stack.mcpUrl).pathname;
    expect(await status(stack, bob)).toBe(200);
    await redis.close();
    redisStopped = true;
    for (let i = 0; i < 5; i += 1) {
      const started = performance.now();
      expect(await status(stack, bob)).toBe(200);
      expect(performance.now() - started).toBeLessThan(1_000);
    }
    for (let i = 0; i < 3; i += 1) {
      const started = performance.now();
      const response = await fetch(`${denying.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...bob }, body: INITIALIZE });
      expect(response.status).toBe(503);
      expect(response.headers.get('retry-after')).toBeTruthy();
      expect(await response.json()).toMatchObject({ error: 'temporarily_unavailable' });
      expect(performance.now() - started).toBeLessThan(1_000);
    }
    expect(await metricsText(stack.warden)).toMatch(/^mcp_warden_rate_limit_store_errors_total\{action="allow"\} [5-9]$/m);
    expect(await metricsText(denying)).toMatch(/^mcp_warden_rate_limit_store_errors_total\{action="deny"\} 3$/m);
    expect(await metricsText(denying)).toMatch(/^mcp_warden_auth_failures_total\{reason="rate_limit_unavailable",issuer="[^"]+"\} 3$/m);
    expect(stack.logs.filter((line) => line.msg === 'rate limit store failed')).toHaveLength(1);
  });
});

describe('a rate limit store that accepts connections and never answers', () => {
  let silentServer: Server;
  const sockets = new Set<Socket>();
  beforeAll(async () => {
    silentServer = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => silentServer.listen(0, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => silentServer.close(resolve));
    delete process.env.WARDEN_TEST_SILENT_REDIS;
  });

  it('costs a request at most limits.store.timeout, then follows on_store_error', async () => {
    const { port } = silentServer.address() as import('node:net').AddressInfo;
    process.env.WARDEN_TEST_SILENT_REDIS = `redis://127.0.0.1:${port}`;
    const limits = { requests: { per_ip: 100, window: '1m' }, store: { type: 'redis', url: '${env:WARDEN_TEST_SILENT_REDIS}', timeout: '200ms' }, on_store_error: 'deny' };
    const stack = await startStack(withLimits(limits));
    try {
      for (let i = 0; i < 3; i += 1) {
        const started = performance.now();
        expect(await status(stack, await bearer(stack, 'alice'))).toBe(503);
        expect(performance.now() - started).toBeLessThan(1_000);
      }
    } finally {
      await stack.close();
    }
  });
});

function silent() {
  return pino({ level: 'silent' });
}
