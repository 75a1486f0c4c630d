// Performance benchmark of mcp-warden against a direct upstream and a bare Node proxy (the floor).
//
//   node bench/perf/run.ts [--seconds 5] [--repeats 3] [--streams 10000] [--events 50] [--spawns 20] [--calls 2000] [--stdio-seconds 5] [--stdio-only] [--quick]
//
// Everything listens on 127.0.0.1. The upstream, the floor and each mcp-warden run as child processes,
// so /proc gives each its own CPU time and memory; autocannon and a tiny authorization server run here.
// Last comes the stdio part: mcp-warden fronting a stdio MCP server, against that server's stdio direct.
// See bench/perf/README.md for what each number means.
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAuthority, type Authority } from './authority.ts';
import { readGc, type GcStats } from './gc.ts';
import { measureWindow, warmUp, type Window } from './measure.ts';
import { parseOptions, type PerfOptions } from './options.ts';
import { CLOCK_TICKS, openFilesLimit } from './procfs.ts';
import { DPOP_HEADING, DPOP_PAIRS, filterPairs, LIMIT_HEADING, LIMIT_PAIRS, LIST_HEADING, listTable, PAIR_HEADING, pairTable, proofLine, TRACING_HEADING, TRACING_PAIRS } from './filter-report.ts';
import { acceptanceChecks, checkLines, contextTable, gcWarning, mainTable, otherLoadWarning, sseLines, stdioLines, summarize, writeJson } from './report.ts';
import { runSse } from './sse.ts';
import { runStdio, type StdioPlan } from './stdio.ts';
import { REPO, startStack, TARGET_IDS, type Stack } from './targets.ts';

const CONNECTIONS = [1, 50] as const;
/** tools/call: (a) direct, (b) the floor, (c)–(h), (l) and (m) mcp-warden; tools/list: (i) direct, (j) and (k) mcp-warden. See targets.ts. */
const TARGETS = TARGET_IDS.length;
const WARM_UP_SECONDS = 1;
/** Other processes using more than this share of a core during a window earn the results a warning. */
const OTHER_LOAD_WARN_PERCENT = 10;
/** Headroom past the estimated run time before the watchdog ends everything (start-up, SSE waits). */
const WATCHDOG_SLACK_S = 150;

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const startedAt = new Date();
  const started = performance.now();
  const stdioPart = `${options.spawns} stdio sessions started and ${options.calls} stdio tools/call each way`;
  log(
    options.stdioOnly
      ? `mcp-warden perf bench, stdio part only: ${stdioPart}`
      : `mcp-warden perf bench: ${options.repeats} round(s) × ${TARGETS} targets × ${CONNECTIONS.join(' and ')} connection(s) × ${options.seconds} s; then ${options.streams} idle SSE streams and ${options.events} timed events; then ${stdioPart}`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'mcp-warden-perf-'));
  const authority = await startAuthority();
  let stack: Stack | undefined;
  const watchdog = setTimeout(() => {
    log('watchdog: the run overran its time bound; stopping every child');
    const hardExit = setTimeout(() => process.exit(1), 10_000);
    hardExit.unref();
    void (stack?.close() ?? Promise.resolve()).finally(() => process.exit(1));
  }, (estimatedSeconds(options) + WATCHDOG_SLACK_S) * 1000);
  watchdog.unref();
  try {
    stack = await startStack(dir, authority);
    if (options.stdioOnly) await runStdioOnly(stack, options, startedAt, started);
    else await run(stack, authority, options, startedAt, started);
  } finally {
    clearTimeout(watchdog);
    await stack?.close();
    await authority.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function run(stack: Stack, authority: Authority, options: PerfOptions, startedAt: Date, started: number): Promise<void> {
  const introspectionsBefore = authority.introspections();
  const tokenRequestsBefore = authority.tokenRequests();
  const exportsBefore = await sinkStats(stack);
  const windows = await interleave(stack, options);
  // (n) measured with spans that never left would be (c) again: the sink says what arrived.
  const exportsAfter = await sinkStats(stack);
  const otlpDuringLoad = { exports: exportsAfter.exports - exportsBefore.exports, bytes: exportsAfter.bytes - exportsBefore.bytes };
  // After the warm-up the caches must answer alone; a growing count would mean (e) or (g) measured the AS.
  const introspectionsDuringLoad = authority.introspections() - introspectionsBefore;
  const exchangesDuringLoad = authority.tokenRequests() - tokenRequestsBefore;
  // Read before the proxies stop: a process in a slow GC regime explains a CPU figure no code change would.
  const gc: Partial<Record<string, GcStats>> = {};
  for (const target of stack.targets) if (target.adminOrigin) gc[target.id] = await readGc(target.adminOrigin);

  // The SSE part gets a quiet machine: the proxies measured above are no longer needed.
  await Promise.all(stack.targets.map((target) => target.proxy?.stop()));
  const sse = await runSse(stack, options.streams, options.events, log);
  const stdio = await runStdio(stack, stdioPlan(options), log);

  const load = loadReport(stack, windows, gc, options);
  const stdioReport = stdioLines(stdio, OTHER_LOAD_WARN_PERCENT);
  const wallSeconds = (performance.now() - started) / 1000;
  const output = [
    ...load.lines,
    '',
    `SSE (a separate mcp-warden, JWT RS256, limits raised for this part: max_connections and max_connections_per_ip ${sse.attempted * 2}, max_streams ${sse.attempted * 2}, max_streams_per_principal 1000):`,
    sseLines(sse),
    '',
    STDIO_HEADING,
    stdioReport,
    '',
    `introspection calls during the load windows of all targets: ${introspectionsDuringLoad}`,
    `token-exchange calls during the load windows of all targets: ${exchangesDuringLoad} (before them, at (g)'s first request: ${tokenRequestsBefore})`,
    `OTLP exports (n) sent during the load windows: ${otlpDuringLoad.exports} (${(otlpDuringLoad.bytes / 1e6).toFixed(1)} MB of span JSON)`,
    machineLine(wallSeconds),
  ].join('\n');
  console.log(output);

  const path = writeJson(join(REPO, 'bench/perf/results'), {
    startedAt: startedAt.toISOString(),
    wallSeconds,
    options,
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version, clockTicks: CLOCK_TICKS, openFilesLimit: openFilesLimit() },
    targets: stack.targets.map((target) => ({ id: target.id, label: target.label, request: target.request })),
    ...load.report,
    gc,
    sse,
    stdio,
    introspectionsDuringLoad,
    exchangesDuringLoad,
    exchangesBeforeLoad: tokenRequestsBefore,
    otlpDuringLoad,
    windows,
    stdioReport,
  });
  log(`results written to ${path}`);
}

/** The load windows' figures, tables and checks: the lines printed, and the same under their keys in latest.json. */
function loadReport(stack: Stack, windows: readonly Window[], gc: Partial<Record<string, GcStats>>, options: PerfOptions) {
  const summaries = summarize(stack.targets, windows);
  const pairs = filterPairs(summaries, windows);
  const dpop = filterPairs(summaries, windows, DPOP_PAIRS);
  const tracing = filterPairs(summaries, windows, TRACING_PAIRS);
  const limits = filterPairs(summaries, windows, LIMIT_PAIRS);
  const report = {
    summaries,
    checks: acceptanceChecks(summaries, windows),
    filtering: pairs,
    dpop: { ...dpop[0]!, proofs: proofLine(windows) },
    tracing: tracing[0]!,
    requestLimits: limits[0]!,
    otherLoadWarning: otherLoadWarning(summaries, OTHER_LOAD_WARN_PERCENT),
    slowGcWarning: gcWarning(gc),
    table: mainTable(summaries),
    listTable: listTable(summaries),
    pairTable: pairTable(pairs),
    dpopTable: pairTable(dpop),
    tracingTable: pairTable(tracing),
    limitTable: pairTable(limits),
    contextTable: contextTable(summaries, windows, gc),
  };
  const { otherLoadWarning: warning, slowGcWarning: slowGc } = report;
  const lines = [
    '',
    `## mcp-warden performance — medians of ${options.repeats} round(s), ${options.seconds} s windows, POST /mcp tools/call`,
    '',
    report.table,
    '',
    LIST_HEADING,
    '',
    report.listTable,
    '',
    PAIR_HEADING,
    '',
    report.pairTable,
    '',
    DPOP_HEADING,
    '',
    report.dpopTable,
    '',
    report.dpop.proofs,
    '',
    TRACING_HEADING,
    '',
    report.tracingTable,
    '',
    LIMIT_HEADING,
    '',
    report.limitTable,
    '',
    'Context, all targets:',
    '',
    report.contextTable,
    ...(warning ? ['', warning] : []),
    ...(slowGc ? ['', slowGc] : []),
    '',
    'Acceptance checks (from the issues):',
    checkLines(report.checks),
  ];
  return { report, lines };
}

const STDIO_HEADING =
  'stdio upstream (a separate mcp-warden, JWT RS256, upstream.command = node bench/perf/stdio-server.ts, one child process per MCP session; the SDK Client on both sides):';

/** The stdio part alone, to rerun it when other load skewed it: its own results file, the full run's stays. */
async function runStdioOnly(stack: Stack, options: PerfOptions, startedAt: Date, started: number): Promise<void> {
  await Promise.all(stack.targets.map((target) => target.proxy?.stop()));
  const stdio = await runStdio(stack, stdioPlan(options), log);
  const wallSeconds = (performance.now() - started) / 1000;
  const stdioReport = stdioLines(stdio, OTHER_LOAD_WARN_PERCENT);
  console.log(['', STDIO_HEADING, stdioReport, '', machineLine(wallSeconds)].join('\n'));
  const machine = { cpus: cpus().length, model: cpus()[0]?.model, node: process.version, clockTicks: CLOCK_TICKS };
  const path = writeJson(join(REPO, 'bench/perf/results'), { startedAt: startedAt.toISOString(), wallSeconds, options, machine, stdio, stdioReport }, 'latest-stdio.json');
  log(`results written to ${path}`);
}

function stdioPlan(options: PerfOptions): StdioPlan {
  return { spawns: options.spawns, calls: options.calls, seconds: options.stdioSeconds };
}

/** What (n)'s collector stand-in has received so far. */
async function sinkStats(stack: Stack): Promise<{ exports: number; bytes: number }> {
  const response = await fetch(`${stack.otlpSinkOrigin}/_stats`, { signal: AbortSignal.timeout(2_000) });
  return (await response.json()) as { exports: number; bytes: number };
}

function machineLine(wallSeconds: number): string {
  return `machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, CLK_TCK ${CLOCK_TICKS}; wall time ${wallSeconds.toFixed(0)} s`;
}

/**
 * Round r measures every target once, in order, so slow drifts of the machine hit all targets alike. Each
 * target compared with another round by round is measured next to it: (n) and (l) before (c), (g) after (c) and (m)
 * after (g), (f) after (h), (k) after (j), so each round's pair ran seconds apart.
 */
async function interleave(stack: Stack, options: PerfOptions): Promise<Window[]> {
  const windows: Window[] = [];
  const order = [...stack.targets].sort((x, y) => measureRank(x.id) - measureRank(y.id));
  for (let round = 1; round <= options.repeats; round += 1) {
    for (const target of order) {
      if (round === 1) await warmUp(target, 50, WARM_UP_SECONDS);
      for (const connections of CONNECTIONS) {
        const window = await measureWindow(target, stack.upstream, connections, options.seconds);
        windows.push(window);
        log(describe(round, options.repeats, window));
      }
    }
  }
  return windows;
}

const MEASURE_ORDER = ['a', 'b', 'o', 'n', 'l', 'c', 'g', 'm', 'd', 'e', 'h', 'f', 'i', 'j', 'k'];

function measureRank(id: string): number {
  const rank = MEASURE_ORDER.indexOf(id);
  return rank < 0 ? MEASURE_ORDER.length : rank;
}

function describe(round: number, rounds: number, w: Window): string {
  const cpu = w.proxyCpuUsPerRequest === undefined ? '' : `, proxy ${w.proxyCpuUsPerRequest.toFixed(1)} µs/req, RSS ${((w.proxyRssBytes ?? 0) / 1048576).toFixed(1)} MiB`;
  return `[round ${round}/${rounds}] (${w.target}) @${w.connections}: ${w.requestsPerSecond.toFixed(0)} req/s, p50 ${w.p50.toFixed(3)} ms, p99 ${w.p99.toFixed(3)} ms${cpu}`;
}

function estimatedSeconds(options: PerfOptions): number {
  // A spawn each way is well under a second and an echo a few ms; the throughput windows run twice.
  const stdio = options.spawns * 2 + (options.calls * 2 * 5) / 1000 + 2 * options.stdioSeconds + 30;
  if (options.stdioOnly) return stdio;
  // (l)'s proofs are signed before each of its windows: some 20 µs each, a few seconds per window at most.
  const load = options.repeats * TARGETS * CONNECTIONS.length * options.seconds + TARGETS * WARM_UP_SECONDS + options.repeats * CONNECTIONS.length * 3;
  const sse = (options.events * 100) / 1000 + 60;
  return load + sse + stdio;
}

function log(line: string): void {
  console.error(`${new Date().toISOString().slice(11, 19)} ${line}`);
}

main().then(
  // Every child is stopped and every server closed by now; exiting explicitly guarantees the bench ends
  // even if some handle was overlooked (stdout and stderr are synchronous for files and pipes on Linux).
  () => process.exit(0),
  (error: unknown) => {
    console.error(`perf bench failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
