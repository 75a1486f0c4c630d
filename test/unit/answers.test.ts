import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.ts';
import { JsonAnswers } from '../../src/mcp/answers/json-answers.ts';
import { Policy } from '../../src/mcp/policy.ts';
import { audited, cut, errorFor, listAnswer, listOwed, staged, Tap, through, watch } from '../helpers/answers.ts';

const json = JSON.stringify;

describe('JsonAnswers', () => {
  it('drops the entries the caller may not use and keeps every other member of the result', async () => {
    const { answers, seen } = watch({ watched: [listOwed(1)] });
    const body = json(listAnswer(1, ['open', 'secret_a', 'other', 'secret_b']));
    const out = JSON.parse((await through(new JsonAnswers(answers, 4096), cut(body, 5, 40, 90))).toString());
    expect(out).toEqual(listAnswer(1, ['open', 'other']));
    expect(out.result).not.toHaveProperty('cacheScope');
    expect(seen.hidden).toBe(2);
  });

  it('marks the result private when asked to, even with nothing hidden, and only then', async () => {
    const body = json(listAnswer(1, ['open'], { cacheScope: 'public' }));
    const marked = watch({ watched: [listOwed(1)], markPrivate: true });
    const out = JSON.parse((await through(new JsonAnswers(marked.answers, 4096), [body])).toString());
    expect(out).toEqual(listAnswer(1, ['open'], { cacheScope: 'private' }));
    const unmarked = watch({ watched: [listOwed(1)] });
    expect((await through(new JsonAnswers(unmarked.answers, 4096), [body])).toString()).toBe(body);
  });

  it('rewrites only the list answer of a batch response', async () => {
    const { answers } = watch({ ids: [1, 'list', 3], watched: [listOwed('list')] });
    const call = { jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: 'secret_a is a word here' }] } };
    const failed = { jsonrpc: '2.0', id: 3, error: { code: -32601, message: 'no such method' } };
    const body = json([call, listAnswer('list', ['secret_a', 'open']), failed]);
    const out = JSON.parse((await through(new JsonAnswers(answers, 4096), cut(body, 17))).toString());
    expect(out).toEqual([call, listAnswer('list', ['open']), failed]);
  });

  it.each([
    ['a list answer with nothing to hide', [listOwed(1)], '{ "jsonrpc" : "2.0", "id":1,\n "result": {"tools":[{"name":"caf\\u00e9"}], "nextCursor": null} }\n'],
    ['a batch whose list answer hides nothing', [listOwed(2)], '[{"id":1,"jsonrpc":"2.0","result":{}} , {"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"open","n":1.50}]}}]'],
    ['an answer to another id', [listOwed(1)], '{"jsonrpc":"2.0","id":9,"result":{"tools":[{"name":"secret_x"}]}}'],
    ['an error for the list', [listOwed(1)], '{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"down"}}'],
  ])('passes %s through byte for byte', async (_name, watched, body) => {
    const { answers } = watch({ watched });
    const bytes = Buffer.from(body);
    expect((await through(new JsonAnswers(answers, 4096), [bytes.subarray(0, 10), bytes.subarray(10)])).equals(bytes)).toBe(true);
  });

  it.each([
    ['a result', { result: { content: [] } }, { outcome: 'result' }],
    ['an error', { error: { code: -32002, message: 'nope' } }, { outcome: 'error', code: -32002 }],
  ])('streams an audited call answered with %s as it comes, then reports the outcome', async (_name, answer, outcome) => {
    const { answers, seen } = watch({ watched: [audited(7)] });
    const body = json({ jsonrpc: '2.0', id: 7, ...answer });
    const [first, second] = cut(body, 12);
    const tap = new Tap(new JsonAnswers(answers, 4096));
    await tap.write(first!);
    // Held back, a long tool answer would reach the client only once whole: no list is owed, so nothing waits.
    expect(tap.out.toString()).toBe(first);
    await tap.write(second!);
    expect((await tap.end()).toString()).toBe(body);
    expect(seen.outcomes).toEqual([[7, outcome]]);
  });

  it('answers every request with an internal error in place of a list too large to read, naming nothing of it', async () => {
    const { answers } = watch({ ids: [1, 'two'], watched: [listOwed(1)] });
    const body = json([listAnswer(1, ['secret_a', 'open']), { jsonrpc: '2.0', id: 'two', result: {} }]);
    const text = (await through(new JsonAnswers(answers, 64), cut(body, 30, 70))).toString();
    expect(JSON.parse(text)).toEqual([errorFor(1), errorFor('two')]);
    expect(text).not.toMatch(/secret|open|tools/);
  });

  it('answers one request with one error object, not a batch', async () => {
    const { answers } = watch({ watched: [listOwed(1)] });
    const out = await through(new JsonAnswers(answers, 64), [json(listAnswer(1, ['secret_a', 'open']))]);
    expect(JSON.parse(out.toString())).toEqual(errorFor(1));
  });

  it('passes a list too large to read unread when nothing could be hidden from the caller', async () => {
    const { answers } = watch({ watched: [listOwed(1)], mayHide: false });
    const body = Buffer.from(json(listAnswer(1, ['secret_a', 'open'])));
    expect((await through(new JsonAnswers(answers, 64), [body.subarray(0, 40), body.subarray(40, 100), body.subarray(100)])).equals(body)).toBe(true);
  });

  it('replaces a held body that is not JSON with errors when it could hide something, and passes it otherwise', async () => {
    const body = '<html>{"tools":[{"name":"secret_a"}]}</html>';
    const hiding = watch({ watched: [listOwed(1)] });
    const text = (await through(new JsonAnswers(hiding.answers, 4096), cut(body, 6))).toString();
    expect(JSON.parse(text)).toEqual(errorFor(1));
    const open = watch({ watched: [listOwed(1)], mayHide: false });
    expect((await through(new JsonAnswers(open.answers, 4096), cut(body, 6))).toString()).toBe(body);
  });
});

describe('a batch that names one id twice', () => {
  const config = validateConfig({
    resource: { url: 'https://mcp.example.com/mcp' },
    authorization_servers: [{ issuer: 'https://idp.example.com' }],
    upstream: { url: 'http://127.0.0.1:3000' },
    policy: { rules: [{ match: { method: 'tools/call', tool: 'secret*' }, scopes: ['admin'] }] },
  });
  const policy = new Policy(config);
  const hidden = json(listAnswer(1, ['secret_a', 'open']).result);

  // Answers are matched to requests by id. At e35c35f such a batch was judged allowed, and the first answer
  // bearing the list's id (or a later request's entry under it) settled the list, so the real list answer
  // went by unfiltered; ids equal only once parsed (2^53 and 2^53 + 1) collided the same way. Refusing
  // the batch is one way to pass; filtering every answer that bears the id would be another.
  it.each([
    ['tools/list and ping', '[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":1,"method":"ping"}]', `[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","id":1,"result":${hidden}}]`],
    [
      'tools/list and an audited tools/call',
      '[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"open"}}]',
      `[{"jsonrpc":"2.0","id":1,"result":${hidden}},{"jsonrpc":"2.0","id":1,"result":{"content":[]}}]`,
    ],
    [
      'tools/list and ping, by ids that collide once parsed',
      '[{"jsonrpc":"2.0","id":9007199254740993,"method":"tools/list"},{"jsonrpc":"2.0","id":9007199254740992,"method":"ping"}]',
      `[{"jsonrpc":"2.0","id":9007199254740992,"result":{}},{"jsonrpc":"2.0","id":9007199254740993,"result":${hidden}}]`,
    ],
  ])('either is refused or cannot show a hidden entry: %s', async (_name, request, response) => {
    const { judgement, stream } = await staged(config, policy, request, new Set());
    if (!judgement.allowed) return;
    const shown = stream ? (await through(stream, [response])).toString() : response;
    expect(shown).not.toContain('secret_a');
  });
});
