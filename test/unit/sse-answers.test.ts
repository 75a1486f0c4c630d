import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SseAnswers } from '../../src/mcp/answers/sse-answers.ts';
import { audited, errorFor, eventsOf, listAnswer, listOwed, Tap, through, watch } from '../helpers/answers.ts';

const json = JSON.stringify;
const progress = json({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 't', progress: 1, message: 'café ☕' } });
const later = json({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'after the list' } });
const list = json(listAnswer(1, ['open', 'secret_a', 'secret_b']));
const filtered = listAnswer(1, ['open']);

describe('SseAnswers', () => {
  // LF passes; CRLF and CR fail (left failing): the event handed to eventsource-parser ends in the CR of
  // its blank line, which the parser keeps pending in case an LF follows, so it never dispatches the
  // event, the list is never read, and the held event goes out whole. sse-starlette (the Python SDK's
  // streamable HTTP) writes CRLF.
  it.each([
    ['LF', '\n'],
    ['CRLF', '\r\n'],
    ['CR', '\r'],
  ])('rewrites only the list answer of a stream with %s line endings, keeping its id, event type and comments', async (_name, eol) => {
    const before = `: keep-alive${eol}${eol}id: 41${eol}event: message${eol}data: ${progress}${eol}${eol}`;
    const listEvent = `id: 42${eol}event: message${eol}: a comment${eol}data: ${list}${eol}${eol}`;
    const after = `id: 43${eol}data: ${later}${eol}${eol}`;
    const { answers, seen } = watch({ watched: [listOwed(1)] });
    const out = (await through(new SseAnswers(answers, 4096), [before + listEvent + after])).toString();
    expect(out).not.toContain('secret');
    // The blank line's LF after a CR may go out with the next event: every byte before it is as it came.
    expect(out.startsWith(before.replace(/\n$/, ''))).toBe(true);
    expect(out.endsWith(after)).toBe(true);
    const events = eventsOf(out);
    expect(events.map(({ id, event }) => ({ id, event }))).toEqual([
      { id: '41', event: 'message' },
      { id: '42', event: 'message' },
      { id: '43', event: undefined },
    ]);
    expect(JSON.parse(events[1]!.data)).toEqual(filtered);
    expect(out).toMatch(/(^|[\r\n]): a comment[\r\n]/);
    expect(seen.hidden).toBe(2);
  });

  it('lets each held event out as soon as its blank line arrives, and once the list is read lets bytes out as they come', async () => {
    const { answers } = watch({ watched: [listOwed(1)] });
    const tap = new Tap(new SseAnswers(answers, 4096));
    const sent: string[] = [];
    const send = async (chunk: string) => {
      sent.push(chunk);
      await tap.write(chunk);
    };
    await send(`id: 1\r\nevent: message\r\ndata: ${progress}\r`);
    expect(tap.out.toString()).toBe('');
    // The LF of a CRLF split off into the next chunk ends a line, not the event.
    await send('\n');
    expect(tap.out.toString()).toBe('');
    await send('\r');
    expect(tap.out.toString()).toBe(sent.join(''));
    await send('\n: still working\n\n');
    expect(tap.out.toString()).toBe(sent.join(''));
    const held = tap.out.length;
    await send(`data: ${list}\n`);
    expect(tap.out.length).toBe(held);
    await send('\n');
    expect(JSON.parse(eventsOf(tap.out.subarray(held).toString())[0]!.data)).toEqual(filtered);
    const rewritten = tap.out.length;
    const [head, tail] = [`data: ${later}`.slice(0, 20), `data: ${later}`.slice(20)];
    await send(head);
    expect(tap.out.subarray(rewritten).toString()).toBe(head);
    await send(`${tail}\n\n`);
    expect((await tap.end()).subarray(rewritten).toString()).toBe(`${head}${tail}\n\n`);
  });

  it('replaces an event too large to read while a list is owed by errors for every unanswered request, and drops the rest of the stream', async () => {
    const { answers } = watch({ ids: [1, 2, 3], watched: [listOwed(1), audited(2)] });
    const first = `data: ${json({ jsonrpc: '2.0', id: 3, result: {} })}\n\n`;
    const large = `id: 9\ndata: ${json(listAnswer(1, ['open', ...Array.from({ length: 20 }, (_, i) => `secret_${i}`)]))}\n\n`;
    const rest = `data: ${json({ jsonrpc: '2.0', id: 2, result: {} })}\n\n`;
    const out = (await through(new SseAnswers(answers, 256), [first, large.slice(0, 100), large.slice(100, 300), large.slice(300), rest])).toString();
    expect(out.startsWith(first)).toBe(true);
    expect(out).not.toMatch(/secret|open|tools/);
    expect(out).not.toContain(rest);
    expect(eventsOf(out.slice(first.length)).map((event) => JSON.parse(event.data))).toEqual([errorFor(1), errorFor(2)]);
  });

  it('lets an event too large to read pass unread when nothing could be hidden', async () => {
    const { answers } = watch({ watched: [listOwed(1)], mayHide: false });
    const stream = `data: ${progress}\n\nid: 9\ndata: ${list}\n\ndata: ${later}\n\n`;
    expect((await through(new SseAnswers(answers, 64), [stream.slice(0, 150), stream.slice(150)])).toString()).toBe(stream);
  });

  it('answers with errors, not the partial event, when the stream ends in the middle of an event while a list is owed', async () => {
    const { answers } = watch({ ids: [1, 'x'], watched: [listOwed(1)] });
    const whole = `data: ${progress}\n\n`;
    const partial = `id: 9\ndata: ${list.slice(0, 60)}`;
    const out = (await through(new SseAnswers(answers, 4096), [whole, partial])).toString();
    expect(out.startsWith(whole)).toBe(true);
    expect(eventsOf(out.slice(whole.length)).map((event) => JSON.parse(event.data))).toEqual([errorFor(1), errorFor('x')]);
    expect(out).not.toContain('secret');
  });

  it('lets a partial event pass as it came at the end of the stream when nothing could be hidden', async () => {
    const { answers } = watch({ watched: [listOwed(1)], mayHide: false });
    const stream = `data: ${progress}\n\nid: 9\ndata: ${list.slice(0, 60)}`;
    expect((await through(new SseAnswers(answers, 4096), [stream])).toString()).toBe(stream);
  });

  it('comes out the same, at the same moments, however the upstream stream is cut into chunks', async () => {
    const stream = Buffer.from(
      [
        ': hello\r\n\r\n',
        `id: 1\revent: message\rdata: ${progress}\r\r`,
        `event: message\nid: 2\ndata: ${json({ jsonrpc: '2.0', id: 5, result: { content: [] } })}\n\n`,
        `id: 3\nevent: message\n: list\ndata: ${list}\n\n`,
        `id: 4\r\ndata: ${later}\r\n\r\n`,
        ': bye\n\n',
      ].join(''),
    );
    const run = () => watch({ ids: [1, 5], watched: [listOwed(1), audited(5)] });

    // The reference is fed a byte at a time: what has come out after byte i is what any cutting must show then.
    const reference = run();
    const tap = new Tap(new SseAnswers(reference.answers, 4096));
    const outAt = [0];
    for (let i = 0; i < stream.length; i += 1) {
      await tap.write(stream.subarray(i, i + 1));
      outAt.push(tap.out.length);
    }
    const expected = await tap.end();
    expect(expected.toString()).not.toContain('secret');
    expect(reference.seen.outcomes).toEqual([[5, { outcome: 'result' }]]);

    const cuts = fc.uniqueArray(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 12 }).map((at) => at.sort((a, b) => a - b));
    await fc.assert(
      fc.asyncProperty(cuts, async (at) => {
        const { answers, seen } = run();
        const split = new Tap(new SseAnswers(answers, 4096));
        for (const [i, end] of [...at, stream.length].entries()) {
          await split.write(stream.subarray(at[i - 1] ?? 0, end));
          expect(split.out.length, `after byte ${end}`).toBe(outAt[end]);
        }
        expect((await split.end()).equals(expected)).toBe(true);
        expect(seen.outcomes).toEqual(reference.seen.outcomes);
      }),
      // Each run is a few writes through one stream: a couple of hundred cuttings cover a 1 KB stream well.
      { numRuns: 200 },
    );
  });
});
