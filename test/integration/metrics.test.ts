import { readFileSync } from 'node:fs';
import { importJWK, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFaultyServer } from '../helpers/jwks-server.ts';
import { startStack, type Stack } from '../helpers/stack.ts';

let stack: Stack;
let upstream: Awaited<ReturnType<typeof startFaultyServer>>;
beforeAll(async () => {
  upstream = await startFaultyServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
  stack = await startStack((base) => ({ ...base, tokens: { ...(base.tokens as object), required_scopes: ['mcp:read'] }, upstream: { url: upstream.url } }));
});
afterAll(async () => {
  await stack?.close();
  await upstream?.close().catch(() => undefined);
});

const metricsText = async () => (await fetch(`${stack.warden.adminUrl}/metrics`)).text();
const call = (authorization?: string, path = '/mcp') => fetch(new URL(path, stack.mcpUrl), { headers: authorization ? { authorization } : {} });

async function expiredToken(): Promise<string> {
  const key = await importJWK(stack.as.signingKey.privateJwk, 'RS256');
  return new SignJWT({ iss: stack.as.issuer, aud: stack.mcpUrl, sub: 'u', scope: 'mcp:read', iat: 1000, exp: 2000 })
    .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: stack.as.signingKey.kid })
    .sign(key);
}

/** Our own series (the process and GC metrics of prom-client come and go with the runtime). */
function ownSeries(text: string): string[] {
  return text.split('\n').filter((line) => line.startsWith('mcp_warden_') && !/^mcp_warden_(process_|nodejs_)/.test(line));
}

describe('metrics', () => {
  it('count a fixed scenario exactly as the golden file says', async () => {
    const read = await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:read' });
    expect((await call(`Bearer ${read}`)).status).toBe(200);
    expect((await call()).status).toBe(401);
    expect((await call(`Bearer ${await expiredToken()}`)).status).toBe(401);
    expect((await call(`Bearer ${await stack.as.mintToken({ resource: 'http://127.0.0.1:1/other', scope: 'mcp:read' })}`)).status).toBe(401);
    expect((await call(`Bearer ${await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:write' })}`)).status).toBe(403);
    await upstream.close();
    expect((await call(`Bearer ${read}`)).status).toBe(502);

    const counters = ownSeries(await metricsText())
      .filter((line) => /^mcp_warden_(requests_total|auth_failures_total|upstream_errors_total)\{/.test(line) && !line.endsWith(' 0'))
      .map((line) => line.replaceAll(stack.as.issuer, '<issuer>'))
      .sort();
    const golden = readFileSync(new URL('../golden/scenario-metrics.txt', import.meta.url), 'utf8').trim().split('\n');
    expect(counters).toEqual(golden);
  });

  it('do not grow new series for random kids, issuers and paths', async () => {
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const junk = (i: number) => `${b64({ alg: 'RS256', typ: 'at+jwt', kid: `kid-${i}-${Math.random()}` })}.${b64({ iss: `https://issuer-${i}.example/${Math.random()}`, exp: 9_999_999_999 })}.c2ln`;
    const send = async (from: number, count: number) => {
      for (let batch = from; batch < from + count; batch += 50) {
        await Promise.all(
          Array.from({ length: 50 }, async (_, j) => {
            const i = batch + j;
            const response = await call(`Bearer ${junk(i)}`, `/p${i}/${Math.random()}?q=${i}`);
            await response.body?.cancel();
          }),
        );
      }
    };
    await send(0, 50);
    const before = ownSeries(await metricsText()).map((line) => line.replace(/ [\d.e+-]+$/, ''));
    await send(50, 1000);
    const after = ownSeries(await metricsText()).map((line) => line.replace(/ [\d.e+-]+$/, ''));
    expect(after.length).toBe(before.length);
    expect(after.filter((series) => /kid-|issuer-\d|\/p\d/.test(series))).toEqual([]);
  });
});
