// The self-contained demo: a real authorization server, an MCP server with no auth at all, and
// mcp-warden in front of it, all on 127.0.0.1 with embedded defaults. `npm run demo`.
import { validateConfig } from '../src/config/load.ts';
import { startWarden } from '../src/server.ts';
import { startAuthorizationServer } from './authorization-server.ts';
import { startMcpServer } from './mcp-server.ts';

const port = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const WARDEN_PORT = port('DEMO_WARDEN_PORT', 8080);
const ADMIN_PORT = port('DEMO_ADMIN_PORT', 9464);
const AS_PORT = port('DEMO_AS_PORT', 4444);
const MCP_PORT = port('DEMO_MCP_PORT', 3000);
const SCOPES = ['mcp:read', 'mcp:write'];
const INSPECTOR_ORIGINS = ['http://localhost:6274', 'http://127.0.0.1:6274'];

const resource = `http://127.0.0.1:${WARDEN_PORT}/mcp`;
const mcp = await startMcpServer({ port: MCP_PORT });
const as = await startAuthorizationServer({ port: AS_PORT, resources: { [resource]: { scopes: SCOPES } } });
const warden = await startWarden(
  validateConfig({
    listen: { host: '127.0.0.1', port: WARDEN_PORT },
    admin: { host: '127.0.0.1', port: ADMIN_PORT },
    resource: { url: resource, name: 'mcp-warden demo', scopes_supported: SCOPES },
    authorization_servers: [{ issuer: as.issuer }],
    tokens: { required_scopes: ['mcp:read'] },
    upstream: { url: mcp.origin, identity_headers: { 'X-MCP-Subject': 'sub' } },
    cors: { allowed_origins: INSPECTOR_ORIGINS },
  }),
);
while (!warden.readiness.ready) await new Promise((resolve) => setTimeout(resolve, 50));

console.error(`
mcp-warden demo is running (Ctrl-C stops it)

  MCP endpoint, protected     ${resource}
  Resource metadata           http://127.0.0.1:${WARDEN_PORT}/.well-known/oauth-protected-resource/mcp
  Authorization server        ${as.issuer}   (oidc-provider; logs you in as demo-user, no form)
  MCP server, no auth         ${mcp.url}   (loopback only; what mcp-warden protects)
  Metrics / readiness         ${warden.adminUrl}/metrics   ${warden.adminUrl}/readyz

Try it:
  npm run demo:client
      the official MCP SDK client registers, completes authorization code + PKCE, and calls a tool
  npx @modelcontextprotocol/inspector
      then connect with Transport "Streamable HTTP" to ${resource}
  curl -i ${resource}
      401 with WWW-Authenticate: Bearer resource_metadata="..."

JSON access logs follow on stdout.
`);

const stop = async () => {
  await warden.shutdown();
  await Promise.all([as.close(), mcp.close()]);
  process.exit(0);
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
