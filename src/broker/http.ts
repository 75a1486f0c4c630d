import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { readBody } from '../proxy/read-body.ts';
import { sendJson } from '../proxy/respond.ts';

/** Largest form or JSON body an OAuth endpoint reads; a registration or token request is far smaller. */
export const MAX_REQUEST_BYTES = 32 * 1024;

/** Public endpoints a browser-based client calls with fetch: no cookies are involved, so any origin may. */
export const PUBLIC_CORS = {
  'access-control-allow-origin': '*',
  'access-control-allow-headers': 'Authorization, Content-Type, MCP-Protocol-Version, DPoP',
  'access-control-expose-headers': 'DPoP-Nonce',
  'access-control-max-age': '600',
} as const;

/** An OAuth error response (RFC 6749 §5.2, RFC 7591 §3.2.2): fixed descriptions, never echoing a secret. */
export class OAuthError extends Error {
  readonly code: string;
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  /** Why, finer than the code: a fixed string, for the metric label and the log line. */
  readonly reason: string;

  constructor(code: string, description: string, status = 400, headers: Record<string, string> = {}, reason = code) {
    super(description);
    this.name = 'OAuthError';
    this.code = code;
    this.status = status;
    this.headers = headers;
    this.reason = reason;
  }
}

/** A token request refused for `reason`; invalid_client is a 401 (RFC 6749 §5.2). */
export function refusal(code: string, reason: string, description: string): OAuthError {
  return new OAuthError(code, description, code === 'invalid_client' ? 401 : 400, {}, reason);
}

/** 429 for a client over its request rate; there is no OAuth error code for it, so the name says it. */
export function rateLimited(what: string, retryAfterSeconds: number): OAuthError {
  return new OAuthError('rate_limited', `too many ${what}; retry later`, 429, { 'retry-after': String(Math.max(1, retryAfterSeconds)) });
}

export function sendOAuthError(res: ServerResponse, error: OAuthError, headers: OutgoingHttpHeaders = {}): void {
  sendJson(res, error.status, { error: error.code, error_description: error.message }, { ...PUBLIC_CORS, pragma: 'no-cache', ...error.headers, ...headers });
}

export type FormParams = ReadonlyMap<string, string>;

/**
 * Reads an `application/x-www-form-urlencoded` body. A parameter sent twice is refused (RFC 6749 §3.1):
 * which copy counts would otherwise depend on who reads it.
 */
export async function readForm(req: IncomingMessage): Promise<FormParams> {
  if (mediaType(req) !== 'application/x-www-form-urlencoded') throw new OAuthError('invalid_request', 'the body must be application/x-www-form-urlencoded');
  const body = await readBody(req, MAX_REQUEST_BYTES);
  if (!body.ok) throw new OAuthError('invalid_request', 'the request body is too large', 413);
  return singleValued(new URLSearchParams(body.body.toString('utf8')));
}

/** Query or form parameters, each at most once. */
export function singleValued(params: URLSearchParams): FormParams {
  const out = new Map<string, string>();
  for (const [name, value] of params) {
    if (out.has(name)) throw new OAuthError('invalid_request', `the ${name.slice(0, 40)} parameter is repeated`);
    out.set(name, value);
  }
  return out;
}

export async function readJson(req: IncomingMessage): Promise<unknown> {
  if (mediaType(req) !== 'application/json') throw new OAuthError('invalid_client_metadata', 'the body must be application/json');
  const body = await readBody(req, MAX_REQUEST_BYTES);
  if (!body.ok) throw new OAuthError('invalid_client_metadata', 'the request body is too large', 413);
  try {
    return JSON.parse(body.body.toString('utf8'));
  } catch {
    throw new OAuthError('invalid_client_metadata', 'the body is not JSON');
  }
}

function mediaType(req: IncomingMessage): string {
  return (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
}

export function methodNotAllowed(res: ServerResponse, allow: string): void {
  sendJson(res, 405, { error: 'invalid_request', error_description: `use ${allow}` }, { allow });
}

/** Values of the request's cookies by name; a name sent twice counts as absent (it may be a planted copy). */
export function readCookies(req: IncomingMessage): ReadonlyMap<string, string> {
  const cookies = new Map<string, string>();
  const twice = new Set<string>();
  for (const pair of (req.headers.cookie ?? '').split(';')) {
    const at = pair.indexOf('=');
    if (at <= 0) continue;
    const name = pair.slice(0, at).trim();
    if (cookies.has(name)) twice.add(name);
    cookies.set(name, pair.slice(at + 1).trim());
  }
  for (const name of twice) cookies.delete(name);
  return cookies;
}

export function redirect(res: ServerResponse, location: string, headers: OutgoingHttpHeaders = {}): void {
  res.writeHead(303, { location, 'cache-control': 'no-store', 'content-length': '0', ...headers });
  res.end();
}
