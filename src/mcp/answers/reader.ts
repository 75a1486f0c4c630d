import { Transform, type TransformCallback } from 'node:stream';

/** Where a reader sends the bytes the client is to get. */
export type Emit = (bytes: Buffer | string) => void;

/** Reads a response body chunk by chunk; what the client gets goes out through its `emit`. */
export interface AnswerReader {
  write(chunk: Buffer): void;
  end(): void;
}

/**
 * A reader as a stream the body is piped through: for a body that may be rewritten. A body only looked
 * at (the audit's outcome) is not piped through anything: the reader taps it, with nowhere to emit.
 */
export class ReaderTransform extends Transform {
  readonly #reader: AnswerReader;

  constructor(make: (emit: Emit) => AnswerReader) {
    super();
    this.#reader = make((bytes) => void this.push(bytes));
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.#reader.write(chunk);
    done();
  }

  override _flush(done: TransformCallback): void {
    this.#reader.end();
    done();
  }
}
