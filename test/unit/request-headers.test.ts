import type { IncomingHttpHeaders } from 'node:http';
import { describe, expect, it } from 'vitest';
import { decodeHeaderValue, headerBodyMismatch } from '../../src/mcp/request-headers.ts';
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
    expect(scrub(headers, false)).toEqual({
      'mcp-session-id': 'abc',
      'mcp-protocol-version': '2025-11-25',
      'last-event-id': '42',
      'mcp-method': 'tools/call',
      'content-type': 'application/json',
    });
  });

  it('never lets a client name an injected header in Connection to have it dropped', () => {
    const headers: IncomingHttpHeaders = { connection: 'close, x-api-key, authorization' };
    expect(scrub(headers, false)).toEqual({});
  });

  it('drops Accept-Encoding, in any spelling, only for an answer the proxy reads', () => {
    const headers: IncomingHttpHeaders = { 'accept-encoding': 'gzip', accept: 'application/json' };
    expect(scrub(headers, false)).toEqual({ 'accept-encoding': 'gzip', accept: 'application/json' });
    expect(scrub({ ...headers, accept_encoding: 'br' }, true)).toEqual({ accept: 'application/json' });
  });
});

describe('2026-07-28 header values against the body', () => {
  const message = (target: string) => [{ method: 'tools/call', target }] as unknown as Parameters<typeof headerBodyMismatch>[1];

  it('decodes a =?base64?…?= Mcp-Name before comparing it, so a non-ASCII tool name matches its body', () => {
    expect(decodeHeaderValue('=?base64?SGVsbG8sIOS4lueVjA==?=')).toBe('Hello, 世界');
    expect(headerBodyMismatch({ 'mcp-method': 'tools/call', 'mcp-name': '=?base64?SGVsbG8sIOS4lueVjA==?=' }, message('Hello, 世界'), false)).toBeUndefined();
    expect(headerBodyMismatch({ 'mcp-method': 'tools/call', 'mcp-name': '=?base64?SGVsbG8sIOS4lueVjA==?=' }, message('delete_all'), false)).toBe('Mcp-Name does not match the body');
  });

  it('leaves a value that is not canonical Base64 of UTF-8 as sent, so it matches nothing it does not spell', () => {
    for (const value of ['=?base64?SGVsbG8?=', '=?base64?not base64?=', '=?BASE64?SGk=?=', '=?base64?/w==?=']) expect(decodeHeaderValue(value)).toBe(value);
    expect(headerBodyMismatch({ 'mcp-name': '=?base64?/w==?=' }, message('\ufffd'), false)).toBe('Mcp-Name does not match the body');
  });
});
