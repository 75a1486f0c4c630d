/** RFC 9110 §7.6.1 hop-by-hop headers, plus the h2c upgrade header; never forwarded in either direction. */
export const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

/** The header names a `Connection` header lists, lower-cased. */
export function connectionListed(connection: string | string[] | undefined): string[] {
  if (connection === undefined) return [];
  return (Array.isArray(connection) ? connection.join(',') : connection)
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter(Boolean);
}
