import { request, type Dispatcher } from 'undici';

/** Why an outbound fetch to an authorization server failed; used as a bounded metric label. */
export type FetchFailureKind = 'timeout' | 'network' | 'status' | 'too_large' | 'invalid_json';

export class FetchFailure extends Error {
  readonly kind: FetchFailureKind;
  /** The HTTP status, when the failure is one. */
  readonly status: number | undefined;
  /** The RFC 6749 §5.2 `error` code of a 400/401 answer, when `oauthErrors` asked for it. */
  readonly oauthError: string | undefined;

  constructor(kind: FetchFailureKind, message: string, options?: { cause?: unknown; status?: number; oauthError?: string }) {
    super(message, options);
    this.name = 'FetchFailure';
    this.kind = kind;
    this.status = options?.status;
    this.oauthError = options?.oauthError;
  }
}

export interface FetchJsonOptions {
  readonly timeoutMs: number;
  readonly maxBytes: number;
  /** A form POST (introspection); GET when absent. Never part of an error message: it may hold a token. */
  readonly form?: { readonly body: string; readonly headers: Readonly<Record<string, string>> };
  /** Connections with their own rules (trusted CAs, which addresses may be reached); undici's global one otherwise. */
  readonly dispatcher?: Dispatcher;
  /** A token endpoint: the `error` code of a 400 or 401 answer is read (bounded) into the failure. */
  readonly oauthErrors?: boolean;
  /** The headers of a 200 response, before its body is read (e.g. for its Cache-Control). */
  readonly onHeaders?: (headers: Readonly<Record<string, string | string[] | undefined>>) => void;
}

/**
 * Fetches a JSON document from an authorization server: redirects are not followed (a 3xx is an error,
 * so credentials never travel to another origin), the whole exchange is bounded by a timeout, and the
 * body by a size cap checked while it streams in.
 */
export async function fetchJson(url: string, options: FetchJsonOptions): Promise<unknown> {
  const signal = AbortSignal.timeout(options.timeoutMs);
  const verb = options.form ? 'POST' : 'GET';
  let response: Awaited<ReturnType<typeof request>>;
  try {
    response = await request(url, {
      method: verb,
      headers: {
        accept: 'application/json',
        ...(options.form ? { 'content-type': 'application/x-www-form-urlencoded', ...options.form.headers } : {}),
      },
      ...(options.form ? { body: options.form.body } : {}),
      ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
      signal,
    });
  } catch (error) {
    throw signal.aborted
      ? new FetchFailure('timeout', `${verb} ${url} timed out after ${options.timeoutMs} ms`, { cause: error })
      : new FetchFailure('network', `${verb} ${url} failed: ${(error as Error).message}`, { cause: error });
  }
  if (response.statusCode !== 200) {
    const status = response.statusCode;
    const oauthError = options.oauthErrors && (status === 400 || status === 401) ? await errorCodeOf(response, url, verb, options, signal) : undefined;
    if (oauthError === undefined) await response.body.dump().catch(() => undefined);
    throw new FetchFailure('status', `${verb} ${url} answered ${status}${oauthError ? ` ${oauthError}` : ''}`, { status, oauthError });
  }
  options.onHeaders?.(response.headers);
  return parseJson(await readAll(response, url, verb, options, signal), url, verb);
}

/** RFC 6749 §5.2: an error code is a short run of these characters; anything else is not taken. */
const ERROR_CODE = /^[\x20-\x21\x23-\x5b\x5d-\x7e]{1,64}$/;

async function errorCodeOf(response: Awaited<ReturnType<typeof request>>, url: string, verb: string, options: FetchJsonOptions, signal: AbortSignal): Promise<string | undefined> {
  try {
    const body = parseJson(await readAll(response, url, verb, options, signal), url, verb) as { error?: unknown };
    return typeof body?.error === 'string' && ERROR_CODE.test(body.error) ? body.error : undefined;
  } catch {
    return undefined;
  }
}

async function readAll(response: Awaited<ReturnType<typeof request>>, url: string, verb: string, options: FetchJsonOptions, signal: AbortSignal): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of response.body) {
      size += (chunk as Buffer).length;
      if (size > options.maxBytes) {
        response.body.destroy();
        throw new FetchFailure('too_large', `${verb} ${url} sent more than ${options.maxBytes} bytes`);
      }
      chunks.push(chunk as Buffer);
    }
  } catch (error) {
    if (error instanceof FetchFailure) throw error;
    throw signal.aborted
      ? new FetchFailure('timeout', `${verb} ${url} timed out after ${options.timeoutMs} ms`, { cause: error })
      : new FetchFailure('network', `${verb} ${url} failed while reading: ${(error as Error).message}`, { cause: error });
  }
  return Buffer.concat(chunks);
}

function parseJson(body: Buffer, url: string, verb: string): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw new FetchFailure('invalid_json', `${verb} ${url} did not return JSON`, { cause: error });
  }
}
