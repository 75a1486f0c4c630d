import type { IncomingHttpHeaders } from 'node:http';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.ts';
import { compileGlob } from '../../src/mcp/glob.ts';
import { judgeBody } from '../../src/mcp/judge.ts';
import { Policy } from '../../src/mcp/policy.ts';
import { anyString, fuzz, fuzzTimeout } from './runs.ts';

const REQUIRED = ['mcp:read'];
const HIERARCHY: Record<string, string[]> = { 'mcp:admin': ['mcp:write'], 'mcp:write': ['mcp:read'] };
const RULES = [
  { match: { method: 'tools/call', tool: 'delete_*' }, scopes: ['mcp:admin'] },
  { match: { method: 'tools/call' }, scopes: ['mcp:write'] },
  { match: { method: 'prompts/get', prompt: 'secret*' }, scopes: ['mcp:admin'] },
  { match: { method: 'resources/read', uri: 'file:///etc/*' }, scopes: ['mcp:admin'] },
  { match: { method: 'resources/*' }, scopes: ['mcp:read'] },
];

const policy = new Policy(
  validateConfig({
    resource: { url: 'https://mcp.example.com/mcp' },
    authorization_servers: [{ issuer: 'https://idp.example.com' }],
    upstream: { url: 'http://127.0.0.1:3000' },
    tokens: { required_scopes: REQUIRED },
    policy: { scope_hierarchy: HIERARCHY, rules: RULES },
  }),
);

/** Glob semantics as documented in glob.ts (`*` any run, `?` one character), matched character by character. */
function globMatches(pattern: string, value: string): boolean {
  const p = [...pattern];
  const v = [...value];
  const from = (i: number, j: number): boolean => {
    if (i === p.length) return j === v.length;
    if (p[i] === '*') return from(i + 1, j) || (j < v.length && from(i, j + 1));
    return j < v.length && (p[i] === '?' || p[i] === v[j]) && from(i + 1, j + 1);
  };
  return from(0, 0);
}

function effective(granted: readonly string[]): Set<string> {
  const scopes = new Set(granted);
  let grew = true;
  while (grew) {
    grew = false;
    for (const scope of [...scopes]) {
      for (const implied of HIERARCHY[scope] ?? []) {
        if (!scopes.has(implied)) {
          scopes.add(implied);
          grew = true;
        }
      }
    }
  }
  return scopes;
}

/** A message as the rules see it: absent method for a response, the target for the three targeted methods. */
interface Read {
  readonly method: string | undefined;
  readonly target: string | undefined;
}

function needed({ method, target }: Read): string[] {
  if (method === undefined) return REQUIRED;
  const rule = RULES.find(({ match }) => {
    const targetPattern = 'tool' in match ? match.tool : 'prompt' in match ? match.prompt : 'uri' in match ? match.uri : undefined;
    return globMatches(match.method, method) && (targetPattern === undefined || (target !== undefined && globMatches(targetPattern, target)));
  });
  return [...REQUIRED, ...(rule?.scopes ?? [])];
}

const TARGET_MEMBER: Readonly<Record<string, string>> = { 'tools/call': 'name', 'prompts/get': 'name', 'resources/read': 'uri' };
const targetMemberOf = (method: string) => (Object.hasOwn(TARGET_MEMBER, method) ? TARGET_MEMBER[method] : undefined);

/**
 * One object's members as written in the body. Kept as an ordered list rather than a JS object so that
 * case variants and duplicates survive, and each reading below can pick among them as its parser does.
 */
type Member = readonly [name: string, value: unknown];
type Members = readonly Member[];

/** Nested member lists are tagged so that they are told apart from JSON arrays. */
const MEMBERS = Symbol('members');
const members = (list: Members): Members => Object.assign([...list], { [MEMBERS]: true });
const isMembers = (value: unknown): value is Members => Array.isArray(value) && MEMBERS in value;

const toJson = (value: unknown): string => (isMembers(value) ? serialize(value) : JSON.stringify(value));
const serialize = (list: Members): string => `{${list.map(([name, value]) => `${JSON.stringify(name)}:${toJson(value)}`).join(',')}}`;

interface Body {
  readonly batch: boolean;
  readonly items: ReadonlyArray<Members | 'not-an-object'>;
}

const bodyText = ({ batch, items }: Body): string => {
  const texts = items.map((item) => (item === 'not-an-object' ? '7' : serialize(item)));
  return batch ? `[${texts.join(',')}]` : texts[0]!;
};

/**
 * The messages of a body as JSON.parse, and so the JavaScript and Python SDKs, read them: exact member
 * names, the last duplicate winning. Undefined for a body that is not JSON-RPC.
 */
function readParsed(text: string): Read[] | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  const items = Array.isArray(parsed) ? parsed : [parsed];
  if (items.length === 0) return undefined;
  const reads = items.map((item): Read | undefined => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return undefined;
    const method: unknown = Object.hasOwn(item, 'method') ? item.method : undefined;
    if (method !== undefined && typeof method !== 'string') return undefined;
    const member = method === undefined ? undefined : targetMemberOf(method);
    if (member === undefined) return { method, target: undefined };
    const params: unknown = Object.hasOwn(item, 'params') ? item.params : undefined;
    const target = typeof params === 'object' && params !== null && Object.hasOwn(params, member) ? (params as Record<string, unknown>)[member] : undefined;
    return typeof target === 'string' ? { method, target } : undefined;
  });
  return reads.every((read) => read !== undefined) ? reads : undefined;
}

/**
 * The messages of a body as Go's encoding/json reads them (mcp-go, and the Go SDK before
 * GHSA-wvj2-96wp-fq3f): member names match case-insensitively, `ſ` folding to s, the last match winning.
 */
function readLikeGo({ batch, items }: Body): Read[] | undefined {
  const matches = (name: string, field: string) => name.replaceAll('ſ', 's').toLowerCase() === field;
  const last = (list: Members, field: string): unknown => list.findLast(([name]) => matches(name, field))?.[1];
  const asMembers = (value: unknown): Members | undefined =>
    isMembers(value) ? value : typeof value === 'object' && value !== null && !Array.isArray(value) ? Object.entries(value) : undefined;
  const reads = (batch ? items : items.slice(0, 1)).map((item): Read | undefined => {
    if (item === 'not-an-object') return undefined;
    const method = last(item, 'method');
    if (method !== undefined && typeof method !== 'string') return undefined;
    const member = method === undefined ? undefined : targetMemberOf(method);
    if (member === undefined) return { method, target: undefined };
    const params = asMembers(last(item, 'params'));
    const target = params === undefined ? undefined : last(params, member);
    return typeof target === 'string' ? { method, target } : undefined;
  });
  return reads.length > 0 && reads.every((read) => read !== undefined) ? reads : undefined;
}

const allowedFor = (reads: readonly Read[], granted: readonly string[]) => {
  const scopes = effective(granted);
  return reads.every((read) => needed(read).every((scope) => scopes.has(scope)));
};

const toolName = fc.oneof(
  fc.constantFrom(
    'delete_x',
    'delete_',
    'DELETE_x',
    'Delete_x',
    'delete-x',
    'dеlete_x', // Cyrillic е
    'ｄｅｌｅｔｅ_x',
    'delete\u200b_x',
    ' delete_x',
    'delete_x\0',
    'read_x',
    'write_x',
  ),
  fc.string().map((suffix) => `delete_${suffix}`),
  fc.string(),
  anyString(),
);
const promptName = fc.oneof(fc.constantFrom('secret', 'secret_plan', 'Secret', 'public'), fc.string());
const uri = fc.oneof(fc.constantFrom('file:///etc/passwd', 'file:///etc/', 'FILE:///etc/passwd', 'file:///home/x', 'https://x/y'), fc.string());
const anyJson = fc.jsonValue({ maxDepth: 1 });

/** A second spelling of a member name: one Go still matches (another case, `ſ` for s), a padded one nobody matches, or a duplicate. */
const variant = (name: string) => fc.oneof(fc.mixedCase(fc.constant(name)), fc.constant(name.replace('s', 'ſ')), fc.constant(`${name} `), fc.constant(name));
const otherMember: fc.Arbitrary<Member> = fc.tuple(fc.oneof(fc.constantFrom('jsonrpc', 'id', 'result', 'error', '_meta', 'arguments'), fc.string()), anyJson);

/**
 * An object that mostly has the members a reader needs, in any order among junk: other members and second
 * spellings of the needed ones, which a reader matching names loosely may take instead.
 */
const objectWith = (needed: ReadonlyArray<readonly [string, fc.Arbitrary<unknown>]>): fc.Arbitrary<Members> =>
  fc
    .tuple(
      fc.tuple(...needed.map(([name, value]) => fc.option(value.map((chosen): Member => [name, chosen]), { freq: 8 }))),
      fc.array(fc.oneof(...needed.map(([name, value]) => fc.tuple(variant(name), value)), otherMember), { maxLength: 3 }),
    )
    .chain(([present, extra]) => {
      const all = [...present.filter((member) => member !== null), ...extra];
      return fc.shuffledSubarray(all, { minLength: all.length });
    });

const paramsOf = (member: 'name' | 'uri', target: fc.Arbitrary<string>) => objectWith([[member, fc.oneof({ weight: 9, arbitrary: target }, anyJson)]]).map(members);
const request = (method: fc.Arbitrary<string>, params: fc.Arbitrary<unknown>) =>
  objectWith([
    ['method', fc.oneof({ weight: 9, arbitrary: method }, anyJson)],
    ['params', params],
  ]);

const anyMessage: fc.Arbitrary<Members> = fc.oneof(
  request(fc.constant('tools/call'), paramsOf('name', toolName)),
  request(fc.constant('prompts/get'), paramsOf('name', promptName)),
  request(fc.constant('resources/read'), paramsOf('uri', uri)),
  request(fc.constantFrom('tools/list', 'resources/list', 'resources/subscribe', 'notifications/initialized', 'ping', 'Tools/Call', 'tools/call '), fc.oneof(paramsOf('name', toolName), anyJson)),
  // Responses and junk: no method at all, or one that is not a string.
  fc.array(fc.tuple(fc.constantFrom('jsonrpc', 'id', 'result', 'error', 'Method', 'params'), anyJson), { maxLength: 4 }),
);

const body: fc.Arbitrary<Body> = fc.oneof(
  anyMessage.map((message) => ({ batch: false, items: [message] })),
  fc.array(fc.oneof({ weight: 19, arbitrary: anyMessage }, fc.constant('not-an-object' as const)), { maxLength: 4 }).map((items) => ({ batch: true, items })),
);

const granted = fc.subarray(['mcp:read', 'mcp:write', 'mcp:admin', 'MCP:ADMIN', 'mcp:admin ', 'mcp:*', 'admin']);
const headers: fc.Arbitrary<IncomingHttpHeaders> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({}) },
  fc.record({ 'mcp-method': fc.constantFrom('tools/call', 'tools/list'), 'mcp-name': fc.constantFrom('read_x', 'delete_x') }, { requiredKeys: [] }),
);

const judgeText = (text: string, scopes: readonly string[], sent: IncomingHttpHeaders = {}) => judgeBody(sent, Buffer.from(text), new Set(scopes), false, policy);

describe('policy decisions under arbitrary bodies and scopes', () => {
  it(
    'judgeBody allows a body only when every message, read as JSON.parse reads it, gets the scopes its first matching rule needs',
    () => {
      fc.assert(
        fc.property(body, granted, headers, (given, scopes, sent) => {
          const text = bodyText(given);
          if (!judgeText(text, scopes, sent).allowed) return;
          const reads = readParsed(text);
          expect(reads).toBeDefined();
          expect(allowedFor(reads!, scopes)).toBe(true);
        }),
        fuzz,
      );
    },
    fuzzTimeout,
  );

  it(
    'judgeBody denies any body, single or batch, with a tools/call of a delete_* tool unless mcp:admin itself is granted',
    () => {
      const withDelete = fc
        .tuple(body, fc.string(), fc.nat(), fc.boolean())
        .map(([given, suffix, at, batch]): Body => {
          const dangerous = members([
            ['jsonrpc', '2.0'],
            ['id', 1],
            ['method', 'tools/call'],
            ['params', members([['name', `delete_${suffix}`]])],
          ]);
          const items = [...given.items];
          items.splice(at % (items.length + 1), 0, dangerous);
          return batch ? { batch, items } : { batch, items: [dangerous] };
        });
      const withoutAdmin = granted.map((scopes) => scopes.filter((scope) => scope !== 'mcp:admin'));
      fc.assert(
        fc.property(withDelete, withoutAdmin, headers, (given, scopes, sent) => {
          expect(judgeText(bodyText(given), scopes, sent).allowed).toBe(false);
        }),
        fuzz,
      );
    },
    fuzzTimeout,
  );

  it(
    'judgeBody never allows a body that is not JSON-RPC, even with every scope',
    () => {
      const text = fc.oneof(
        fc.uint8Array({ maxLength: 256 }).map((bytes) => Buffer.from(bytes).toString('utf8')),
        fc.jsonValue().map((value) => JSON.stringify(value)),
        body.map(bodyText),
      );
      fc.assert(
        fc.property(text, (sent) => {
          if (readParsed(sent) === undefined) expect(judgeText(sent, ['mcp:read', 'mcp:write', 'mcp:admin']).allowed).toBe(false);
        }),
        fuzz,
      );
    },
    fuzzTimeout,
  );

  it(
    "judgeBody allows a body only when every message, read with case-insensitive member names as Go's encoding/json reads it, gets the scopes it needs",
    () => {
      // Mostly lone tools/call messages and scopes below mcp:admin, where a misread member name gains the most.
      const toolCalls = fc.oneof(
        { weight: 3, arbitrary: request(fc.constant('tools/call'), paramsOf('name', toolName)).map((message): Body => ({ batch: false, items: [message] })) },
        body,
      );
      fc.assert(
        fc.property(toolCalls, fc.subarray(['mcp:read', 'mcp:write']), (given, scopes) => {
          if (!judgeText(bodyText(given), scopes).allowed) return;
          const reads = readLikeGo(given);
          // A body Go cannot read either is refused upstream: no rule is bypassed by it.
          if (reads !== undefined) expect(allowedFor(reads, scopes)).toBe(true);
        }),
        fuzz,
      );
    },
    fuzzTimeout,
  );

  it(
    'a ? in a rule glob matches exactly one character of a name, astral characters included',
    () => {
      fc.assert(
        fc.property(anyString({ minLength: 1, maxLength: 1 }), anyString({ maxLength: 3 }), (one, other) => {
          expect(compileGlob('drop_?')(`drop_${one}`)).toBe(true);
          expect(compileGlob('drop_?')(`drop_${other}`)).toBe([...other].length === 1);
        }),
        fuzz,
      );
    },
    fuzzTimeout,
  );
});
