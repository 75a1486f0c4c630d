import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Transform } from 'node:stream';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { expect } from 'vitest';
import type { Config } from '../../src/config/schema.ts';
import { type AnswerOutcome, Answers, type WatchedRequest } from '../../src/mcp/answers/answers.ts';
import { LIST_SHAPES } from '../../src/mcp/answers/list-filter.ts';
import type { RpcId } from '../../src/mcp/json-rpc.ts';
import { type Judgement, judgeBody } from '../../src/mcp/judge.ts';
import type { Policy } from '../../src/mcp/policy.ts';
import type { Logger } from '../../src/observability/logger.ts';
import type { McpMetrics } from '../../src/observability/mcp-metrics.ts';
import { ToolCallAudit } from '../../src/observability/tool-call-audit.ts';
import { Access } from '../../src/pipeline/access.ts';
import type { PipelineParts } from '../../src/pipeline/parts.ts';
import { watchAnswers } from '../../src/pipeline/watch-answers.ts';

const TOOLS = LIST_SHAPES.get('tools/list')!;

export const listOwed = (id: RpcId): WatchedRequest => ({ id, list: TOOLS, audited: false });
export const audited = (id: RpcId): WatchedRequest => ({ id, audited: true });

interface Setup {
  readonly watched: readonly WatchedRequest[];
  /** Every request id of the POST, watched or not; the watched ones when not given. */
  readonly ids?: readonly RpcId[];
  readonly mayHide?: boolean;
  readonly markPrivate?: boolean;
}

/** The caller may use everything but `secret*`: such a name in the output is a leak. */
export function watch({ watched, ids = watched.map((request) => request.id), mayHide = true, markPrivate = false }: Setup) {
  const seen = { outcomes: [] as Array<[RpcId, AnswerOutcome]>, hidden: 0 };
  const answers = new Answers(ids, watched, {
    allows: (_method, target) => !target.startsWith('secret'),
    markPrivate: () => markPrivate,
    mayHide,
    onAnswer: (id, outcome) => seen.outcomes.push([id, outcome]),
    onHidden: (_list, count) => (seen.hidden += count),
  });
  return { answers, seen };
}

export const listAnswer = (id: RpcId, names: readonly string[], extra: Record<string, unknown> = {}) => ({
  jsonrpc: '2.0',
  id,
  result: { tools: names.map((name) => ({ name, inputSchema: { type: 'object' } })), nextCursor: 'page-2', _meta: { origin: 'upstream' }, ...extra },
});

/** What Answers puts in place of an answer it could not read (the message text is not the contract). */
export const errorFor = (id: RpcId) => ({ jsonrpc: '2.0', id, error: { code: -32603, message: expect.any(String) } });

/**
 * Drives a Transform one write at a time, waiting out the event loop after each so that whatever the
 * stream would emit for that write has been emitted: what `out` holds then is what a client has seen.
 */
export class Tap {
  readonly #stream: Transform;
  readonly #out: Buffer[] = [];
  readonly #ended: Promise<void>;

  constructor(stream: Transform) {
    this.#stream = stream;
    stream.on('data', (chunk: Buffer) => this.#out.push(chunk));
    this.#ended = new Promise((resolve, reject) => stream.on('end', resolve).on('error', reject));
  }

  get out(): Buffer {
    return Buffer.concat(this.#out);
  }

  async write(chunk: string | Buffer): Promise<void> {
    this.#stream.write(chunk);
    await new Promise(setImmediate);
  }

  async end(): Promise<Buffer> {
    this.#stream.end();
    await this.#ended;
    return this.out;
  }
}

export async function through(stream: Transform, chunks: ReadonlyArray<string | Buffer>): Promise<Buffer> {
  const tap = new Tap(stream);
  for (const chunk of chunks) await tap.write(chunk);
  return tap.end();
}

/** Cuts text at the given offsets, so that one message arrives as several chunks. */
export function cut(text: string, ...at: number[]): string[] {
  const bounds = [0, ...at, text.length];
  return bounds.slice(1).map((end, i) => text.slice(bounds[i], end));
}

/** The events of an SSE text as a client dispatches them. */
export function eventsOf(text: string): EventSourceMessage[] {
  const events: EventSourceMessage[] = [];
  // A final CR may still become CRLF for the parser: one more LF settles it, as the next bytes would.
  createParser({ onEvent: (event) => events.push(event) }).feed(`${text}\n`);
  return events;
}

const quiet = { info: () => {} } as unknown as Logger;
const uncounted = { call: () => {}, hidden: () => {} } as unknown as McpMetrics;

/**
 * A POST body judged as the inspect stage judges it (the audit on, as by default), then handed to the
 * real watch-answers stage: the stream it would read an upstream answer through, none when it decides
 * nothing needs reading, and nothing at all when the body is refused.
 */
export async function staged(config: Config, policy: Policy, body: string, granted: ReadonlySet<string>, headers: IncomingHttpHeaders = {}) {
  const judgement: Judgement = judgeBody(headers, Buffer.from(body), granted, false, policy);
  if (!judgement.allowed) return { judgement, stream: undefined };
  const req = { headers: { ...headers }, socket: { bytesWritten: 0 } } as unknown as IncomingMessage;
  const access = new Access(req, 'test', 0);
  const principal = { issuer: 'https://idp.example.com', subject: 'someone', clientId: undefined, scopes: granted, expiresAt: undefined, claims: {} };
  access.principal = principal;
  access.decision = judgement.decision;
  const toolCalls = new ToolCallAudit(quiet, uncounted, 'test', principal, judgement.decision.messages);
  if (!toolCalls.empty) access.toolCalls = toolCalls;
  const parts = { config, policy, mcpMetrics: uncounted } as unknown as PipelineParts;
  await watchAnswers(parts, () => {})(req, {} as ServerResponse, access);
  // A tapped body reaches the client as it is; only a rewriting stream can change what the client sees.
  const handling = access.answers?.({ 'content-type': 'application/json' });
  return { judgement, stream: handling?.rewrite };
}
