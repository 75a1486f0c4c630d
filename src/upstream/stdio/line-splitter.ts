/**
 * Splits a byte stream into newline-terminated lines without ever holding more than `maxBytes` of one:
 * past that, the rest of the line is counted and thrown away, and the line is reported as truncated.
 * (The SDK's ReadBuffer has a bound too, but on overflow it drops the whole chunk, valid lines with it.)
 */
export class LineSplitter {
  readonly #maxBytes: number;
  readonly #onLine: (line: string, truncated: boolean, bytes: number) => void;
  #parts: Buffer[] = [];
  #kept = 0;
  #bytes = 0;

  constructor(maxBytes: number, onLine: (line: string, truncated: boolean, bytes: number) => void) {
    this.#maxBytes = maxBytes;
    this.#onLine = onLine;
  }

  push(chunk: Buffer): void {
    let start = 0;
    for (let newline = chunk.indexOf(10, start); newline !== -1; newline = chunk.indexOf(10, start)) {
      this.#take(chunk.subarray(start, newline));
      this.#emit();
      start = newline + 1;
    }
    if (start < chunk.length) this.#take(chunk.subarray(start));
  }

  /** The stream ended: a last line without its newline still counts. */
  end(): void {
    if (this.#bytes > 0) this.#emit();
  }

  #take(part: Buffer): void {
    this.#bytes += part.length;
    const room = this.#maxBytes - this.#kept;
    if (room <= 0) return;
    const kept = part.length <= room ? part : part.subarray(0, room);
    // A copy: the stream may reuse the chunk's memory once this returns.
    this.#parts.push(Buffer.from(kept));
    this.#kept += kept.length;
  }

  #emit(): void {
    const line = Buffer.concat(this.#parts, this.#kept).toString('utf8');
    const bytes = this.#bytes;
    this.#parts = [];
    this.#kept = 0;
    this.#bytes = 0;
    this.#onLine(line.endsWith('\r') ? line.slice(0, -1) : line, bytes > this.#maxBytes, bytes);
  }
}
