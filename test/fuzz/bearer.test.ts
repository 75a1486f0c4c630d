import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { extractBearerToken } from '../../src/auth/bearer.ts';
import { AuthFailure, type AuthFailureReason } from '../../src/auth/failure.ts';
import { anyString, fuzz, fuzzTimeout } from './runs.ts';

const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
const B64_CHARS = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/'];

type Outcome = { token: string } | { reason: AuthFailureReason };

/** Anything thrown that is not an AuthFailure escapes and fails the property: that is a crash. */
function extract(rawHeaders: readonly string[], search: string, maxTokenBytes: number): Outcome {
  try {
    return { token: extractBearerToken(rawHeaders, search, maxTokenBytes) };
  } catch (error) {
    if (error instanceof AuthFailure) return { reason: error.reason };
    throw error;
  }
}

/** HTTP field names compare ASCII-case-insensitively; written out so as not to share `toLowerCase` with the code. */
function isAuthorization(name: string): boolean {
  const lower = 'authorization';
  return name.length === lower.length && [...name].every((char, i) => char === lower[i] || char === lower[i]!.toUpperCase());
}

const isBearerScheme = (scheme: string) => /^bearer$/i.test(scheme);

const b64token = fc
  .tuple(fc.string({ unit: fc.constantFrom(...B64_CHARS), minLength: 1, maxLength: 80 }), fc.string({ unit: fc.constant('='), maxLength: 3 }))
  .map(([body, padding]) => body + padding);

const authorizationName = fc.mixedCase(fc.constant('authorization'));
const bearerScheme = fc.mixedCase(fc.constant('bearer'));

// Names and values no Node parser would deliver are included on purpose: the function must not rely on it.
const anyText = fc.oneof(
  fc.string(),
  anyString(),
  fc.string({ unit: fc.constantFrom('\r', '\n', '\0', ' ', '\t', 'a', ':', '=', ',') }),
  fc.nat({ max: 70_000 }).map((n) => 'a'.repeat(n)),
);
const nearNames = fc.constantFrom('authorisation', 'x-authorization', 'proxy-authorization', 'authorization ', ' authorization', 'authorization\0', 'authorizatıon', 'host', '');
const otherName = fc.oneof(nearNames, anyText).filter((name) => !isAuthorization(name));

const bearerValue = fc.oneof(
  fc.tuple(bearerScheme, b64token).map(([scheme, token]) => `${scheme} ${token}`),
  fc.tuple(bearerScheme, fc.constantFrom('', ' ', '  ', '\t', ',', '\u00a0'), fc.oneof(b64token, anyText)).map(([scheme, gap, token]) => scheme + gap + token),
  fc.nat({ max: 70_000 }).map((n) => `Bearer ${'a'.repeat(n)}`),
);
const anyValue = fc.oneof(bearerValue, anyText);

const line = (name: fc.Arbitrary<string>, value: fc.Arbitrary<string>) => fc.tuple(name, value);
const anyLine = fc.oneof(line(authorizationName, anyValue), line(otherName, anyValue));
const otherLines = fc.array(line(otherName, anyValue), { maxLength: 6 });

/** Lines in any order, flattened the way Node lays out `rawHeaders`. */
const rawHeaders = (lines: fc.Arbitrary<Array<[string, string]>>) =>
  lines.chain((all) => fc.shuffledSubarray(all, { minLength: all.length })).map((all) => all.flat());

/** `access_token` with each character as itself or percent-encoded in either hex case: URLSearchParams decodes them all alike. */
const accessTokenName = fc
  .array(fc.tuple(fc.boolean(), fc.boolean()), { minLength: 12, maxLength: 12 })
  .map((choices) =>
    [...'access_token']
      .map((char, i) => {
        const [encode, lowerHex] = choices[i]!;
        if (!encode) return char;
        const hex = char.charCodeAt(0).toString(16);
        return `%${lowerHex ? hex : hex.toUpperCase()}`;
      })
      .join(''),
  );
const queryPart = fc.oneof(
  fc.string().map(encodeURIComponent),
  fc.tuple(fc.string(), fc.string()).map(([name, value]) => `${encodeURIComponent(name)}=${encodeURIComponent(value)}`),
  fc.constantFrom('', '=', '&', 'access_token_=1', 'x_access_token=1'),
);
const queryWithAccessToken = fc
  .tuple(fc.array(queryPart, { maxLength: 3 }), accessTokenName, fc.option(fc.string()), fc.array(queryPart, { maxLength: 3 }))
  .map(([before, name, value, after]) => `?${[...before, value === null ? name : `${name}=${encodeURIComponent(value)}`, ...after].join('&')}`);
const anySearch = fc.oneof(fc.constant(''), fc.string().map((text) => `?${text}`), queryWithAccessToken, anyString());

const maxTokenBytes = fc.integer({ min: 0, max: 70_000 });

/** For any query and size cap, header lines drawn from `lines` never yield a token. */
function expectNoToken(lines: fc.Arbitrary<Array<[string, string]>>): void {
  fc.assert(
    fc.property(rawHeaders(lines), anySearch, maxTokenBytes, (raw, search, max) => {
      expect(extract(raw, search, max)).not.toHaveProperty('token');
    }),
    fuzz,
  );
}

describe('bearer extraction under arbitrary input', () => {
  it(
    'extractBearerToken throws nothing but AuthFailure, and returns only an RFC 6750 b64token within the size cap',
    () => {
      fc.assert(
        fc.property(rawHeaders(fc.array(anyLine, { maxLength: 6 })), anySearch, maxTokenBytes, (raw, search, max) => {
          const outcome = extract(raw, search, max);
          if ('token' in outcome) {
            expect(outcome.token).toMatch(B64TOKEN);
            expect(Buffer.byteLength(outcome.token)).toBeLessThanOrEqual(max);
          }
        }),
        fuzz,
      );
    },
    fuzzTimeout,
  );

  it(
    'extractBearerToken never returns a token when no Authorization line is present',
    () => {
      expectNoToken(otherLines);
    },
    fuzzTimeout,
  );

  it(
    'extractBearerToken never returns a token when two or more Authorization lines are present, in any case',
    () => {
      const lines = fc
        .tuple(fc.array(line(authorizationName, anyValue), { minLength: 2, maxLength: 4 }), otherLines)
        .map(([authorization, other]) => [...authorization, ...other]);
      expectNoToken(lines);
    },
    fuzzTimeout,
  );

  it(
    'extractBearerToken refuses a query carrying access_token, however it is percent-encoded, even beside a valid header',
    () => {
      const lines = fc
        .tuple(line(authorizationName, bearerValue), otherLines)
        .map(([authorization, other]) => [authorization, ...other]);
      fc.assert(
        fc.property(rawHeaders(lines), queryWithAccessToken, maxTokenBytes, (raw, search, max) => {
          expect(extract(raw, search, max)).toEqual({ reason: 'token_in_query' });
        }),
        fuzz,
      );
    },
    fuzzTimeout,
  );

  it(
    'extractBearerToken never returns a token from a scheme other than Bearer',
    () => {
      const scheme = fc
        .oneof(
          // Other schemes, Bearer glued to what follows it, and look-alikes (small capital ʙ, Cyrillic В, fullwidth).
          fc.constantFrom('Basic', 'DPoP', 'Digest', 'Token', 'bearer:', 'Bearer,', 'Bearer\t', 'Bearer\0', 'Bearerx', 'Bear', 'ʙearer', 'Вearer', 'ＢＥＡＲＥＲ', ''),
          fc.string(),
          anyString(),
        )
        .filter((candidate) => !candidate.includes(' ') && !isBearerScheme(candidate));
      const lines = fc
        .tuple(authorizationName, scheme, fc.oneof(b64token, anyText), otherLines)
        .map(([name, chosen, token, other]): Array<[string, string]> => [[name, `${chosen} ${token}`], ...other]);
      expectNoToken(lines);
    },
    fuzzTimeout,
  );

  it(
    'extractBearerToken returns exactly the token of one "Bearer <b64token>" line, in any case of name and scheme',
    () => {
      const input = fc
        .tuple(authorizationName, bearerScheme, b64token, otherLines, fc.nat({ max: 1000 }))
        .chain(([name, scheme, token, other, slack]) =>
          rawHeaders(fc.constant([[name, `${scheme} ${token}`] as [string, string], ...other])).map((raw) => ({ raw, token, max: token.length + slack })),
        );
      fc.assert(
        fc.property(input, ({ raw, token, max }) => {
          expect(extract(raw, '', max)).toEqual({ token });
        }),
        fuzz,
      );
    },
    fuzzTimeout,
  );
});
