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
  if (name !== undefined && (typeof name === 'string' ? decodeHeaderValue(name) : name) !== message?.target) return 'Mcp-Name does not match the body';
  return undefined;
}

const ENCODED = /^=\?base64\?([A-Za-z0-9+/]*={0,2})\?=$/;
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A 2026-07-28 header value as the client meant it: `=?base64?{Base64 of UTF-8}?=` decoded (Streamable
 * HTTP, "Value Encoding"), anything else as it is. Only canonical Base64 of well-formed UTF-8 is
 * decoded; any other value stays as sent, so it cannot match a body it does not spell.
 */
export function decodeHeaderValue(value: string): string {
  const encoded = ENCODED.exec(value)?.[1];
  if (encoded === undefined) return value;
  const bytes = Buffer.from(encoded, 'base64');
  if (bytes.toString('base64') !== encoded) return value;
  try {
    return UTF8.decode(bytes);
  } catch {
    return value;
  }
}
