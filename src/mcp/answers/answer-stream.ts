import type { IncomingHttpHeaders } from 'node:http';
import type { Transform } from 'node:stream';
import type { Answers } from './answers.ts';
import { JsonAnswers, JsonReader } from './json-answers.ts';
import type { AnswerReader } from './reader.ts';
import { SseAnswers, SseReader } from './sse-answers.ts';

/**
 * How a response body is read: piped through a stream that may rewrite it (a list answer is owed), or
 * only tapped as it streams to the client unchanged (the audit's outcome): no stream in between, and the
 * upstream's Content-Length still holds.
 */
export interface AnswerHandling {
  readonly rewrite?: Transform;
  readonly tap?: AnswerReader;
}

/** By the response's content type, JSON or SSE; anything else (a 202, an error page) carries no JSON-RPC answer and goes straight through. */
export function answerHandling(answers: Answers, maxBytes: number, headers: IncomingHttpHeaders): AnswerHandling | undefined {
  const type = (headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  const json = type === 'application/json';
  if (!json && type !== 'text/event-stream') return undefined;
  if (answers.holding) return { rewrite: json ? new JsonAnswers(answers, maxBytes) : new SseAnswers(answers, maxBytes) };
  const discard = () => undefined;
  return { tap: json ? new JsonReader(answers, maxBytes, discard) : new SseReader(answers, maxBytes, discard) };
}
