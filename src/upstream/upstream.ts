import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { AnswerHandling } from '../mcp/answers/answer-stream.ts';
import type { Principal } from '../auth/principal.ts';

/** Why a request did not get an upstream answer through to the client; a bounded label. */
export type UpstreamFailure = 'refused' | 'connect_timeout' | 'response_timeout' | 'reset' | 'upstream_auth' | 'error' | 'process_exited' | 'startup_timeout';

/** How a request to the upstream went, filled in as it goes: final once the client's response has closed. */
export interface UpstreamOutcome {
  /** The upstream's status, when it answered. */
  readonly upstreamStatus: number | undefined;
  readonly failure: UpstreamFailure | undefined;
  /** The response was an event stream. */
  readonly stream: boolean;
  /** Seconds from forwarding to the upstream's response headers, when they came. */
  readonly headersSeconds: number | undefined;
}

/**
 * Given the response's headers, how its body is read on the way to the client: piped through a stream
 * that filters list answers, or tapped for tool call outcomes; undefined when it goes straight through.
 */
export type AnswerWatch = (headers: IncomingHttpHeaders) => AnswerHandling | undefined;

/**
 * Reads an event stream's chunks alongside the pipe to the client; returns false once it has seen enough.
 * A function, not an EventEmitter: each open stream kept the emitter and its listener table.
 */
export type EventWatcher = (chunk: Buffer) => boolean;

/** One authorized request, handed to the upstream with everything the stages before it decided. */
export interface UpstreamRequest {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly principal: Principal;
  /** Headers the proxy adds (credential, identity, forwarding), after the client's were scrubbed. */
  readonly inject: Record<string, string>;
  /** A body already read (for inspection); otherwise the request stream still holds it. */
  readonly body: Buffer | undefined;
  /** Sees the response's status and headers before the client does: where sessions are bound. */
  readonly onResponse?: (status: number, headers: IncomingHttpHeaders) => void;
  /** Sees an upstream event stream's bytes as they pass (it must not keep or change them), through the watcher it returns. */
  readonly onEventStream?: () => EventWatcher;
  /** Called when this response turns out to be an event stream, with a function that ends it cleanly. */
  readonly onStreamStart?: (end: () => void) => void;
  /** Reads the body's answers when it is set: a rewritten body's length may change, so none is sent then. */
  readonly answers?: AnswerWatch;
}

/**
 * Where authorized requests go: an HTTP MCP server (the forwarder) or a stdio MCP server run as one
 * child process per session (the stdio bridge). Chosen once at start; the stages before it are the same.
 */
export interface Upstream {
  /** Which of the two it is. */
  readonly kind: 'http' | 'stdio';
  /** It relays messages rather than bytes: every POST body is read (bounded, as for the rules) before it is handed over. */
  readonly needsBody: boolean;
  /**
   * Answers `request.res`; the outcome is final once the response has closed (no promise per request).
   * It may refuse the request instead, before answering, by throwing an AuthFailure (e.g. a process bound).
   */
  forward(request: UpstreamRequest): UpstreamOutcome;
  /** Secrets it needs that cannot be read now, by config path: the process must not start without them. */
  missingSecrets(): Array<{ path: string; message: string }>;
  /** A session's binding to its principal is gone (evicted or idle): nothing of that session may outlive it. */
  sessionDropped(sessionId: string): void;
  /** Ends what the upstream holds (pooled sockets, child processes). */
  close(): Promise<void>;
}
