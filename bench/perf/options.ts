// Command-line options of the performance benchmark. Every option is bounded so that a typo cannot turn
// the run into an hour-long one.
import { parseArgs } from 'node:util';

export interface PerfOptions {
  /** Length of one measured window, in seconds. */
  readonly seconds: number;
  /** Interleaved rounds over all targets; the report shows the median of the rounds. */
  readonly repeats: number;
  /** Idle SSE streams opened through the proxy for the memory figure. */
  readonly streams: number;
  /** SSE events timed through the proxy and direct, for the added latency per event. */
  readonly events: number;
  /** New stdio MCP sessions (one child process each) timed from initialize to its answer, direct and through mcp-warden. */
  readonly spawns: number;
  /** Sequential tools/call timed on one stdio session, direct and through mcp-warden. */
  readonly calls: number;
  /** Seconds of the 10-session stdio throughput window, per side. */
  readonly stdioSeconds: number;
  /** Runs the stdio part alone (a rerun after other load skewed it); the HTTP and SSE parts are skipped. */
  readonly stdioOnly: boolean;
  readonly quick: boolean;
}

const USAGE = 'usage: node bench/perf/run.ts [--seconds 5] [--repeats 3] [--streams 10000] [--events 50] [--spawns 20] [--calls 2000] [--stdio-seconds 5] [--stdio-only] [--quick]';

export function parseOptions(argv: readonly string[]): PerfOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      seconds: { type: 'string' },
      repeats: { type: 'string' },
      streams: { type: 'string' },
      events: { type: 'string' },
      spawns: { type: 'string' },
      calls: { type: 'string' },
      'stdio-seconds': { type: 'string' },
      'stdio-only': { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  // --quick is a smoke run (about a minute): one round of 2 s windows, fewer streams, spawns and calls. Explicit
  // options still win over it.
  const quick = values.quick;
  return {
    seconds: bounded('seconds', values.seconds, quick ? 2 : 5, 1, 60),
    repeats: bounded('repeats', values.repeats, quick ? 1 : 3, 1, 15),
    streams: bounded('streams', values.streams, quick ? 1_000 : 10_000, 1, 50_000),
    events: bounded('events', values.events, quick ? 20 : 50, 5, 1_000),
    spawns: bounded('spawns', values.spawns, quick ? 5 : 20, 1, 500),
    calls: bounded('calls', values.calls, quick ? 300 : 2_000, 10, 100_000),
    stdioSeconds: bounded('stdio-seconds', values['stdio-seconds'], quick ? 2 : 5, 1, 60),
    stdioOnly: values['stdio-only'],
    quick,
  };
}

function bounded(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    console.error(`--${name} must be an integer from ${min} to ${max}, got ${raw}\n${USAGE}`);
    process.exit(2);
  }
  return value;
}
