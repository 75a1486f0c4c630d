import type { IncomingHttpHeaders } from 'node:http';
import { describe, expect, it } from 'vitest';
import { createRequestHeaderScrubber } from '../../src/proxy/request-headers.ts';

describe('request header scrubbing', () => {
  const scrub = createRequestHeaderScrubber({ injectedNames: ['x-api-key', 'x-mcp-subject'] });

  it('removes the client token, hop-by-hop headers, spoofable forwarding headers and every variant of injected names', () => {
    const headers: IncomingHttpHeaders = {
      authorization: 'Bearer client-token',
      'proxy-authorization': 'Basic x',
      connection: 'keep-alive, x-custom',
      'keep-alive': 'timeout=5',
      te: 'trailers',
      upgrade: 'h2c',
      'http2-settings': 'AAA',
      'x-custom': 'named in Connection',
      'x-forwarded-for': '10.0.0.1',
      'x-forwarded-host': 'evil.example',
      forwarded: 'for=10.0.0.1',
      'x-original-url': '/admin',
      'x_api_key': 'client-chosen',
      'x-api-key': 'client-chosen',
      'x-mcp_subject': 'admin',
      'mcp-session-id': 'abc',
      'mcp-protocol-version': '2025-11-25',
      'last-event-id': '42',
      'mcp-method': 'tools/call',
      'content-type': 'application/json',
    };
    scrub(headers);
    expect(headers).toEqual({
      'mcp-session-id': 'abc',
      'mcp-protocol-version': '2025-11-25',
      'last-event-id': '42',
      'mcp-method': 'tools/call',
      'content-type': 'application/json',
    });
  });

  it('never lets a client name an injected header in Connection to have it dropped', () => {
    const headers: IncomingHttpHeaders = { connection: 'close, x-api-key, authorization' };
    scrub(headers);
    expect(headers).toEqual({});
  });
});
