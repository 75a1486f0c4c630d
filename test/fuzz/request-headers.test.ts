import type { IncomingHttpHeaders } from 'node:http';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HOP_BY_HOP } from '../../src/proxy/hop-by-hop.ts';
import { createRequestHeaderScrubber } from '../../src/proxy/request-headers.ts';
import { fuzz, fuzzTimeout } from './runs.ts';

// Written out rather than imported: a name dropped from the list in src must fail here.
const SPOOFABLE = [
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-forwarded-port',
  'x-forwarded-prefix',
  'x-forwarded-uri',
  'x-real-ip',
  'x-original-url',
  'x-original-uri',
  'x-rewrite-url',
];
const KEPT = ['content-type', 'accept', 'host', 'mcp-session-id', 'mcp-protocol-version', 'last-event-id', 'cookie', 'set-cookie', 'x-forwarded', 'authorization-info', 'x-api-key-2'];

/** How many servers compare header names: `X_Api_Key` and `x-api-key` are one header. */
const canonical = (name: string) => name.toLowerCase().replaceAll('_', '-');

const TOKEN_CHARS = [..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~"];

/** A name as a client might spell it: any letter case, any `-` written as `_`. */
const spelled = (name: fc.Arbitrary<string>) =>
  fc.tuple(fc.mixedCase(name), fc.array(fc.boolean(), { minLength: 64, maxLength: 64 })).map(([mixed, underscore]) =>
    [...mixed].map((char, i) => (char === '-' && underscore[i % 64] ? '_' : char)).join(''),
  );

const anyName = fc.oneof(
  spelled(fc.constantFrom('authorization', ...HOP_BY_HOP, ...SPOOFABLE, ...KEPT, 'x-api-key', 'x-mcp-subject')),
  spelled(fc.string({ unit: fc.constantFrom(...TOKEN_CHARS), minLength: 1, maxLength: 12 })),
  fc.string(),
);
const headerValue: fc.Arbitrary<string | string[]> = fc.oneof(fc.string(), fc.array(fc.string(), { maxLength: 3 }));

/** A `Connection` list: names padded with HTTP whitespace, empty members, and repeats. */
const connectionValue = fc
  .array(fc.tuple(fc.oneof(anyName, fc.constant('')), fc.constantFrom('', ' ', '\t', '  ')), { maxLength: 6 })
  .map((members) => members.map(([name, pad]) => pad + name + pad).join(','));

const input = fc.record({
  injectedNames: fc.array(spelled(fc.oneof(fc.constantFrom('x-api-key', 'x-mcp-subject', 'x-request-id'), anyName)), { maxLength: 4 }),
  entries: fc.array(fc.tuple(anyName, headerValue), { maxLength: 12 }),
  connection: fc.option(connectionValue),
});

type Input = typeof input extends fc.Arbitrary<infer T> ? T : never;

/** Node lower-cases `connection` as it lower-cases every name; the others vary to cover callers beyond Node. */
function headersOf({ entries, connection }: Input): IncomingHttpHeaders {
  const headers: IncomingHttpHeaders = Object.fromEntries(entries);
  if (connection !== null) headers.connection = connection;
  return headers;
}

/** Everything that must go, from the lists above and the `Connection` header as the scrubber receives it. */
function removedNames(injectedNames: readonly string[], connection: string | string[] | undefined): Set<string> {
  const listed = [connection ?? []].flat().join(',').split(',').map((member) => member.replace(/^[ \t]+|[ \t]+$/g, ''));
  return new Set(['authorization', ...HOP_BY_HOP, ...SPOOFABLE, ...injectedNames, ...listed.filter(Boolean)].map(canonical));
}

describe('request header scrubbing under arbitrary headers', () => {
  it(
    'no authorization, hop-by-hop, spoofable, injected or Connection-listed header survives, in any case or _/- spelling',
    () => {
      fc.assert(
        fc.property(input, (given) => {
          const headers = headersOf(given);
          const removed = removedNames(given.injectedNames, headers.connection);
          const kept = createRequestHeaderScrubber({ injectedNames: given.injectedNames })(headers, false);
          expect(Object.keys(kept).filter((name) => removed.has(canonical(name)))).toEqual([]);
        }),
        fuzz,
      );
    },
    fuzzTimeout,
  );

  it(
    'every other header is kept with its value unchanged',
    () => {
      fc.assert(
        fc.property(input, (given) => {
          const headers = headersOf(given);
          const before = { ...headers };
          const removed = removedNames(given.injectedNames, headers.connection);
          const kept = createRequestHeaderScrubber({ injectedNames: given.injectedNames })(headers, false);
          for (const [name, value] of Object.entries(before)) {
            if (!removed.has(canonical(name))) expect(kept[name]).toBe(value);
          }
        }),
        fuzz,
      );
    },
    fuzzTimeout,
  );
});
