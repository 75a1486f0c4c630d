// The load generator's HTTP side: one keep-alive undici pool, every request bounded by a timeout, and
// errors sorted into "we aborted it" and "something else went wrong" (which counts against the proxy).
import type { IncomingHttpHeaders } from 'node:http';
import { Agent, request, type Dispatcher } from 'undici';
import type { Outcome } from './stats.ts';

/** No single exchange (headers and body) may take longer than this; a hang becomes a counted timeout. */
export const REQUEST_TIMEOUT_MS = 15_000;

export const MCP_PROTOCOL_VERSION = '2025-11-25';
export const POST_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' } as const;

export interface RequestSpec {
  readonly method: 'GET' | 'POST' | 'DELETE';
  readonly headers: Record<string, string>;
  readonly body?: string;
}

/** An exchange whose headers arrived; the body is still to be read (or cut). */
export interface Opened {
  readonly kind: 'opened';
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Dispatcher.ResponseData['body'];
  /** Cuts the exchange on purpose; reads after this fail with an abort that `classify` calls ours. */
  abort(): void;
  readonly ours: AbortSignal;
  readonly timeout: AbortSignal;
}

export class Client {
  readonly #agent: Agent;
  readonly #url: string;

  constructor(url: string, connections: number) {
    this.#url = url;
    // Keep-alive below the proxy's 5 s server timeout, so a pooled socket is not reused as the server closes it.
    this.#agent = new Agent({ connections, keepAliveTimeout: 4_000, keepAliveMaxTimeout: 4_000 });
  }

  /**
   * Sends a request and returns once the response headers are in (or it failed). Pass `ours` to be able
   * to cut the request before its headers arrive.
   */
  async open(spec: RequestSpec, ours = new AbortController()): Promise<Opened | Outcome> {
    const timeout = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
    try {
      const response = await request(this.#url, {
        dispatcher: this.#agent,
        method: spec.method,
        headers: spec.headers,
        body: spec.body,
        signal: AbortSignal.any([ours.signal, timeout]),
      });
      return { kind: 'opened', status: response.statusCode, headers: response.headers, body: response.body, abort: () => ours.abort(), ours: ours.signal, timeout };
    } catch (error) {
      return classify(error, ours.signal, timeout);
    }
  }

  /** Sends a request and reads the whole body; the common case. */
  async send(spec: RequestSpec): Promise<{ outcome: Outcome; headers?: IncomingHttpHeaders; text?: string }> {
    const opened = await this.open(spec);
    if (opened.kind !== 'opened') return { outcome: opened };
    try {
      const text = await opened.body.text();
      return { outcome: { kind: 'status', status: opened.status, body: text }, headers: opened.headers, text };
    } catch (error) {
      return { outcome: classify(error, opened.ours, opened.timeout) };
    }
  }

  async close(): Promise<void> {
    await this.#agent.destroy();
  }
}

/** Sorts a failed exchange: our own abort is expected; a timeout or a socket error is not. */
export function classify(error: unknown, ours: AbortSignal, timeout: AbortSignal): Outcome {
  if (ours.aborted) return { kind: 'aborted-by-us' };
  if (timeout.aborted) return { kind: 'client-error', code: 'timeout' };
  const code = (error as { code?: unknown }).code;
  return { kind: 'client-error', code: typeof code === 'string' ? code : ((error as Error).name ?? 'unknown') };
}

/** Discards the rest of a body so the socket can go back to the pool; errors here are not interesting. */
export async function drain(opened: Opened): Promise<void> {
  await opened.body.dump().catch(() => undefined);
}

export interface SseEvent {
  readonly id?: string;
  readonly data: string;
}

/**
 * Reads server-sent events from a body and hands each to `onEvent`, until the stream ends or reading
 * fails (our own abort included). Returns how it ended; a failure is returned, never thrown. It does
 * not stop early on purpose: leaving a for-await loop would destroy the stream, and streams are held.
 */
export async function readEvents(opened: Opened, onEvent: (event: SseEvent) => void): Promise<Outcome | { kind: 'end' }> {
  let buffer = '';
  try {
    for await (const chunk of opened.body) {
      buffer += (chunk as Buffer).toString('utf8');
      let boundary: number;
      while ((boundary = buffer.indexOf('\n\n')) !== -1) {
        const event = parseEvent(buffer.slice(0, boundary));
        buffer = buffer.slice(boundary + 2);
        if (event) onEvent(event);
      }
    }
    return { kind: 'end' };
  } catch (error) {
    return classify(error, opened.ours, opened.timeout);
  }
}

function parseEvent(block: string): SseEvent | undefined {
  let id: string | undefined;
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
    else if (line.startsWith('id:')) id = line.slice(3).trim();
  }
  // A priming event (an id with empty data) or a comment line carries no message.
  if (data.length === 0 || data.join('') === '') return undefined;
  return { ...(id ? { id } : {}), data: data.join('\n') };
}

/** The JSON-RPC messages in a response body, whether it came as JSON or as an event stream. */
export function jsonRpcMessages(contentType: string | string[] | undefined, text: string): Array<Record<string, unknown>> {
  const type = String(contentType ?? '');
  try {
    if (type.includes('text/event-stream')) {
      return text
        .split('\n')
        .filter((line) => line.startsWith('data:') && line.slice(5).trim() !== '')
        .map((line) => JSON.parse(line.slice(5)) as Record<string, unknown>);
    }
    if (text.trim() === '') return [];
    const parsed = JSON.parse(text) as unknown;
    return (Array.isArray(parsed) ? parsed : [parsed]) as Array<Record<string, unknown>>;
  } catch {
    return [];
  }
}

/** The text of the first content item of a tools/call result, if the body holds one. */
export function toolText(contentType: string | string[] | undefined, text: string): string | undefined {
  for (const message of jsonRpcMessages(contentType, text)) {
    const content = (message.result as { content?: Array<{ text?: unknown }> } | undefined)?.content;
    if (typeof content?.[0]?.text === 'string') return content[0].text;
  }
  return undefined;
}
