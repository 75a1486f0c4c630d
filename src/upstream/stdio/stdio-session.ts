import type { IncomingMessage, ServerResponse } from 'node:http';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import {
  isInitializeRequest,
  isJSONRPCErrorResponse,
  isJSONRPCRequest,
  isJSONRPCResultResponse,
  type JSONRPCMessage,
  type JSONRPCRequest,
  type RequestId,
} from '@modelcontextprotocol/sdk/types.js';
import type { StdioSettings } from '../../config/upstream-schema.ts';
import type { Logger } from '../../observability/logger.ts';
import type { ProcessExit, StdioMetrics } from '../../observability/stdio-metrics.ts';
import type { AnswerWatch } from '../upstream.ts';
import { McpChild, type ChildExit } from './child-process.ts';
import { SessionEventLog } from './event-log.ts';
import { webRequestOf, writeWebResponse } from './web-exchange.ts';

/** How long a client whose stream broke waits before it resumes (the SSE `retry` field). */
const RETRY_MS = 1000;
/** How many idle timeouts a session with a request still open may stay quiet before it is ended. */
const OPEN_REQUEST_IDLE_FACTOR = 4;
/** JSON-RPC "internal error": what the open requests of a session whose process died are answered with. */
const INTERNAL_ERROR = -32603;

export type StartResult = 'ready' | 'timeout' | 'exited';

type ProgressToken = string | number;

/**
 * One MCP session: one child process, and the SDK's Streamable HTTP server transport that the client
 * talks to. Every message is relayed unchanged both ways; what the session adds is only where a child's
 * message goes (stdio has no notion of streams), and what happens when the child dies.
 */
export class StdioSession {
  readonly id: string;
  /** The principal (issuer, subject, client) the session was opened by. */
  readonly owner: string;
  readonly #settings: StdioSettings;
  readonly #logger: Logger;
  readonly #child: McpChild;
  readonly #onEnd: (session: StdioSession, reason: ProcessExit) => void;
  #transport: WebStandardStreamableHTTPServerTransport | undefined;
  /** The child's answer to the client's initialize, sent to it before any HTTP response began. */
  #initialize: { readonly id: RequestId; readonly resolve: (result: StartResult) => void; response?: JSONRPCMessage } | undefined;
  /** Client requests the child has not answered yet, in arrival order, with their progress tokens. */
  readonly #pending = new Map<RequestId, ProgressToken | undefined>();
  readonly #progress = new Map<ProgressToken, RequestId>();
  #standaloneStreams = 0;
  #endReason: ProcessExit | undefined;
  /** The last client message or answer to one: a session is idle only with nothing open since. */
  #lastActivity = Date.now();

  constructor(id: string, owner: string, settings: StdioSettings, env: Record<string, string>, logger: Logger, metrics: StdioMetrics, onEnd: (session: StdioSession, reason: ProcessExit) => void) {
    this.id = id;
    this.owner = owner;
    this.#settings = settings;
    this.#onEnd = onEnd;
    this.#logger = logger.child({ session_id: id });
    this.#child = new McpChild(settings, env, this.#logger, metrics, {
      onMessage: (message) => this.#fromChild(message),
      onExit: (exit) => this.#exited(exit),
    });
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** Sends the client's initialize and waits for the child's answer, before the client is answered at all. */
  start(request: JSONRPCRequest): Promise<StartResult> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => settle('timeout'), this.#settings.startup_timeout);
      const settle = (result: StartResult) => {
        clearTimeout(timer);
        if (this.#initialize?.resolve !== settle) return;
        if (result !== 'ready') this.#initialize = undefined;
        resolve(result);
      };
      this.#initialize = { id: request.id, resolve: settle };
      this.#child.send(request);
    });
  }

  /** Hands one HTTP request to the session's transport; `body` is the parsed JSON of a POST. */
  async handle(req: IncomingMessage, res: ServerResponse, body: unknown, answers?: AnswerWatch): Promise<void> {
    this.#lastActivity = Date.now();
    const transport = (this.#transport ??= this.#openTransport());
    if (req.method === 'GET') {
      this.#standaloneStreams += 1;
      res.once('close', () => (this.#standaloneStreams -= 1));
    }
    await writeWebResponse(await transport.handleRequest(webRequestOf(req), { parsedBody: body }), res, answers);
  }

  /** Ends the standalone GET stream cleanly (shutdown, token expiry); the client may open another. */
  closeStandaloneStream(): void {
    this.#transport?.closeStandaloneSSEStream();
  }

  /** Ends the child (SIGTERM, SIGKILL after the grace); the session is over once it has exited. */
  end(reason: ProcessExit): Promise<void> {
    this.#endReason ??= reason;
    return this.#child.end(this.#settings.kill_grace);
  }

  #openTransport(): WebStandardStreamableHTTPServerTransport {
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => this.id,
      onsessionclosed: () => void this.end('deleted'),
      eventStore: new SessionEventLog(),
      retryInterval: RETRY_MS,
    });
    transport.onmessage = (message) => this.#fromClient(message);
    transport.onerror = (error) => this.#logger.debug({ err: error.message }, 'stdio session transport error');
    return transport;
  }

  #fromClient(message: JSONRPCMessage): void {
    this.#lastActivity = Date.now();
    if (isJSONRPCRequest(message)) {
      const initialize = this.#initialize;
      if (initialize?.response && isInitializeRequest(message) && message.id === initialize.id) {
        // The child answered this very message already (see start): the answer goes out now.
        this.#initialize = undefined;
        void this.#deliver(initialize.response, undefined);
        return;
      }
      const token = message.params?._meta?.progressToken;
      this.#pending.set(message.id, token);
      if (token !== undefined) this.#progress.set(token, message.id);
    }
    this.#child.send(message);
  }

  #fromChild(message: JSONRPCMessage): void {
    const initialize = this.#initialize;
    if (initialize && !initialize.response) {
      const answers = (isJSONRPCResultResponse(message) || isJSONRPCErrorResponse(message)) && message.id === initialize.id;
      if (!answers) return this.#logger.debug('stdio server spoke before answering initialize; dropped');
      initialize.response = message;
      return initialize.resolve('ready');
    }
    if (isJSONRPCResultResponse(message) || isJSONRPCErrorResponse(message)) {
      // An error answer to a message the child could not read carries no id: it answers nothing open.
      if (message.id === undefined) return this.#logger.debug('stdio server sent an error without an id; dropped');
      this.#answered(message.id);
      void this.#deliver(message, undefined);
      return;
    }
    void this.#deliver(message, this.#relatedRequest(message));
  }

  /**
   * Where a message the child started goes. Progress names its request by token. Anything else (a
   * log line, a sampling or elicitation request) goes to the client's standalone stream when it has
   * one; otherwise onto the stream of the newest open request, the only way left to reach the client.
   */
  #relatedRequest(message: JSONRPCMessage): RequestId | undefined {
    const params = 'params' in message ? (message.params as { progressToken?: unknown } | undefined) : undefined;
    const token = params?.progressToken;
    if ((typeof token === 'string' || typeof token === 'number') && this.#progress.has(token)) return this.#progress.get(token);
    if (this.#standaloneStreams > 0) return undefined;
    let newest: RequestId | undefined;
    for (const id of this.#pending.keys()) newest = id;
    return newest;
  }

  /**
   * No client message for `idleMs` and no request open: a long tool call is not idleness. A request
   * whose client left is never answered to anyone, so open requests hold a session only so long.
   */
  idle(now: number, idleMs: number): boolean {
    const quiet = now - this.#lastActivity;
    return quiet > idleMs * (this.#pending.size === 0 ? 1 : OPEN_REQUEST_IDLE_FACTOR);
  }

  #answered(id: RequestId): void {
    this.#lastActivity = Date.now();
    const token = this.#pending.get(id);
    this.#pending.delete(id);
    if (token !== undefined) this.#progress.delete(token);
  }

  #deliver(message: JSONRPCMessage, relatedRequestId: RequestId | undefined): Promise<void> {
    const transport = this.#transport;
    if (!transport) return Promise.resolve();
    // A client that went away cannot be written to; the SDK says so by rejecting, which is no fault here.
    return transport.send(message, relatedRequestId === undefined ? undefined : { relatedRequestId }).catch((error: Error) => this.#logger.debug({ err: error.message }, 'stdio message had no client stream to go to'));
  }

  #exited(exit: ChildExit): void {
    const reason = this.#endReason ?? (exit.code === 0 ? 'exited' : 'crashed');
    if (this.#endReason === undefined) {
      this.#logger.error({ pid: this.pid, exit_code: exit.code, signal: exit.signal, spawn_error: exit.spawnError, open_requests: this.#pending.size }, 'stdio server exited during its session');
    }
    this.#initialize?.resolve('exited');
    const answers = [...this.#pending.keys()].map((id) => this.#deliver({ jsonrpc: '2.0', id, error: { code: INTERNAL_ERROR, message: 'the MCP server process exited' } }, undefined));
    this.#pending.clear();
    this.#progress.clear();
    this.#onEnd(this, reason);
    // The streams close only once the answers are on them: closing first would drop them unsent.
    void Promise.all(answers).then(() => this.#transport?.close());
  }
}
