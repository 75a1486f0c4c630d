import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Transform, Writable } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import type { AnswerReader } from '../mcp/answers/reader.ts';
import type { EventWatcher, Upstream, UpstreamFailure, UpstreamOutcome, UpstreamRequest } from '../upstream/upstream.ts';
import { clientResponseHeaders, isEventStream } from './response-headers.ts';
import { answerUpstreamAuthFailed, answerUpstreamFailure } from './upstream-failure.ts';

export interface ForwarderOptions {
  readonly target: string;
  readonly connectTimeoutMs: number;
  /** Time to the upstream's response headers; a stream that has started is not cut by it. */
  readonly responseTimeoutMs: number;
  /** Called when an event-stream response starts, with a function that ends it cleanly. */
  readonly onStreamStart?: (req: IncomingMessage, res: ServerResponse, end: () => void) => void;
  /** Upstream sockets open at once: one per client connection at most (`limits.max_connections`). */
  readonly maxSockets: number;
  /** Response header names (lower case) never passed to the client, besides hop-by-hop ones. */
  readonly dropResponseHeaders?: ReadonlySet<string>;
}

/** Retires an idle upstream socket before a typical upstream closes it: reusing one it is closing is a 502. */
const IDLE_UPSTREAM_SOCKET_MS = 4000;
/** Abort reasons carry no stack worth capturing per request: one of each serves every request. */
const CLIENT_GONE = Object.assign(new Error('the client went away'), { code: 'ECLIENT_GONE' });
const STREAM_ENDED = Object.assign(new Error('the proxy ended the stream'), { code: 'ESTREAM_ENDED' });
const RESPONSE_TIMEOUT = Object.assign(new Error('no response headers in time'), { code: 'ERESPONSE_TIMEOUT' });

/**
 * One request's exchange, which is also its undici handler: one object per request, no promise and no
 * closure on the common path. At this rate each costs measurable CPU, and a WeakMap keyed by requests had
 * V8 promote every request's objects to the old generation, doubling the collector's work.
 */
class Exchange implements UpstreamOutcome, Dispatcher.DispatchHandler {
  readonly started = performance.now();
  headersSeconds: number | undefined = undefined;
  upstreamStatus: number | undefined = undefined;
  failure: UpstreamFailure | undefined = undefined;
  stream = false;
  /** The proxy itself is ending the response (a stream at its token's expiry, shutdown): no failure. */
  closing = false;
  timer: NodeJS.Timeout | undefined = undefined;
  controller: Dispatcher.DispatchController | undefined = undefined;
  /** Where the body goes: the client's response, or the stream rewriting it on the way; none when drained. */
  out: Writable | undefined = undefined;
  tap: AnswerReader | undefined = undefined;
  /** Reads an event stream's chunks alongside, until it has seen enough. */
  watcher: EventWatcher | undefined = undefined;
  readonly res: ServerResponse;
  /**
   * Needed until the response starts. An open event stream keeps its exchange for as long as it lives,
   * so it lets this go then, and with it the injected headers and the request's callbacks.
   */
  request: UpstreamRequest | undefined;
  readonly options: ForwarderOptions;

  constructor(request: UpstreamRequest, options: ForwarderOptions) {
    this.request = request;
    this.res = request.res;
    this.options = options;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // Queued while the client went away or the response timed out: nobody is waiting for it now.
    const { res } = this;
    if (res.destroyed || res.writableEnded) controller.abort(CLIENT_GONE);
  }

  onResponseStart(controller: Dispatcher.DispatchController, status: number, headers: IncomingHttpHeaders, statusMessage?: string): void {
    clearTimeout(this.timer);
    // A stream would otherwise keep its spent timer object for as long as it is open.
    this.timer = undefined;
    const request = this.request!;
    const { req, res } = request;
    if (res.destroyed || res.writableEnded) return controller.abort(CLIENT_GONE);
    // Undici keeps the raw header lines for the whole response, as views into the socket read they came
    // in, whose memory they pin; everything of them that is needed is in `headers`.
    controller.rawHeaders = null;
    this.upstreamStatus = status;
    this.headersSeconds = (performance.now() - this.started) / 1000;
    request.onResponse?.(status, headers);
    if (status === 401 || status === 403) {
      // Its body is read and dropped, so the connection stays reusable.
      this.failure = 'upstream_auth';
      return answerUpstreamAuthFailed(res);
    }
    const { options } = this;
    const outgoing = clientResponseHeaders(headers, options.dropResponseHeaders);
    const answers = request.answers?.(headers);
    const through = answers?.rewrite;
    // A filtered body has a length of its own: it goes out chunked.
    if (through) {
      delete outgoing['content-length'];
      through.once('error', () => res.destroy()).pipe(res);
    } else this.tap = answers?.tap;
    this.out = through ?? res;
    if (isEventStream(headers)) {
      this.stream = true;
      outgoing['x-accel-buffering'] = 'no';
      this.watcher = request.onEventStream?.();
      const end = () => this.#end();
      options.onStreamStart?.(req, res, end);
      request.onStreamStart?.(end);
      this.request = undefined;
    }
    res.writeHead(status, statusMessage, outgoing);
    // A stream's headers go out now, before its first event; other responses send them with the body.
    if (this.stream) res.flushHeaders();
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.tap?.write(chunk);
    if (this.watcher && !this.watcher(chunk)) this.watcher = undefined;
    const out = this.out;
    // The upstream is read no faster than the client takes it.
    if (out && !out.write(chunk)) {
      controller.pause();
      out.once('drain', () => controller.resume());
    }
  }

  onResponseEnd(): void {
    this.tap?.end();
    this.out?.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    clearTimeout(this.timer);
    const { res } = this;
    // The client went, the proxy ended the stream, or the client already has its answer.
    if (this.closing || res.destroyed || res.writableEnded) return;
    // An upstream that breaks off mid-response must break the client's response too: ending it cleanly
    // would pass a truncated stream off as complete, and leaving it open would hang the client.
    if (res.headersSent) {
      this.failure ??= 'reset';
      res.destroy();
      return;
    }
    this.failure ??= failureOf(error);
    answerUpstreamFailure(res, this.failure);
  }

  #end(): void {
    this.closing = true;
    const { res } = this;
    if (this.out !== res) (this.out as Transform | undefined)?.unpipe(res);
    res.end();
    this.controller?.abort(STREAM_ENDED);
  }
}

function failureOf(error: Error): UpstreamFailure {
  switch ((error as NodeJS.ErrnoException).code) {
    case 'ECONNREFUSED':
      return 'refused';
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'connect_timeout';
    case RESPONSE_TIMEOUT.code:
      return 'response_timeout';
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_SOCKET':
      return 'reset';
    default:
      return 'error';
  }
}

/** The exchange rides on the response, for the listeners shared by every request. */
const EXCHANGE = Symbol('mcp-warden undici exchange');
type ExchangeCarrier = ServerResponse & { [EXCHANGE]?: Exchange };

function onClientClose(this: ExchangeCarrier): void {
  const exchange = this[EXCHANGE]!;
  clearTimeout(exchange.timer);
  // A no-op once the upstream's response is complete.
  exchange.controller?.abort(CLIENT_GONE);
}

function onResponseTimeout(exchange: Exchange): void {
  const { res } = exchange;
  if (res.headersSent || res.destroyed) return;
  exchange.failure = 'response_timeout';
  answerUpstreamFailure(res, 'response_timeout');
  // Not yet on a socket (the pool is busy): it is dropped when it gets one.
  exchange.controller?.abort(RESPONSE_TIMEOUT);
}

/**
 * Forwards authorized requests over undici's connection pool, through its dispatcher handler API: no
 * `http.ClientRequest`, no response `IncomingMessage` and no stream between the upstream's socket and
 * the client's response, whose backpressure pauses and resumes the upstream read directly: about half
 * the CPU per request of http-proxy-3 over an http.Agent, which it replaced (issue 24). Hop-by-hop
 * headers are dropped both ways, an upstream 401/403 (a rejection of *our* credential) becomes a 502,
 * SSE is marked unbuffered, and an upstream that breaks mid-stream breaks the client's stream too.
 */
export class Forwarder implements Upstream {
  readonly kind = 'http';
  /** Bytes are streamed through as they come; only the rules make the pipeline read a body first. */
  readonly needsBody = false;
  readonly #pool: Pool;
  readonly #options: ForwarderOptions;
  readonly #host: string;
  /** The target's path (no trailing slash) and query, which http-proxy-3 joined before every request's. */
  readonly #pathPrefix: string;
  readonly #query: string;

  constructor(options: ForwarderOptions) {
    const target = new URL(options.target);
    this.#options = options;
    this.#host = target.host;
    this.#pathPrefix = target.pathname.replace(/\/+$/, '');
    this.#query = target.search.slice(1);
    // As many upstream sockets as client connections may be open: an event stream holds its socket for
    // as long as it lives. A started body is never cut by a timeout; the response timeout is ours.
    this.#pool = new Pool(target.origin, {
      connections: options.maxSockets,
      pipelining: 1,
      connect: { timeout: options.connectTimeoutMs },
      headersTimeout: 0,
      bodyTimeout: 0,
      keepAliveTimeout: IDLE_UPSTREAM_SOCKET_MS,
      keepAliveMaxTimeout: IDLE_UPSTREAM_SOCKET_MS,
      // An upstream's `Keep-Alive: timeout` hint, less a second as Node's agent takes it: undici's default
      // of two would retire every socket of an upstream that announces two seconds (Node's default is 5).
      keepAliveTimeoutThreshold: 1000,
    });
  }

  /** Forwards `request.req` (headers already scrubbed); the outcome is final once `request.res` has closed. */
  forward(request: UpstreamRequest): UpstreamOutcome {
    const { req, res, inject, body } = request;
    const exchange = new Exchange(request, this.#options);
    (res as ExchangeCarrier)[EXCHANGE] = exchange;
    // `close` comes once: `once` would add a wrapper and its scope, which an open stream keeps.
    res.on('close', onClientClose);
    exchange.timer = setTimeout(onResponseTimeout, this.#options.responseTimeoutMs, exchange);
    const headers: Record<string, string | string[] | undefined> = { ...req.headers, ...inject, host: this.#host };
    this.#pool.dispatch({ path: this.#path(req.url ?? '/'), method: req.method as Dispatcher.HttpMethod, headers, body: body ?? bodyStream(req) }, exchange);
    return exchange;
  }

  /** Its credential is a header the pipeline reads and checks before start. */
  missingSecrets(): Array<{ path: string; message: string }> {
    return [];
  }

  /** The upstream owns its sessions; a binding that goes leaves nothing of ours behind. */
  sessionDropped(): void {}

  /** Frees pooled upstream sockets. */
  async close(): Promise<void> {
    await this.#pool.destroy();
  }

  #path(url: string): string {
    if (!this.#query) return this.#pathPrefix + url;
    const queryAt = url.indexOf('?');
    if (queryAt === -1) return `${this.#pathPrefix}${url}?${this.#query}`;
    const extra = url.slice(queryAt + 1);
    return `${this.#pathPrefix}${url.slice(0, queryAt)}?${this.#query}${extra ? `&${extra}` : ''}`;
  }
}

/**
 * The request stream when it carries a body. Transfer-Encoding was scrubbed from the headers as
 * hop-by-hop, so a chunked body is told by the raw headers; a request with neither has none, and
 * handing undici an empty stream would send it chunked.
 */
function bodyStream(req: IncomingMessage): IncomingMessage | undefined {
  const length = req.headers['content-length'];
  if (length !== undefined) return length === '0' ? undefined : req;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === 17 && raw[i]!.toLowerCase() === 'transfer-encoding') return req;
  return undefined;
}
