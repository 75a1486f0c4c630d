import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.ts';
import { buildProtectedResourceMetadata } from '../../src/metadata/protected-resource.ts';
import { parseRequestPath } from '../../src/proxy/request-path.ts';
import { anyString, fuzz, fuzzTimeout } from './runs.ts';

const metadata = buildProtectedResourceMetadata(
  validateConfig({
    resource: { url: 'https://mcp.example.com/mcp' },
    authorization_servers: [{ issuer: 'https://idp.example.com' }],
    upstream: { url: 'http://127.0.0.1:3000' },
  }),
);
const METADATA_PATHS = ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource'];

/** How the proxy routes a target: refused unless parseRequestPath accepts it, and served without a token only on an exact match. */
function route(target: string): 'refused' | 'metadata' | 'protected' {
  const parsed = parseRequestPath(target);
  if (!parsed.ok) return 'refused';
  return metadata.paths.has(parsed.path) ? 'metadata' : 'protected';
}

const rawPathOf = (target: string) => target.split('?', 1)[0]!;

/** RFC 3986 §5.2.4 for an absolute path, as an upstream that normalizes after decoding would apply it. */
function removeDotSegments(path: string): string {
  const out: string[] = [];
  const segments = path.split('/');
  segments.forEach((segment, i) => {
    const last = i === segments.length - 1;
    if (segment === '..') {
      if (out.length > 1) out.pop();
      if (last) out.push('');
    } else if (segment === '.') {
      if (last) out.push('');
    } else {
      out.push(segment);
    }
  });
  return out.join('/');
}

/** One percent-decoding, as an upstream applies it; undefined for malformed escapes, which such an upstream refuses. */
function decodeOnce(path: string): string | undefined {
  try {
    return decodeURIComponent(path);
  } catch {
    return undefined;
  }
}

/** WHATWG percent-decoding of %XX octets only, for comparing two spellings of one ASCII path. */
const unescapeOctets = (path: string) => path.replace(/%([0-9a-f]{2})/gi, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));

const percentEncode = (char: string, lowerHex: boolean) =>
  [...Buffer.from(char, 'utf8')]
    .map((byte) => {
      const hex = byte.toString(16).padStart(2, '0');
      return `%${lowerHex ? hex : hex.toUpperCase()}`;
    })
    .join('');

type Mutation =
  | { kind: 'case'; at: number }
  | { kind: 'encode'; at: number; lowerHex: boolean }
  | { kind: 'insert'; at: number; text: string }
  | { kind: 'backslash'; at: number }
  | { kind: 'prefix'; text: string }
  | { kind: 'suffix'; text: string };

const JUNK = ['./', '../', '/./', '/../', '//', '/', '\\', '.', '..', ';x=1', ';', '%00', '%2e', '%2E', '%2f', '%5C', '%252e', '#', '#x', '?', '?x=1', 'x', ' ', '\t', '%20'];

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('case' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('encode' as const), at: fc.nat(), lowerHex: fc.boolean() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.oneof(fc.constantFrom(...JUNK), fc.string({ maxLength: 3 })) }),
  fc.record({ kind: fc.constant('backslash' as const), at: fc.nat() }),
  ...(['prefix', 'suffix'] as const).map((kind) => fc.record({ kind: fc.constant(kind), text: fc.oneof(fc.constantFrom(...JUNK, 'http://h', '*', '/mcp'), fc.string({ maxLength: 4 })) })),
);

function mutate(base: string, mutations: readonly Mutation[]): string {
  return mutations.reduce((target, change) => {
    if (change.kind === 'prefix') return change.text + target;
    if (change.kind === 'suffix') return target + change.text;
    const at = target.length === 0 ? 0 : change.at % target.length;
    const char = target[at] ?? '';
    const rest = target.slice(at + 1);
    switch (change.kind) {
      case 'case':
        return target.slice(0, at) + (char === char.toLowerCase() ? char.toUpperCase() : char.toLowerCase()) + rest;
      case 'encode':
        return target.slice(0, at) + percentEncode(char, change.lowerHex) + rest;
      case 'backslash':
        return char === '/' ? `${target.slice(0, at)}\\${rest}` : target;
      case 'insert':
        return target.slice(0, at) + change.text + target.slice(at);
    }
  }, base);
}

/** Targets one or a few edits away from a metadata path, where a confusion would matter. */
const nearMetadata = fc
  .tuple(fc.constantFrom(...METADATA_PATHS), fc.array(mutation, { maxLength: 4 }))
  .map(([base, mutations]) => mutate(base, mutations));

/** What Node's HTTP parser delivers as `req.url`: it refuses every other byte in a request target. */
const nodeTarget = fc.oneof(
  nearMetadata.filter((target) => /^[\x21-\x7e]*$/.test(target)),
  fc.string({ unit: fc.constantFrom(...'/.%2eEfF5cC\\?#;=aZ~_-'), maxLength: 40 }).map((text) => `/${text}`),
  fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((code) => String.fromCharCode(code)), maxLength: 40 }).map((text) => `/${text}`),
);

const anyTarget = fc.oneof(nearMetadata, nodeTarget, fc.string(), anyString());

describe('request path parsing under arbitrary targets', () => {
  it('serves metadata at exactly the two configured paths', () => {
    expect([...metadata.paths].sort()).toEqual([...METADATA_PATHS].sort());
  });

  it(
    'parseRequestPath never throws, and accepts only an unambiguous origin-form path that re-joins with its query to the target',
    () => {
      fc.assert(
        fc.property(anyTarget, (target) => {
          const parsed = parseRequestPath(target);
          if (!parsed.ok) return;
          const { path, query } = parsed;
          expect(path + query).toBe(target);
          expect(path.startsWith('/')).toBe(true);
          expect(path).not.toContain('?');
          expect(query === '' || query.startsWith('?')).toBe(true);
          expect(path).not.toContain('//');
          expect(path.split('/').filter((segment) => segment === '.' || segment === '..')).toEqual([]);
          expect(path.toLowerCase()).not.toMatch(/%2e|%2f|%5c/);
          expect(path).not.toContain('\\');
          expect(target).not.toContain('#');
        }),
        fuzz,
      );
    },
    fuzzTimeout,
  );

  it(
    'a target reaches the metadata route only when it is exactly a metadata path, optionally followed by a query',
    () => {
      fc.assert(
        fc.property(anyTarget, (target) => {
          const exact = METADATA_PATHS.some((path) => target === path || (target.startsWith(`${path}?`) && !target.includes('#')));
          expect(route(target) === 'metadata').toBe(exact);
        }),
        fuzz,
      );
    },
    fuzzTimeout,
  );

  it(
    'a target that a WHATWG URL parser resolves to another path is refused or not served as metadata',
    () => {
      fc.assert(
        fc.property(anyTarget, (target) => {
          const resolved = URL.parse(target, 'http://h')?.pathname;
          if (resolved !== rawPathOf(target)) expect(route(target)).not.toBe('metadata');
        }),
        fuzz,
      );
    },
    fuzzTimeout,
  );

  it(
    'a target whose decoded, dot-normalized path is a metadata path but whose raw path is not is never served as metadata',
    () => {
      fc.assert(
        fc.property(nearMetadata, (target) => {
          const raw = rawPathOf(target);
          const decoded = decodeOnce(raw);
          const normalized = decoded === undefined ? undefined : removeDotSegments(decoded);
          if (raw.startsWith('/') && !METADATA_PATHS.includes(raw) && normalized !== undefined && METADATA_PATHS.includes(normalized)) {
            expect(route(target)).not.toBe('metadata');
          }
        }),
        fuzz,
      );
    },
    fuzzTimeout,
  );

  it(
    'an accepted path names the same segments to an upstream that percent-decodes once and removes dot segments',
    () => {
      fc.assert(
        fc.property(anyTarget, (target) => {
          const parsed = parseRequestPath(target);
          const decoded = parsed.ok ? decodeOnce(parsed.path) : undefined;
          if (decoded === undefined) return;
          expect(removeDotSegments(decoded)).toBe(decoded);
          expect(decoded).not.toContain('//');
          expect(decoded).not.toContain('\\');
        }),
        fuzz,
      );
    },
    fuzzTimeout,
  );

  it(
    'an accepted path from any target Node delivers is the path a WHATWG URL parser resolves, up to percent-encoding',
    () => {
      fc.assert(
        fc.property(nodeTarget, (target) => {
          const parsed = parseRequestPath(target);
          if (!parsed.ok) return;
          const resolved = URL.parse(target, 'http://h');
          expect(resolved?.host).toBe('h');
          expect(unescapeOctets(resolved!.pathname)).toBe(unescapeOctets(parsed.path));
        }),
        fuzz,
      );
    },
    fuzzTimeout,
  );
});
