import { Transform, type TransformCallback } from 'node:stream';
import type { Answers } from './answers.ts';

/**
 * An `application/json` response on its way to the client. While a list answer is owed the body is held
 * (up to `maxBytes`), read, filtered and sent whole; otherwise it streams through as it comes and a copy
 * (up to `maxBytes`) is read at the end for the audit. A held body too large to read passes unread only
 * when nothing could be hidden from this caller; otherwise the client gets errors in its place.
 */
export class JsonAnswers extends Transform {
  readonly #answers: Answers;
  readonly #maxBytes: number;
  #mode: 'hold' | 'copy' | 'pass' | 'replace';
  #chunks: Buffer[] = [];
  #size = 0;

  constructor(answers: Answers, maxBytes: number) {
    super();
    this.#answers = answers;
    this.#maxBytes = maxBytes;
    this.#mode = answers.holding ? 'hold' : 'copy';
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    if (this.#mode === 'pass' || this.#mode === 'replace') return done(null, this.#mode === 'pass' ? chunk : undefined);
    if (this.#mode === 'copy') this.push(chunk);
    this.#size += chunk.length;
    if (this.#size <= this.#maxBytes) {
      this.#chunks.push(chunk);
      return done();
    }
    if (this.#mode === 'hold' && !this.#answers.mayHide) {
      for (const held of this.#chunks) this.push(held);
      this.push(chunk);
    }
    this.#mode = this.#mode === 'hold' && this.#answers.mayHide ? 'replace' : 'pass';
    this.#chunks = [];
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.#mode === 'replace') return done(null, JSON.stringify(unwrap(this.#answers.unanswered())));
    if (this.#mode === 'pass') return done();
    const body = Buffer.concat(this.#chunks, this.#size);
    let payload: unknown;
    try {
      payload = JSON.parse(body.toString('utf8'));
    } catch {
      // Not JSON: nothing in it can be judged, so a held body that could hide something is not passed on.
      if (this.#mode === 'copy') return done();
      return done(null, this.#answers.mayHide ? JSON.stringify(unwrap(this.#answers.unanswered())) : body);
    }
    const taken = this.#answers.take(payload);
    if (this.#mode === 'copy') return done();
    done(null, taken === payload ? body : JSON.stringify(taken));
  }
}

/** One request's error goes out as a message, several as a batch. */
function unwrap(errors: unknown[]): unknown {
  return errors.length === 1 ? errors[0] : errors;
}
