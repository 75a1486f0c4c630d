import { createParser } from 'eventsource-parser';
import type { Answers } from './answers.ts';
import { ReaderTransform, type AnswerReader, type Emit } from './reader.ts';

const CR = 0x0d;
const LF = 0x0a;

/**
 * A `text/event-stream` response on its way to the client. Each event passes as soon as it is whole:
 * only while a list answer is owed is an event held to its end, read, and rewritten if it is that
 * answer; progress and every other event go out unchanged. Once nothing is owed, bytes pass as they
 * come, and while an audited answer is owed a copy of each event (up to `maxBytes`) is read for it.
 */
export class SseReader implements AnswerReader {
  readonly #answers: Answers;
  readonly #maxBytes: number;
  readonly #emit: Emit;
  /** The current event's bytes so far: held back, or a copy of what went out. */
  #parts: Buffer[] = [];
  #size = 0;
  /** Whether the current event is held back (decided at its first byte). */
  #held = false;
  /** The current event is not kept: too large to read, or not looked at. */
  #skipping = false;
  #eventStarted = false;
  /** Framing state across chunks: the last byte ended a line, and that line was empty so far. */
  #atLineStart = false;
  #afterCR = false;
  /** The stream was replaced by errors: nothing more of the upstream's goes out. */
  #replaced = false;
  /** The current event is too large to read on a stream that owes no answer by id: it is left out, the stream goes on. */
  #dropping = false;

  constructor(answers: Answers, maxBytes: number, emit: Emit) {
    this.#answers = answers;
    this.#maxBytes = maxBytes;
    this.#emit = emit;
  }

  write(chunk: Buffer): void {
    let start = 0;
    for (let i = 0; i < chunk.length; i += 1) {
      if (this.#endsEvent(chunk[i]!)) {
        this.#segment(chunk.subarray(start, i + 1), true);
        start = i + 1;
      }
    }
    if (start < chunk.length) this.#segment(chunk.subarray(start), false);
  }

  end(): void {
    // An event cut off by the end of the stream is never dispatched by a client. It goes out as it came
    // only when nothing could be hidden: it could be an unread list answer (a compressed stream never
    // ends an event we can see), so otherwise the requests still owed get errors, or it is left out.
    if (this.#held && !this.#replaced && !this.#dropping) {
      if (!this.#answers.mayHide) for (const part of this.#parts) this.#emit(part);
      else if (this.#answers.owing) this.#replace();
    }
  }

  /** A blank line (CR, LF or CRLF after a line terminator) ends an event. */
  #endsEvent(byte: number): boolean {
    const afterCR = this.#afterCR;
    this.#afterCR = byte === CR;
    if (byte === LF && afterCR) return false;
    if (byte !== CR && byte !== LF) {
      this.#atLineStart = false;
      return false;
    }
    if (this.#atLineStart) {
      this.#atLineStart = false;
      return true;
    }
    this.#atLineStart = true;
    return false;
  }

  #segment(bytes: Buffer, completes: boolean): void {
    if (this.#replaced) return;
    if (this.#dropping) {
      if (completes) this.#complete();
      return;
    }
    if (!this.#eventStarted) {
      this.#eventStarted = true;
      this.#held = this.#answers.holding;
      this.#skipping = !this.#held && !this.#answers.watching;
    }
    if (!this.#held) this.#emit(bytes);
    if (!this.#skipping) this.#keep(bytes);
    if (completes) this.#complete();
  }

  #keep(bytes: Buffer): void {
    this.#size += bytes.length;
    if (this.#size <= this.#maxBytes) {
      this.#parts.push(bytes);
      return;
    }
    this.#skipping = true;
    if (this.#held && this.#answers.mayHide && this.#answers.owing) this.#replace();
    else if (this.#held && this.#answers.mayHide) this.#dropping = true;
    else if (this.#held) {
      // Nothing could be hidden from this caller: the event goes on unread, and the rest of it as it comes.
      for (const part of this.#parts) this.#emit(part);
      this.#emit(bytes);
      this.#held = false;
    }
    this.#parts = [];
  }

  /** Errors for every request not answered yet, and nothing more of the upstream's. */
  #replace(): void {
    this.#replaced = true;
    for (const error of this.#answers.unanswered()) this.#emit(`event: message\ndata: ${JSON.stringify(error)}\n\n`);
  }

  #complete(): void {
    if (!this.#skipping && this.#parts.length > 0) {
      const block = Buffer.concat(this.#parts, this.#size);
      const rewritten = this.#read(block);
      if (this.#held) this.#emit(rewritten ?? block);
    }
    this.#parts = [];
    this.#size = 0;
    this.#eventStarted = false;
    this.#held = false;
    this.#skipping = false;
    this.#dropping = false;
  }

  /** The event with its data replaced when a list answer in it was filtered; undefined when it stays as it was. */
  #read(block: Buffer): string | undefined {
    const text = block.toString('utf8');
    let data: string | undefined;
    // A block ending in CR (CRLF or CR line endings) is whole to us, but the parser waits to see whether
    // an LF follows: one more line ending makes it dispatch, and adds nothing to a block already complete.
    createParser({ onEvent: (event) => (data = event.data) }).feed(`${text}\n`);
    if (!data) return undefined;
    let payload: unknown;
    try {
      payload = JSON.parse(data);
    } catch {
      return undefined;
    }
    const taken = this.#answers.take(payload);
    return taken === payload ? undefined : withData(text, JSON.stringify(taken));
  }
}

/** The reader as a stream to pipe a body through. */
export class SseAnswers extends ReaderTransform {
  constructor(answers: Answers, maxBytes: number) {
    super((emit) => new SseReader(answers, maxBytes, emit));
  }
}

/** The event's lines as they were (id, event type, comments), its data lines replaced by one. */
function withData(text: string, data: string): string {
  const lines = text.split(/\r\n|\r|\n/).filter((line) => line !== '');
  const first = lines.findIndex(isDataLine);
  const kept = lines.filter((line) => !isDataLine(line));
  kept.splice(first === -1 ? kept.length : first, 0, `data: ${data}`);
  return `${kept.join('\n')}\n\n`;
}

function isDataLine(line: string): boolean {
  return line === 'data' || line.startsWith('data:');
}
