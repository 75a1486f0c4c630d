import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { peekJsonRpc, type PeekResult } from '../../src/mcp/json-rpc.ts';
import { anyString, fuzz, fuzzTimeout } from './runs.ts';

const TARGET_MEMBER = new Map([
  ['tools/call', 'name'],
  ['prompts/get', 'name'],
  ['resources/read', 'uri'],
  ['tasks/get', 'taskId'],
  ['tasks/update', 'taskId'],
  ['tasks/cancel', 'taskId'],
]);
const PARAMS_MEMBERS = ['name', 'uri', 'taskId'];

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The messages a reader of the JSON-RPC body must see, or undefined where the body cannot be judged. */
function expectedMessages(body: unknown): Array<{ method: string | undefined; target: string | undefined; id?: unknown; arguments?: unknown }> | undefined {
  const items = Array.isArray(body) ? body : [body];
  if (items.length === 0 || !items.every(isObject)) return undefined;
  const messages = [];
  const requestIds = new Set<string>();
  for (const item of items) {
    // A member spelled like one we judge by, differing only in case (or ſ for s), is how a Go upstream
    // could read a different call than the one judged: such bodies are refused.
    if (Object.keys(item).some((key) => ['method', 'params', 'id'].includes(key.toLowerCase().replaceAll('ſ', 's')) && !['method', 'params', 'id'].includes(key))) return undefined;
    const method = Object.hasOwn(item, 'method') ? item.method : undefined;
    if (method !== undefined && typeof method !== 'string') return undefined;
    const folded = (key: string) => key.toLowerCase().replaceAll('ſ', 's');
    if (isObject(item.params) && Object.keys(item.params).some((key) => PARAMS_MEMBERS.some((known) => folded(known) === folded(key)) && !PARAMS_MEMBERS.includes(key))) return undefined;
    // Answers are matched to requests by id: one JSON-RPC does not allow, or one two requests share, is refused.
    const id = Object.hasOwn(item, 'id') ? item.id : undefined;
    if (id !== undefined && typeof id !== 'string' && typeof id !== 'number' && id !== null) return undefined;
    if (method !== undefined && id !== undefined) {
      if (requestIds.has(JSON.stringify(id))) return undefined;
      requestIds.add(JSON.stringify(id));
    }
    const member = method === undefined ? undefined : TARGET_MEMBER.get(method);
    if (member === undefined) {
      messages.push({ method, target: undefined, id });
      continue;
    }
    const params = item.params;
    const target = isObject(params) && Object.hasOwn(params, member) ? params[member] : undefined;
    if (typeof target !== 'string') return undefined;
    const takesArguments = method === 'tools/call' || method === 'prompts/get';
    messages.push(takesArguments ? { method, target, id, arguments: (params as Record<string, unknown>).arguments } : { method, target, id });
  }
  return messages;
}

/** Any result is fine as long as it is one of the two declared shapes: the property is that nothing throws. */
function expectWellFormed(result: PeekResult): void {
  if (result.ok) expect(result.messages.length).toBeGreaterThan(0);
  else expect(typeof result.problem).toBe('string');
}

// Names an object inherits from Object.prototype, where a lookup table keyed by method could be fooled.
const INHERITED = ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf', 'isPrototypeOf', '__defineGetter__'];
const method = fc.oneof(
  fc.constantFrom('tools/call', 'prompts/get', 'resources/read', 'tasks/get', 'tools/list', 'initialize', 'notifications/initialized', 'ping', 'Tools/Call', 'tools/call ', ...INHERITED),
  fc.string(),
  fc.jsonValue({ maxDepth: 1 }),
);
const memberValue = fc.oneof(fc.string(), fc.constantFrom('delete_x', 'file:///etc/passwd', ''), fc.jsonValue({ maxDepth: 1 }));
const junk = fc.dictionary(fc.oneof(fc.string(), fc.constantFrom('Method', 'METHOD', 'Params', 'Name', 'URI', '__proto__')), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 });
const params = fc.oneof(
  fc.tuple(fc.record({ name: memberValue, uri: memberValue, taskId: memberValue, arguments: fc.jsonValue({ maxDepth: 2 }) }, { requiredKeys: [] }), junk).map(([known, extra]) => ({ ...extra, ...known })),
  fc.jsonValue({ maxDepth: 2 }),
);
const message = fc
  .tuple(
    fc.record({ jsonrpc: fc.constantFrom('2.0', '1.0'), id: fc.oneof(fc.integer(), fc.integer({ min: 0, max: 3 }), fc.string(), fc.constant(null), fc.jsonValue({ maxDepth: 1 })), method, params, result: fc.jsonValue({ maxDepth: 1 }) }, { requiredKeys: [] }),
    junk,
  )
  .map(([known, extra]) => ({ ...extra, ...known }));
const jsonRpcBody = fc.oneof(message, fc.array(message, { maxLength: 5 }), fc.array(fc.oneof(message, fc.jsonValue({ maxDepth: 1 })), { maxLength: 5 }));

const serialized = (value: unknown) => Buffer.from(JSON.stringify(value));

describe('JSON-RPC peeking under arbitrary bodies', () => {
  it(
    'peekJsonRpc never throws on arbitrary bytes',
    () => {
      const bytes = fc.oneof(
        fc.uint8Array({ maxLength: 512 }).map((array) => Buffer.from(array)),
        anyString().map((text) => Buffer.from(text)),
        fc.json().map((text) => Buffer.from(text.slice(0, Math.max(0, text.length - 1)))),
      );
      fc.assert(
        fc.property(bytes, (body) => expectWellFormed(peekJsonRpc(body))),
        fuzz,
      );
    },
    fuzzTimeout,
  );

  it(
    'peekJsonRpc never throws on any JSON value, and reads one message per batch item or one for a lone value',
    () => {
      fc.assert(
        fc.property(fc.jsonValue(), (value) => {
          const result = peekJsonRpc(serialized(value));
          expectWellFormed(result);
          if (result.ok) {
            expect(result.batch).toBe(Array.isArray(value));
            expect(result.messages.length).toBe(Array.isArray(value) ? value.length : 1);
          }
        }),
        fuzz,
      );
    },
    fuzzTimeout,
  );

  it(
    'peekJsonRpc never throws on deeply nested arrays and objects, closed or not, alone or inside params',
    () => {
      const depth = fc.oneof(fc.nat({ max: 100 }), fc.integer({ min: 1_000, max: 100_000 }));
      const nested = fc
        .tuple(depth, fc.constantFrom(['[', ']'], ['{"a":', '}']), fc.boolean(), fc.boolean())
        .map(([n, [open, close], closed, wrapped]) => {
          const value = open.repeat(n) + (open === '[' ? '' : '1') + (closed ? close.repeat(n) : '');
          return wrapped ? `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":${value}}}` : value;
        });
      fc.assert(
        fc.property(nested, (text) => {
          const result = peekJsonRpc(Buffer.from(text));
          expectWellFormed(result);
          if (result.ok && !result.batch) expect(result.messages[0]!.target).toBe(text.startsWith('{"jsonrpc"') ? 'x' : undefined);
        }),
        // Bodies up to 100,000 levels deep: a tenth of the runs keeps the folder within its time budget.
        { ...fuzz, numRuns: Math.ceil(fuzz.numRuns / 10) },
      );
    },
    fuzzTimeout,
  );

  it(
    'peekJsonRpc gives every tools/call and prompts/get message params.name as its target, and every resources/read params.uri',
    () => {
      fc.assert(
        fc.property(jsonRpcBody, (value) => {
          const result = peekJsonRpc(serialized(value));
          expectWellFormed(result);
          if (!result.ok) return;
          const items: unknown[] = Array.isArray(value) ? value : [value];
          expect(result.messages.length).toBe(items.length);
          result.messages.forEach((peeked, i) => {
            const item = items[i] as Record<string, unknown>;
            expect(peeked.method).toBe(item.method);
            const member = peeked.method === undefined ? undefined : TARGET_MEMBER.get(peeked.method);
            if (member !== undefined) {
              expect(typeof peeked.target).toBe('string');
              expect(peeked.target).toBe((item.params as Record<string, unknown>)[member]);
            }
          });
        }),
        fuzz,
      );
    },
    fuzzTimeout,
  );

  it(
    'peekJsonRpc refuses exactly the bodies whose methods or targets cannot be read, whatever the method is called',
    () => {
      fc.assert(
        fc.property(jsonRpcBody, (value) => {
          const body = serialized(value);
          const expected = expectedMessages(JSON.parse(body.toString('utf8')));
          const result = peekJsonRpc(body);
          expect(result.ok ? result.messages : undefined).toEqual(expected);
        }),
        fuzz,
      );
    },
    fuzzTimeout,
  );
});
