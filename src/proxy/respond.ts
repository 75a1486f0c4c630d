import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';

/** Answers with a small JSON body; a HEAD request gets the headers only. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: OutgoingHttpHeaders = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'cache-control': 'no-store',
    ...headers,
    'content-length': Buffer.byteLength(text),
  });
  res.end(res.req?.method === 'HEAD' ? undefined : text);
}

/** The proxy cannot read the credential it must present upstream: its own fault, never forwarded without one. */
export function sendCredentialUnavailable(res: ServerResponse): void {
  sendJson(res, 503, { error: 'upstream_credential_unavailable', error_description: 'the proxy has no upstream credential' }, { 'retry-after': '5' });
}
