import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { connectionListed, HOP_BY_HOP } from './hop-by-hop.ts';

/** The upstream's response headers as they may go to the client, without those named in `drop`. */
export function clientResponseHeaders(upstream: IncomingHttpHeaders, drop: ReadonlySet<string> = new Set()): OutgoingHttpHeaders {
  const listed = upstream.connection === undefined ? undefined : new Set(connectionListed(upstream.connection));
  const headers: OutgoingHttpHeaders = {};
  for (const name in upstream) {
    const value = upstream[name];
    // The upstream's own challenge would send MCP clients to the wrong authorization server.
    if (value === undefined || HOP_BY_HOP.has(name) || listed?.has(name) || drop.has(name) || name === 'www-authenticate') continue;
    headers[name] = value;
  }
  return headers;
}

export function isEventStream(headers: IncomingHttpHeaders): boolean {
  return (headers['content-type'] ?? '').toLowerCase().startsWith('text/event-stream');
}
