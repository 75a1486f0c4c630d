import fc from 'fast-check';

/**
 * How hard every property searches. The default keeps test/fuzz within a few seconds on a two-core CI
 * runner; `FUZZ_RUNS=200000 npx vitest run test/fuzz` searches far longer locally.
 */
const DEFAULT_RUNS = 2000;

const raw = process.env.FUZZ_RUNS;
const runs = raw === undefined || raw === '' ? DEFAULT_RUNS : Number(raw);
// A typo must not silently fall back to a short run, or to NaN runs (fast-check would then run none).
if (!Number.isSafeInteger(runs) || runs < 1) throw new Error(`FUZZ_RUNS must be a positive integer, not ${JSON.stringify(raw)}`);

/** fast-check parameters shared by every property. */
export const fuzz = { numRuns: runs } as const;

/** Vitest's per-test timeout: the configured one for the CI default, none once FUZZ_RUNS asks for a long run. */
export const fuzzTimeout = runs === DEFAULT_RUNS ? undefined : 0;

/**
 * Code points drawn directly, lone surrogates included, ASCII and the BMP favoured. fast-check's own
 * `unit: 'binary'` builds a table of every code point on first use: most of a second in every worker.
 */
const codePoint = fc
  .oneof(fc.integer({ min: 0, max: 0x7f }), fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0x10ffff }))
  .map((code) => String.fromCodePoint(code));

/** Strings of any code points. */
export const anyString = (length: { minLength?: number; maxLength?: number } = {}) => fc.string({ unit: codePoint, ...length });
