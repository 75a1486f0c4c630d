import type { IncomingHttpHeaders } from 'node:http';
import type { Transform } from 'node:stream';
import type { Answers } from './answers.ts';
import { JsonAnswers } from './json-answers.ts';
import { SseAnswers } from './sse-answers.ts';

/**
 * The stream a response body goes through so its answers can be read: by its content type, JSON or
 * SSE; anything else (a 202, an error page) carries no JSON-RPC answer and goes straight through.
 */
export function answerStream(answers: Answers, maxBytes: number, headers: IncomingHttpHeaders): Transform | undefined {
  const type = (headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type === 'application/json') return new JsonAnswers(answers, maxBytes);
  if (type === 'text/event-stream') return new SseAnswers(answers, maxBytes);
  return undefined;
}
