/** The initialize a preflight sends to an upstream, HTTP or stdio, to see it answer as a server. */
export const PROBE_INITIALIZE = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'mcp-warden check', version: '1' } },
} as const;
