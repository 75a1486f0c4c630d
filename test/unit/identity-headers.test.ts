import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { Principal } from '../../src/auth/principal.ts';
import { headerValue } from '../../src/upstream/header-value.ts';
import { createIdentityHeaders, LOGGED_PRINCIPALS_MAX } from '../../src/upstream/identity-headers.ts';

const principal = (claims: Record<string, unknown>, clientId = 'c1'): Principal => ({
  issuer: 'https://idp.example.com',
  subject: typeof claims.sub === 'string' ? claims.sub : undefined,
  clientId,
  scopes: new Set(),
  expiresAt: undefined,
  claims,
});

function identity(mapping: Record<string, string> = { 'X-MCP-Subject': 'sub', 'X-MCP-Email': 'email' }) {
  const logs: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
  return { identity: createIdentityHeaders(mapping, logger), logs };
}

const decode = (value: string) => {
  const match = /^=\?base64\?([A-Za-z0-9+/]*={0,2})\?=$/.exec(value);
  return match ? Buffer.from(match[1]!, 'base64').toString('utf8') : value;
};

describe('an identity header value', () => {
  it.each([
    ['user-1', 'user-1'],
    ['alice@example.com', 'alice@example.com'],
    ['two words', 'two words'],
    ['~!#$%&*()[]{}<>?/\\|"\'`^=+,.;:', '~!#$%&*()[]{}<>?/\\|"\'`^=+,.;:'],
    ['=?base64?', '=?base64?'],
  ])('sends printable ASCII %j as it is', (claim, sent) => {
    expect(headerValue(claim)).toEqual({ ok: true, value: sent });
  });

  it.each([
    ['jürgen', '=?base64?asO8cmdlbg==?='],
    ['josé@example.com', '=?base64?am9zw6lAZXhhbXBsZS5jb20=?='],
    ['Hello, 世界', '=?base64?SGVsbG8sIOS4lueVjA==?='],
    [' padded ', '=?base64?IHBhZGRlZCA=?='],
    ['trailing ', '=?base64?dHJhaWxpbmcg?='],
    ['=?base64?literal?=', '=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?='],
    ['user 😀', '=?base64?dXNlciDwn5iA?='],
    ['Zoë\u200dX', `=?base64?${Buffer.from('Zoë\u200dX').toString('base64')}?=`],
  ])('encodes %j as the UTF-8 in padded Base64 between =?base64? and ?=, which decodes to the claim', (claim, sent) => {
    expect(headerValue(claim)).toEqual({ ok: true, value: sent });
    expect(decode(sent)).toBe(claim);
  });

  it.each([
    ['a\r\nX-Injected: 1', 'control_character'],
    ['a\nb', 'control_character'],
    ['a\rb', 'control_character'],
    ['a\u0000b', 'control_character'],
    ['a\tb', 'control_character'],
    ['a\u007fb', 'control_character'],
    ['jürgen\u0085x', 'control_character'],
    ['a\u2028b', 'control_character'],
    ['a\u2029b', 'control_character'],
    ['a\ud800b', 'ill_formed_unicode'],
    ['', 'empty'],
    ['a'.repeat(1025), 'too_long'],
    ['ü'.repeat(513), 'too_long'],
  ])('refuses %j, encoded or not (%s)', (claim, problem) => {
    expect(headerValue(claim)).toEqual({ ok: false, problem });
  });

  it('sends up to 1,024 UTF-8 bytes', () => {
    expect(headerValue('a'.repeat(1024))).toEqual({ ok: true, value: 'a'.repeat(1024) });
    expect(decode((headerValue('ü'.repeat(512)) as { value: string }).value)).toBe('ü'.repeat(512));
  });
});

describe('identity headers', () => {
  it('are lower-cased names with the claims of the principal, numbers and booleans as text', () => {
    const { identity: built, logs } = identity({ 'X-MCP-Subject': 'sub', 'X-Age': 'age', 'X-Verified': 'email_verified' });
    expect(built.headerNames).toEqual(['x-mcp-subject', 'x-age', 'x-verified']);
    expect(built.headers(principal({ sub: 'user-1', age: 42, email_verified: false }))).toEqual({ 'x-mcp-subject': 'user-1', 'x-age': '42', 'x-verified': 'false' });
    expect(logs).toEqual([]);
  });

  it('send a non-ASCII subject and email encoded, decoding to the claims', () => {
    const { identity: built, logs } = identity();
    const headers = built.headers(principal({ sub: 'jürgen', email: 'josé@example.com' }));
    expect(headers).toEqual({ 'x-mcp-subject': '=?base64?asO8cmdlbg==?=', 'x-mcp-email': '=?base64?am9zw6lAZXhhbXBsZS5jb20=?=' });
    expect(decode(headers['x-mcp-subject']!)).toBe('jürgen');
    expect(decode(headers['x-mcp-email']!)).toBe('josé@example.com');
    expect(logs).toEqual([]);
  });

  it('leave out an absent or null claim silently, and an array or object with a warning', () => {
    const { identity: built, logs } = identity({ 'X-MCP-Subject': 'sub', 'X-Email': 'email', 'X-Groups': 'groups', 'X-Address': 'address' });
    expect(built.headers(principal({ sub: 'user-1', email: null, groups: ['a'], address: { country: 'DE' } }))).toEqual({ 'x-mcp-subject': 'user-1' });
    expect(logs.map(({ header, problem }) => ({ header, problem }))).toEqual([
      { header: 'x-groups', problem: 'not_scalar' },
      { header: 'x-address', problem: 'not_scalar' },
    ]);
  });

  it('never send a subject with CR/LF, and say so without the value', () => {
    const { identity: built, logs } = identity();
    const headers = built.headers(principal({ sub: 'a\r\nX-Injected: 1', email: 'a@example.com' }));
    expect(headers).toEqual({ 'x-mcp-email': 'a@example.com' });
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatchObject({ level: 40, msg: 'identity claim not sent', iss: 'https://idp.example.com', client_id: 'c1', header: 'x-mcp-subject', claim: 'sub', problem: 'control_character' });
    expect(logs[0]).not.toHaveProperty('sub');
    expect(JSON.stringify(logs)).not.toContain('Injected');
  });

  it('log a claim not sent once per principal and header, naming a subject that could be sent', () => {
    const { identity: built, logs } = identity();
    const alice = principal({ sub: 'alice', email: 'x'.repeat(2000) });
    for (let i = 0; i < 3; i++) expect(built.headers(alice)).toEqual({ 'x-mcp-subject': 'alice' });
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatchObject({ sub: 'alice', header: 'x-mcp-email', claim: 'email', problem: 'too_long' });
    expect(JSON.stringify(logs)).not.toContain('xxxx');
    built.headers(principal({ sub: 'alice', email: 'x'.repeat(2000) }, 'c2'));
    built.headers(principal({ sub: 'bob', email: 'x'.repeat(2000) }));
    built.headers(principal({ sub: 'alice', email: 'a\nb' }));
    expect(logs.map(({ sub, client_id }) => `${sub} ${client_id}`)).toEqual(['alice c1', 'alice c2', 'bob c1']);
  });

  it(`forget the oldest logged principal after ${LOGGED_PRINCIPALS_MAX.toLocaleString('en')}`, () => {
    const { identity: built, logs } = identity();
    const unsent = (sub: string) => principal({ sub, email: ['not', 'a', 'string'] });
    for (let i = 0; i <= LOGGED_PRINCIPALS_MAX; i++) built.headers(unsent(`user-${i}`));
    expect(logs).toHaveLength(LOGGED_PRINCIPALS_MAX + 1);
    built.headers(unsent(`user-${LOGGED_PRINCIPALS_MAX}`));
    expect(logs).toHaveLength(LOGGED_PRINCIPALS_MAX + 1);
    built.headers(unsent('user-0'));
    expect(logs).toHaveLength(LOGGED_PRINCIPALS_MAX + 2);
  });
});
