import type { Answers } from './answers.ts';
import { ReaderTransform, type AnswerReader, type Emit } from './reader.ts';

/**
 * An `application/json` response on its way to the client. While a list answer is owed the body is held
 * (up to `maxBytes`), read, filtered and sent whole; otherwise it streams through as it comes and a copy
 * (up to `maxBytes`) is read at the end for the audit. A held body too large to read passes unread only
 * when nothing could be hidden from this caller; otherwise the client gets errors in its place.
 */
export class JsonReader implements AnswerReader {
  readonly #answers: Answers;
  readonly #maxBytes: number;
  readonly #emit: Emit;
  #mode: 'hold' | 'copy' | 'pass' | 'replace';
  #chunks: Buffer[] = [];
  #size = 0;

  constructor(answers: Answers, maxBytes: number, emit: Emit) {
    this.#answers = answers;
    this.#maxBytes = maxBytes;
    this.#emit = emit;
    this.#mode = answers.holding ? 'hold' : 'copy';
  }

  write(chunk: Buffer): void {
    if (this.#mode === 'pass') return this.#emit(chunk);
    if (this.#mode === 'replace') return;
    if (this.#mode === 'copy') this.#emit(chunk);
    this.#size += chunk.length;
    if (this.#size <= this.#maxBytes) {
      this.#chunks.push(chunk);
      return;
    }
    if (this.#mode === 'hold' && !this.#answers.mayHide) {
      for (const held of this.#chunks) this.#emit(held);
      this.#emit(chunk);
    }
    this.#mode = this.#mode === 'hold' && this.#answers.mayHide ? 'replace' : 'pass';
    this.#chunks = [];
  }

  end(): void {
    if (this.#mode === 'replace') return this.#emit(JSON.stringify(unwrap(this.#answers.unanswered())));
    if (this.#mode === 'pass') return;
    const body = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#size);
    let payload: unknown;
    try {
      payload = JSON.parse(body.toString('utf8'));
    } catch {
      // Not JSON: nothing in it can be judged, so a held body that could hide something is not passed on.
      if (this.#mode === 'hold') this.#emit(this.#answers.mayHide ? JSON.stringify(unwrap(this.#answers.unanswered())) : body);
      return;
    }
    const taken = this.#answers.take(payload);
    if (this.#mode === 'hold') this.#emit(taken === payload ? body : JSON.stringify(taken));
  }
}

/** The reader as a stream to pipe a body through. */
export class JsonAnswers extends ReaderTransform {
  constructor(answers: Answers, maxBytes: number) {
    super((emit) => new JsonReader(answers, maxBytes, emit));
  }
}

/** One request's error goes out as a message, several as a batch. */
function unwrap(errors: unknown[]): unknown {
  return errors.length === 1 ? errors[0] : errors;
}
