import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.ts';
import { compileGlob } from '../../src/mcp/glob.ts';
import { peekJsonRpc } from '../../src/mcp/json-rpc.ts';
import { Policy } from '../../src/mcp/policy.ts';

const policyWith = (policy: Record<string, unknown>, required: string[] = []) =>
  new Policy(
    validateConfig({
      resource: { url: 'https://mcp.example.com/mcp' },
      authorization_servers: [{ issuer: 'https://idp.example.com' }],
      upstream: { url: 'http://127.0.0.1:3000' },
      tokens: { required_scopes: required },
      policy,
    }),
  );

const peek = (body: unknown) => {
  const result = peekJsonRpc(Buffer.from(JSON.stringify(body)));
  if (!result.ok) throw new Error(result.problem);
  return result.messages;
};

describe('glob', () => {
  it.each([
    ['delete_*', 'delete_file', true],
    ['delete_*', 'undelete_file', false],
    ['file:///etc/*', 'file:///etc/ssl/certs/x', true],
    ['read_?', 'read_a', true],
    ['read_?', 'read_ab', false],
    ['a.b', 'axb', false],
    ['tools/call', 'tools/call', true],
  ])('%s against %s → %s', (pattern, value, expected) => {
    expect(compileGlob(pattern)(value)).toBe(expected);
  });
});

describe('regressions found by the property tests', () => {
  it('refuses member names a Go upstream would read as method, params, name or uri (GHSA-wvj2-96wp-fq3f)', () => {
    for (const body of [
      '{"jsonrpc":"2.0","id":1,"Method":"tools/call","params":{"name":"delete_x"}}',
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_x","Name":"delete_x"}}',
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_x"},"paramſ":{"name":"delete_x"}}',
      '[{"params":{"name":"delete_x"},"methoD":"tools/call"}]',
      // The fold's lower-case side: a key already in lower case, of a member that is not (taskId).
      '{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":"t1","taskid":"t2"}}',
      '{"jsonrpc":"2.0","ID":2,"id":1,"method":"tools/call","params":{"name":"read_x"}}',
    ]) {
      expect(peekJsonRpc(Buffer.from(body)).ok, body).toBe(false);
    }
  });

  it('does not take inherited object properties for methods with targets', () => {
    expect(peekJsonRpc(Buffer.from('{"method":"constructor"}'))).toEqual({ ok: true, messages: [{ method: 'constructor', target: undefined }], batch: false });
  });

  it('lets ? match one whole code point', () => {
    expect(compileGlob('drop_?')('drop_\u{10000}')).toBe(true);
    expect(compileGlob('drop_?')('drop_\uD83D')).toBe(true);
    expect(compileGlob('drop_?')('drop_😀')).toBe(true);
  });
});

describe('JSON-RPC peeking', () => {
  it('reads the method and the target of each message', () => {
    expect(peek([{ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'x' } }, { jsonrpc: '2.0', id: 2, method: 'resources/read', params: { uri: 'file:///a' } }, { jsonrpc: '2.0', id: 3, result: {} }])).toEqual([
      { method: 'tools/call', target: 'x', id: 1, arguments: undefined },
      { method: 'resources/read', target: 'file:///a', id: 2 },
      { method: undefined, target: undefined, id: 3 },
    ]);
  });

  it.each([
    ['not JSON', '{"a":'],
    ['an empty batch', '[]'],
    ['a batch member that is not an object', '[1]'],
    ['a non-string method', '{"method":7}'],
    ['tools/call without a string name', '{"method":"tools/call","params":{"name":["a"]}}'],
  ])('refuses %s', (_name, body) => {
    expect(peekJsonRpc(Buffer.from(body)).ok).toBe(false);
  });
});

describe('policy', () => {
  const policy = policyWith(
    {
      scope_hierarchy: { 'mcp:admin': ['mcp:write'], 'mcp:write': ['mcp:read'] },
      rules: [
        { match: { method: 'tools/call', tool: 'delete_*' }, scopes: ['mcp:admin'] },
        { match: { method: 'tools/call' }, scopes: ['mcp:write'] },
        { match: { method: 'tools/call', tool: 'read_*' }, scopes: ['mcp:read'] },
      ],
    },
    ['mcp:read'],
  );

  it('expands the hierarchy transitively', () => {
    expect([...policy.effectiveScopes(new Set(['mcp:admin']))].sort()).toEqual(['mcp:admin', 'mcp:read', 'mcp:write']);
  });

  it('takes the first matching rule, and adds the required scopes to every message', () => {
    const decision = policy.decide(peek({ method: 'tools/call', params: { name: 'read_x' } }), new Set(['mcp:read']), false);
    expect(decision.messages[0]).toMatchObject({ rule: 'policy.rules[1]', needed: ['mcp:read', 'mcp:write'], missing: ['mcp:write'] });
    expect(decision.allowed).toBe(false);
  });

  it('judges a batch whole and names everything it needs', () => {
    const decision = policy.decide(peek([{ method: 'tools/list' }, { method: 'tools/call', params: { name: 'delete_all' } }]), new Set(['mcp:write']), false);
    expect(decision.allowed).toBe(false);
    expect(decision.needed).toEqual(['mcp:read', 'mcp:admin']);
    expect(decision.messages.map((message) => message.missing)).toEqual([[], ['mcp:admin']]);
  });

  it('lets responses and unmatched methods through on the required scopes alone', () => {
    expect(policy.decide(peek([{ id: 1, result: {} }, { method: 'ping' }]), new Set(['mcp:read']), false).allowed).toBe(true);
    expect(policy.decide(peek({ method: 'ping' }), new Set(), false).allowed).toBe(false);
  });

  it('inspects bodies only when there are rules', () => {
    expect(policyWith({}).inspectsBodies).toBe(false);
    expect(policy.inspectsBodies).toBe(true);
  });

  it('rejects a rule naming a tool under another method, at config time', () => {
    expect(() => policyWith({ rules: [{ match: { method: 'prompts/get', tool: 'x' }, scopes: ['a'] }] })).toThrow(/policy\.rules\[0\]\.match\.method: must be tools\/call/);
  });
});
