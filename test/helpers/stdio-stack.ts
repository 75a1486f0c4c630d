import { createRequire } from 'node:module';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { ClientCapabilities } from '@modelcontextprotocol/sdk/types.js';
import { startStack, type Stack } from './stack.ts';

const root = new URL('../../', import.meta.url).pathname;

/** The project's stdio test server (test/fixtures/stdio-test-server.ts), in one of its modes. */
export const testServer = (mode = 'normal'): string[] => [process.execPath, `${root}test/fixtures/stdio-test-server.ts`, '--mode', mode];

/** `@modelcontextprotocol/server-everything` from npm, over stdio. */
export const serverEverything = (): string[] => [process.execPath, createRequire(import.meta.url).resolve('@modelcontextprotocol/server-everything/dist/index.js'), 'stdio'];

/** A stack whose upstream is a stdio command (the HTTP MCP server it also starts is left unused). */
export function startStdioStack(upstream: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<Stack> {
  return startStack((base) => ({ ...base, ...extra, upstream }));
}

/** The SDK client with a ready token: for tests about the bridge rather than the OAuth flow. */
export async function connectWithToken(mcpUrl: string, token: string, capabilities: ClientCapabilities = {}, prepare?: (client: Client) => void) {
  const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { requestInit: { headers: { authorization: `Bearer ${token}` } } });
  const client = new Client({ name: 'stdio-test', version: '1.0.0' }, { capabilities });
  prepare?.(client);
  await client.connect(transport);
  return { client, transport, close: () => client.close() };
}

/** The text of a tool result's first content item. */
export function textOf(result: unknown): string {
  const content = (result as { content?: Array<{ type: string; text?: string }> }).content;
  return content?.[0]?.text ?? '';
}

/** Whether a process still runs (signal 0 only checks). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Initializes a session with a raw POST; returns the response (its mcp-session-id header names the session). */
export async function initialize(mcpUrl: string, token: string, signal?: AbortSignal): Promise<Response> {
  const response = await fetch(mcpUrl, {
    method: 'POST',
    signal,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }),
  });
  return response;
}
