import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerConsent, connectWithOAuth, type OAuthConnection } from '../../demo/oauth-client.ts';
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.ts';

const KEY_ENV = 'WARDEN_TEST_BROKER_ENCRYPTION_KEY';
const ACCESS_TTL_SECONDS = 4;

/**
 * upstream.credential user_token: the upstream gets the identity provider's access token for the user
 * behind the request (an API behind the MCP server needs the user's own token), refreshed with the
 * provider's refresh token ahead of its expiry, and never the client's broker token.
 */
describe('per-user upstream tokens from the identity provider', () => {
  let stack: BrokerStack;
  const connections: OAuthConnection[] = [];

  /** The bearer token the upstream received with its most recent request. */
  const lastUpstreamToken = () => {
    const header = stack.mcp.requests.at(-1)?.headers.authorization;
    expect(header).toMatch(/^Bearer /);
    return header!.slice('Bearer '.length);
  };
  /** Whom the identity provider says a token belongs to (its userinfo endpoint). */
  const ownerOf = async (token: string) => {
    const response = await fetch(`${stack.idp.issuer}/me`, { headers: { authorization: `Bearer ${token}` } });
    return response.status === 200 ? ((await response.json()) as { sub: string }).sub : `userinfo ${response.status}`;
  };
  const connect = async (clientName: string) => {
    const connection = await connectWithOAuth(stack.mcpUrl, { clientName, browser: { cookies: new Map(), onPage: answerConsent('approve') } });
    connections.push(connection);
    return connection;
  };

  beforeAll(async () => {
    process.env[KEY_ENV] = randomBytes(32).toString('base64');
    stack = await startBrokerStack(
      { encryption_key: `\${env:${KEY_ENV}}` },
      {
        idp: { accessTokenTtlSeconds: ACCESS_TTL_SECONDS, refreshTokens: true },
        config: (raw) => ({ ...raw, upstream: { ...(raw.upstream as object), credential: { type: 'user_token', refresh_before: '1s' } } }),
      },
    );
  });
  afterAll(async () => {
    for (const connection of connections) await connection.close();
    await stack?.close();
  });

  it("11.4: the upstream receives the user's identity provider token, a fresh one after it expires, and never the broker token", async () => {
    const alice = await connect('user token: alice');
    const before = stack.mcp.requests.length;
    await alice.client.callTool({ name: 'echo', arguments: { text: 'one' } });
    const first = lastUpstreamToken();
    expect(await ownerOf(first)).toBe('idp-user-1');

    // Past the token's life less refresh_before: the broker refreshes it at the identity provider,
    // once (a refresh_token grant at its token endpoint), with no new login.
    const tokenCalls = stack.idp.requestCount('/token');
    await new Promise((resolve) => setTimeout(resolve, (ACCESS_TTL_SECONDS - 1) * 1000 + 300));
    await Promise.all([1, 2, 3].map((n) => alice.client.callTool({ name: 'echo', arguments: { text: `two ${n}` } })));
    expect(stack.idp.requestCount('/token')).toBe(tokenCalls + 1);
    const second = lastUpstreamToken();
    expect(second).not.toBe(first);
    expect(await ownerOf(second)).toBe('idp-user-1');
    expect(stack.logs.some((log) => log.msg === 'request' && log.status === 503)).toBe(false);

    const brokerTokens = new Set([alice.accessToken()]);
    for (const request of stack.mcp.requests.slice(before)) {
      const token = request.headers.authorization?.slice('Bearer '.length) ?? '';
      expect(brokerTokens.has(token)).toBe(false);
      expect(token.split('.')).not.toHaveLength(3);
    }
  });

  it('gives each user their own token', async () => {
    stack.idp.signInAs('idp-user-2');
    const bob = await connect('user token: bob');
    await bob.client.callTool({ name: 'echo', arguments: { text: 'bob' } });
    expect(await ownerOf(lastUpstreamToken())).toBe('idp-user-2');
  });
});
