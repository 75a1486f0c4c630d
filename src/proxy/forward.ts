import { Agent, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { Stream, type Writable } from 'node:stream';
import { createProxyServer } from 'http-proxy-3';
import type { AnswerReader } from '../mcp/answers/reader.ts';
import type { Upstream, UpstreamFailure, UpstreamOutcome, UpstreamRequest } from '../upstream/upstream.ts';
import { sendJson } from './respond.ts';
import { clientResponseHeaders, isEventStream } from './response-headers.ts';

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

class Exchange implements UpstreamOutcome {
  readonly started = performance.now();
  headersSeconds: number | undefined = undefined;
  timer: NodeJS.Timeout | undefined = undefined;
  upstreamStatus: number | undefined = undefined;
  failure: UpstreamFailure | undefined = undefined;
  stream = false;
  /** The proxy itself is ending the response (shutdown), so an upstream close is no failure. */
  closing = false;
  readonly request: UpstreamRequest;

  constructor(request: UpstreamRequest) {
    this.request = request;
  }
}

/**
 * The exchange rides on the request itself. A WeakMap keyed by requests would be simpler, but V8's
 * young-generation collector treats a WeakMap's values as live, and ours reach the request (through the
 * hooks' closures): every request's objects were promoted to the old generation, and the collector's
 * work doubled the proxy's CPU per request.
 */
const EXCHANGE = Symbol('mcp-warden exchange');
type ExchangeCarrier = IncomingMessage & { [EXCHANGE]?: Exchange };

const RESPONSE_TIMEOUT = 'ERESPONSE_TIMEOUT';
const IDLE_UPSTREAM_SOCKET_MS = 4000;

/**
 * Forwards authorized requests with http-proxy-3 over a keep-alive agent. The response is handled
 * here rather than by http-proxy-3's outgoing passes so that hop-by-hop headers are dropped, an upstream
 * 401/403 (a rejection of *our* credential) becomes a 502, SSE is marked unbuffered, and an upstream that
 * breaks mid-stream breaks the client's stream too instead of leaving it hanging.
 */
export class Forwarder implements Upstream {
  readonly kind = 'http';
  /** Bytes are streamed through as they come; only the rules make the pipeline read a body first. */
  readonly needsBody = false;
  // Up to 256 idle sockets kept: a smaller pool reconnects on every burst past it. The timeout retires an idle socket before the upstream closes it (Node honours the upstream's
  // `Keep-Alive: timeout` hint, less a second, only when the agent has a timeout of its own): reusing
  // a socket the upstream is closing is an ECONNRESET, a 502 for the client. On a busy socket it is
  // only an event nobody acts on, so streams are not cut by it.
  readonly #agent: Agent;
  readonly #proxy;
  readonly #options: ForwarderOptions;

  constructor(options: ForwarderOptions) {
    this.#options = options;
    // As many upstream sockets as client connections may be open: an event stream holds its socket for
    // as long as it lives, and a smaller cap would queue every stream past it until the response timeout.
    this.#agent = new Agent({ keepAlive: true, maxSockets: options.maxSockets, maxFreeSockets: 256, timeout: IDLE_UPSTREAM_SOCKET_MS });
    this.#proxy = createProxyServer({
      target: options.target,
      agent: this.#agent,
      changeOrigin: true,
      xfwd: false,
      ws: false,
      selfHandleResponse: true,
      connectTimeout: options.connectTimeoutMs,
    });
    this.#proxy.on('proxyReq', (proxyReq: ClientRequest, req: IncomingMessage) => this.#armResponseTimeout(proxyReq, req));
    this.#proxy.on('proxyRes', (proxyRes: IncomingMessage, req: IncomingMessage, res: ServerResponse) => this.#respond(proxyRes, req, res));
    this.#proxy.on('econnreset', () => undefined);
  }

  /**
   * Forwards `request.req` (headers already scrubbed). The outcome is filled in as the exchange goes, and
   * is final once `request.res` has closed: no promise per request, as the caller reads it when it logs
   * the request.
   */
  forward(request: UpstreamRequest): UpstreamOutcome {
    const { req, res, inject, body } = request;
    const exchange = new Exchange(request);
    (req as ExchangeCarrier)[EXCHANGE] = exchange;
    res.once('close', () => clearTimeout(exchange.timer));
    this.#proxy.web(req, res, body ? { headers: inject, buffer: new BufferedBody(body) } : { headers: inject }, (error: Error) => this.#fail(error, exchange, res));
    return exchange;
  }

  /** Frees pooled upstream sockets. */
  /** Its credential is a header the pipeline reads and checks before start. */
  missingSecrets(): Array<{ path: string; message: string }> {
    return [];
  }

  /** The upstream owns its sessions; a binding that goes leaves nothing of ours behind. */
  sessionDropped(): void {}

  async close(): Promise<void> {
    this.#proxy.close();
    this.#agent.destroy();
  }

  #armResponseTimeout(proxyReq: ClientRequest, req: IncomingMessage): void {
    const exchange = (req as ExchangeCarrier)[EXCHANGE];
    if (!exchange) return;
    exchange.timer = setTimeout(() => {
      proxyReq.destroy(Object.assign(new Error('no response headers in time'), { code: RESPONSE_TIMEOUT }));
    }, this.#options.responseTimeoutMs);
  }

  #respond(proxyRes: IncomingMessage, req: IncomingMessage, res: ServerResponse): void {
    const exchange = (req as ExchangeCarrier)[EXCHANGE]!;
    clearTimeout(exchange.timer);
    const status = proxyRes.statusCode ?? 502;
    exchange.upstreamStatus = status;
    exchange.headersSeconds = (performance.now() - exchange.started) / 1000;
    exchange.request.onResponse?.(status, proxyRes.headers);
    if (status === 401 || status === 403) {
      proxyRes.resume();
      exchange.failure = 'upstream_auth';
      sendJson(res, 502, { error: 'upstream_auth_failed', error_description: 'the upstream server refused the proxy credential' });
      return;
    }
    const headers = clientResponseHeaders(proxyRes.headers, this.#options.dropResponseHeaders);
    const answers = exchange.request.answers?.(proxyRes.headers);
    const through = answers?.rewrite;
    // A filtered body has a length of its own: it goes out chunked.
    if (through) delete headers['content-length'];
    else if (answers?.tap) tap(proxyRes, answers.tap);
    if (isEventStream(proxyRes.headers)) {
      exchange.stream = true;
      headers['x-accel-buffering'] = 'no';
      exchange.request.onEventStream?.(proxyRes);
      const end = () => {
        exchange.closing = true;
        (through ?? proxyRes).unpipe(res);
        res.end();
        proxyRes.destroy();
      };
      this.#options.onStreamStart?.(req, res, end);
      exchange.request.onStreamStart?.(end);
    }
    res.writeHead(status, proxyRes.statusMessage, headers);
    // A stream's headers go out now, before its first event; other responses send them with the body,
    // in one write instead of two.
    if (exchange.stream) res.flushHeaders();
    if (through) proxyRes.pipe(through.once('error', () => res.destroy())).pipe(res);
    else proxyRes.pipe(res);
    // An upstream that breaks off mid-response must break the client's response too: ending it cleanly
    // would pass a truncated stream off as complete, and leaving it open would hang the client.
    proxyRes.once('close', () => {
      if (proxyRes.readableEnded || exchange.closing || res.destroyed) return;
      exchange.failure ??= 'reset';
      res.destroy();
    });
    proxyRes.on('error', () => undefined);
  }

  #fail(error: Error, exchange: Exchange, res: ServerResponse): void {
    clearTimeout(exchange.timer);
    const code = (error as NodeJS.ErrnoException).code;
    const failure: UpstreamFailure =
      code === 'ECONNREFUSED'
        ? 'refused'
        : code === 'ECONNECT_TIMEOUT'
          ? 'connect_timeout'
          : code === RESPONSE_TIMEOUT
            ? 'response_timeout'
            : code === 'ECONNRESET' || code === 'EPIPE'
              ? 'reset'
              : 'error';
    exchange.failure ??= failure;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const timedOut = failure === 'connect_timeout' || failure === 'response_timeout';
    sendJson(res, timedOut ? 504 : 502, {
      error: timedOut ? 'upstream_timeout' : 'upstream_unavailable',
      error_description: timedOut ? 'the upstream server did not answer in time' : 'the upstream server could not be reached',
    });
  }
}

/** Reads alongside the pipe to the client, without consuming or pausing the body. */
function tap(body: IncomingMessage, reader: AnswerReader): void {
  body.on('data', (chunk: Buffer) => reader.write(chunk));
  body.once('end', () => reader.end());
}

/**
 * A body already read, handed to http-proxy-3 in place of the request stream. http-proxy-3 only calls
 * `pipe`, so one write of the whole buffer does, without a Readable and its buffering per request.
 */
class BufferedBody extends Stream {
  readonly #body: Buffer;

  constructor(body: Buffer) {
    super();
    this.#body = body;
  }

  override pipe<T extends NodeJS.WritableStream>(destination: T): T {
    (destination as unknown as Writable).end(this.#body);
    return destination;
  }
}
