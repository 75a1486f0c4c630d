import { describe, expect, it } from 'vitest';
import { LineSplitter } from '../../src/upstream/stdio/line-splitter.ts';

function split(maxBytes: number, chunks: string[]): Array<[string, boolean, number]> {
  const lines: Array<[string, boolean, number]> = [];
  const splitter = new LineSplitter(maxBytes, (line, truncated, bytes) => lines.push([line, truncated, bytes]));
  for (const chunk of chunks) splitter.push(Buffer.from(chunk));
  splitter.end();
  return lines;
}

describe('LineSplitter', () => {
  it('joins a line split across chunks and splits several lines in one chunk', () => {
    expect(split(100, ['{"a":', '1}\n{"b":2}\r\n{"c"', ':3}\n'])).toEqual([
      ['{"a":1}', false, 7],
      ['{"b":2}', false, 8],
      ['{"c":3}', false, 7],
    ]);
  });

  it('keeps at most maxBytes of an oversized line, reports it truncated, and reads the next line whole', () => {
    expect(split(4, ['0123456789', 'abc\nok\n'])).toEqual([
      ['0123', true, 13],
      ['ok', false, 2],
    ]);
  });

  it('counts a last line without its newline', () => {
    expect(split(10, ['tail'])).toEqual([['tail', false, 4]]);
  });
});
