import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.ts';
import { UpstreamTokenMetrics } from '../../src/observability/upstream-token-metrics.ts';
import { MachineToken } from '../../src/upstream/tokens/machine-token.ts';
import { startFaultyServer } from '../helpers/jwks-server.ts';

const closers: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

/** A token endpoint that answers after `delayMs`, counting requests. */
async function slowEndpoint(delayMs: number) {
  const server = await startFaultyServer((req, res) => {
    req.resume();
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ access_token: `machine-token-${server.hits}`, token_type: 'Bearer', expires_in: 3600 }));
    }, delayMs);
  });
  closers.push(() => server.close());
  return server;
}

function machineToken(tokenEndpoint: string, where: 'token_endpoint' | 'issuer' = 'token_endpoint'): MachineToken {
  process.env.WARDEN_TEST_MACHINE_SECRET = 'machine-secret';
  const config = parseConfigText(`
resource: { url: https://mcp.example.com/mcp }
authorization_servers: [{ issuer: https://idp.example.com }]
upstream: { url: "http://127.0.0.1:3000", credential: { type: client_credentials, ${where}: "${tokenEndpoint}", client_id: w, client_secret: "\${env:WARDEN_TEST_MACHINE_SECRET}" } }
`);
  const credential = config.upstream.credential;
  if (credential.type !== 'client_credentials') throw new Error('unexpected credential');
  const token = new MachineToken(credential, new UpstreamTokenMetrics(new Registry()), pino({ level: 'silent' }));
  closers.push(() => token.close());
  return token;
}

describe('MachineToken', () => {
  it('merges 200 concurrent needs into one token request, then answers from the token it holds without waiting', async () => {
    const endpoint = await slowEndpoint(200);
    const token = machineToken(`${endpoint.url}/token`);
    expect(token.ready).toBe(false);
    const answers = await Promise.all(Array.from({ length: 200 }, () => token.headers()));
    expect(endpoint.hits).toBe(1);
    expect(new Set(answers.map((answer) => JSON.stringify(answer)))).toEqual(new Set([JSON.stringify({ ok: true, headers: { authorization: 'Bearer machine-token-1' } })]));
    expect(token.ready).toBe(true);
    expect(token.headers()).toEqual({ ok: true, headers: { authorization: 'Bearer machine-token-1' } });
  });

  it('answers unavailable, never a header without a token, when the endpoint fails', async () => {
    const endpoint = await startFaultyServer((req, res) => {
      req.resume();
      res.writeHead(500).end();
    });
    closers.push(() => endpoint.close());
    const answer = await machineToken(`${endpoint.url}/token`).headers();
    expect(answer).toMatchObject({ ok: false, problem: expect.stringContaining('answered 500') });
  });

  it('never sends its secret to a discovered token endpoint that is plain http off loopback', async () => {
    const issuer = await startFaultyServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ issuer: `http://127.0.0.1:${new URL(`http://${req.headers.host}`).port}`, token_endpoint: 'http://idp.example.com/token' }));
    });
    closers.push(() => issuer.close());
    const answer = await machineToken(issuer.url, 'issuer').headers();
    expect(answer).toMatchObject({ ok: false, problem: expect.stringContaining('names a token_endpoint that is not https') });
  });
});
