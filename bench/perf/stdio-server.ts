// The stdio MCP server of the bench's stdio part: the official SDK's McpServer over StdioServerTransport
// with one tool, `echo` {message}. Kept to the bare minimum (no logging capability, no other tools) so
// that its start-up is what any small SDK server costs, and its own work per call is as small as it gets:
// what the bench measures beside it is then the bridge, not this server.
//
//   node bench/perf/stdio-server.ts
//
// It exits when its stdin closes (nothing else keeps the event loop alive), as stdio servers do.
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { z } from 'zod';

const server = new McpServer({ name: 'mcp-warden-bench-stdio', version: '1.0.0' });
server.registerTool('echo', { description: 'Returns the message it is given.', inputSchema: { message: z.string() } }, async ({ message }) => ({
  content: [{ type: 'text' as const, text: message }],
}));
await server.connect(new StdioServerTransport());
