// Command-line options of the soak run. Durations are seconds; the warm-up is part of the duration.
import { parseArgs } from 'node:util';

export interface SoakOptions {
  readonly durationS: number;
  readonly warmupS: number;
  readonly workers: number;
  /** Adds JWTs from an unconfigured issuer to the invalid mix; see INVALID_KINDS in tokens.ts. */
  readonly withUnknownIssuer: boolean;
  /** Adjustments made to what was asked, printed with the summary so they are not silent. */
  readonly notes: readonly string[];
}

const MAX_DURATION_S = 24 * 3600;
const MAX_WORKERS = 256;

export function parseOptions(argv: readonly string[]): SoakOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      duration: { type: 'string', default: '600' },
      warmup: { type: 'string', default: '60' },
      workers: { type: 'string', default: '16' },
      'without-unknown-issuer': { type: 'boolean', default: false },
    },
    strict: true,
  });
  const durationS = positiveNumber('duration', values.duration, MAX_DURATION_S);
  const workers = Math.round(positiveNumber('workers', values.workers, MAX_WORKERS));
  let warmupS = positiveNumber('warmup', values.warmup, MAX_DURATION_S, true);
  const notes: string[] = [];
  // A warm-up that eats most of the run leaves nothing to compare; keep at least half the run measured.
  if (warmupS > durationS / 2) {
    const clamped = Math.floor(durationS / 4);
    notes.push(`warm-up ${warmupS}s is more than half of the ${durationS}s run; using ${clamped}s`);
    warmupS = clamped;
  }
  return { durationS, warmupS, workers, withUnknownIssuer: !values['without-unknown-issuer'], notes };
}

function positiveNumber(name: string, raw: string, max: number, zeroAllowed = false): number {
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0 || (value === 0 && !zeroAllowed) || value > max) {
    throw new Error(`--${name} must be a number of seconds in ${zeroAllowed ? '[0' : '(0'}, ${max}], got ${JSON.stringify(raw)}`);
  }
  return value;
}
