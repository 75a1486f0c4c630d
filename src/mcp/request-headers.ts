import type { IncomingHttpHeaders } from 'node:http';
import type { PeekedMessage } from './json-rpc.ts';

/**
 * The 2026-07-28 `Mcp-Method` / `Mcp-Name` headers mirror the body. Policy decides on the body, so a
 * header that says otherwise is refused (streamable HTTP §6.5): a gateway trusting the header would
 * be fooled by it.
 */
export function headerBodyMismatch(headers: IncomingHttpHeaders, messages: readonly PeekedMessage[], batch: boolean): string | undefined {
  const method = headers['mcp-method'];
  const name = headers['mcp-name'];
  if (method === undefined && name === undefined) return undefined;
  if (batch) return 'Mcp-Method and Mcp-Name describe one message, but the body is a batch';
  const [message] = messages;
  if (method !== undefined && method !== message?.method) return 'Mcp-Method does not match the body';
  if (name !== undefined && name !== message?.target) return 'Mcp-Name does not match the body';
  return undefined;
}
