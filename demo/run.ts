// The self-contained demo: a real authorization server, an MCP server with no auth at all, and
// mcp-warden in front of it, all on 127.0.0.1 with embedded defaults. `npm run demo`.
// `npm run demo -- --broker`: the authorization server is mcp-warden's broker instead, in front of an
// identity provider without dynamic registration or resource indicators.
// `npm run demo -- --stdio`: the MCP server is @modelcontextprotocol/server-everything over stdio, one
// process per MCP session, spawned by mcp-warden (combines with --broker).
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateConfig } from '../src/config/load.ts';
import { startWarden } from '../src/server.ts';
import { startAuthorizationServer } from './authorization-server.ts';
import { startIdentityProvider } from './identity-provider.ts';
import { startMcpServer } from './mcp-server.ts';

const port = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const WARDEN_PORT = port('DEMO_WARDEN_PORT', 8080);
const ADMIN_PORT = port('DEMO_ADMIN_PORT', 9464);
const AS_PORT = port('DEMO_AS_PORT', 4444);
// The broker demo's identity provider is a different server from the plain demo's authorization server:
// on its own port, a client registered with one (the Inspector keeps its registration) is never sent to the other.
const IDP_PORT = port('DEMO_IDP_PORT', 4445);
const MCP_PORT = port('DEMO_MCP_PORT', 3000);
const SCOPES = ['mcp:read', 'mcp:write'];
const INSPECTOR_ORIGINS = ['http://localhost:6274', 'http://127.0.0.1:6274'];

const brokered = process.argv.includes('--broker');
const stdio = process.argv.includes('--stdio');
const origin = `http://127.0.0.1:${WARDEN_PORT}`;
const resource = `${origin}/mcp`;
const mcp = stdio ? undefined : await startMcpServer({ port: MCP_PORT });
const everything = [process.execPath, createRequire(import.meta.url).resolve('@modelcontextprotocol/server-everything/dist/index.js'), 'stdio'];
const upstream = mcp ? { url: mcp.origin, identity_headers: { 'X-MCP-Subject': 'sub' } } : { command: everything, identity_env: { MCP_SUBJECT: 'sub' } };
const storeDir = brokered ? mkdtempSync(join(tmpdir(), 'mcp-warden-demo-')) : undefined;
let as: { issuer: string; close(): Promise<void> };
let trust: Record<string, unknown>;
if (brokered) {
  const idp = await startIdentityProvider({ port: IDP_PORT, redirectUri: `${origin}/oauth/callback`, account: 'demo-user' });
  process.env.DEMO_IDP_CLIENT_SECRET = idp.client.client_secret;
  as = idp;
  trust = {
    broker: {
      identity_provider: { issuer: idp.issuer, client_id: idp.client.client_id, client_secret: '${env:DEMO_IDP_CLIENT_SECRET}', scopes: ['openid', 'email'] },
      store: { type: 'sqlite', path: join(storeDir!, 'broker.db') },
    },
  };
} else {
  as = await startAuthorizationServer({ port: AS_PORT, resources: { [resource]: { scopes: SCOPES } } });
  trust = { authorization_servers: [{ issuer: as.issuer }] };
}
const warden = await startWarden(
  validateConfig({
    listen: { host: '127.0.0.1', port: WARDEN_PORT },
    admin: { host: '127.0.0.1', port: ADMIN_PORT },
    resource: { url: resource, name: 'mcp-warden demo', scopes_supported: SCOPES },
    ...trust,
    tokens: { required_scopes: ['mcp:read'] },
    upstream,
    cors: { allowed_origins: INSPECTOR_ORIGINS },
  }),
);
while (!warden.readiness.ready) await new Promise((resolve) => setTimeout(resolve, 50));

console.error(`
mcp-warden demo is running (Ctrl-C stops it)

  MCP endpoint, protected     ${resource}
  Resource metadata           http://127.0.0.1:${WARDEN_PORT}/.well-known/oauth-protected-resource/mcp
${
  brokered
    ? `  Authorization server        ${origin}   (mcp-warden's broker: registration, a consent page, tokens)
  Identity provider           ${as.issuer}   (oidc-provider without registration; logs you in as demo-user)`
    : `  Authorization server        ${as.issuer}   (oidc-provider; logs you in as demo-user, no form)`
}
  MCP server, no auth         ${mcp ? `${mcp.url}   (loopback only; what mcp-warden protects)` : `${everything.slice(1).join(' ')}   (over stdio, one process per MCP session)`}
  Metrics / readiness         ${warden.adminUrl}/metrics   ${warden.adminUrl}/readyz

Try it:
  npm run demo:client
      the official MCP SDK client registers, completes authorization code + PKCE${brokered ? ' (approving the consent page)' : ''}, and calls a tool
  npx @modelcontextprotocol/inspector
      then connect with Transport "Streamable HTTP" to ${resource}
  curl -i ${resource}
      401 with WWW-Authenticate: Bearer resource_metadata="..."

JSON access logs follow on stdout.
`);

const stop = async () => {
  await warden.shutdown();
  await Promise.all([as.close(), mcp?.close()]);
  if (storeDir) rmSync(storeDir, { recursive: true, force: true });
  process.exit(0);
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
