// Soak test of mcp-warden: real authorization server and MCP server in this process, the proxy as a
// child process, a bounded mix of traffic for a fixed time, the child sampled every 5 s, then a verdict.
//
//   node bench/soak/run.ts [--duration 600] [--warmup 60] [--workers 16] [--without-unknown-issuer]
//
// Exits 0 on PASS, 1 on FAIL (or on a setup error). See bench/soak/README.md.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { Client } from './http.ts';
import { parseOptions, type SoakOptions } from './options.ts';
import { METRICS, SAMPLE_INTERVAL_MS, scrape, takeSample, type Sample } from './sampler.ts';
import { runWorker, type Worker } from './scenarios.ts';
import { startSoakStack, type SoakStack } from './stack.ts';
import { round, Stats } from './stats.ts';
import { INVALID_KINDS, TokenPool, WITHOUT_UNKNOWN_ISSUER } from './tokens.ts';
import { evaluate, mib, ms } from './verdict.ts';

const TOKEN_REFRESH_MS = 60_000;
/** Time for streams cut at the end to be seen closed by the proxy before the last look at its gauges. */
const SETTLE_MS = 2_000;
/** If the run is still going this long after its deadline, something hangs: kill everything, FAIL. */
const WATCHDOG_GRACE_MS = 90_000;

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  log(`starting: ${options.durationS}s run, ${options.warmupS}s warm-up, ${options.workers} workers${options.notes.map((note) => `; ${note}`).join('')}`);
  const stack = await startSoakStack(options.workers);
  const watchdog = setTimeout(() => {
    log('watchdog: the run overran its deadline; killing the proxy');
    process.kill(stack.child.pid, 'SIGKILL');
    process.exit(1);
  }, options.durationS * 1000 + WATCHDOG_GRACE_MS);
  watchdog.unref();
  try {
    return await soak(stack, options);
  } finally {
    await stack.close();
    clearTimeout(watchdog);
  }
}

async function soak(stack: SoakStack, options: SoakOptions): Promise<number> {
  await assertMetricNames(stack.adminUrl);
  const tokens = new TokenPool(stack.as, stack.mcpUrl, stack.opaqueResource);
  await tokens.refresh();
  const client = new Client(stack.mcpUrl, options.workers * 4);
  const ownLag = monitorEventLoopDelay({ resolution: 10 });
  ownLag.enable();

  const startedAt = Date.now();
  const stop = new AbortController();
  const stopTimer = setTimeout(() => stop.abort(), options.durationS * 1000);
  // Ctrl-C ends the run early but still cleans up and judges what was seen.
  const interrupt = () => (log('interrupted: stopping early'), stop.abort());
  process.once('SIGINT', interrupt);

  const stats = new Stats(startedAt);
  const samples: Sample[] = [];
  const maxIterations = Math.ceil(options.durationS * 1000);
  const invalidKinds = options.withUnknownIssuer ? INVALID_KINDS : WITHOUT_UNKNOWN_ISSUER;
  const workers = Array.from({ length: options.workers }, (): Worker => ({ client, tokens, stats, invalidKinds, stopped: () => stop.signal.aborted }));
  await Promise.all([
    sampleUntilStopped(stack, startedAt, options.durationS, stop.signal, samples, stats),
    refreshTokensUntilStopped(tokens, options.durationS, stop.signal, stats),
    ...workers.map((worker) => runWorker(worker, maxIterations)),
  ]);
  const trafficSeconds = (Date.now() - startedAt) / 1000;
  clearTimeout(stopTimer);
  process.off('SIGINT', interrupt);
  await client.close();

  await delay(SETTLE_MS);
  const openStreamsAfter = (await scrape(stack.adminUrl)).get(METRICS.openStreams);
  await stack.child.stop();
  ownLag.disable();

  const durationS = Math.min(options.durationS, trafficSeconds);
  const { checks, proxy } = evaluate({ durationS, warmupS: options.warmupS, trafficSeconds, samples, stats, child: stack.child, openStreamsAfter });
  const pass = checks.every((check) => check.pass);
  const totals = stats.totals();
  const summary = {
    options: { durationS: options.durationS, warmupS: options.warmupS, workers: options.workers, withUnknownIssuer: options.withUnknownIssuer, notes: options.notes },
    traffic: { seconds: round(trafficSeconds, 1), requests: totals.requests, requestsPerSecond: round(totals.requests / trafficSeconds, 1) },
    categories: stats.report(trafficSeconds),
    counters: stats.counters,
    proxy,
    loadGenerator: { note: 'this process (authorization server, MCP server, clients); not judged', eventLoopP99Ms: ms(ownLag.percentile(99) / 1e9), rssMiB: mib(process.memoryUsage().rss) },
    checks,
    problems: stats.problems,
    verdict: pass ? 'PASS' : 'FAIL',
  };
  console.log(compactJson(summary));
  for (const check of checks) console.log(`${check.pass ? 'ok  ' : 'FAIL'}  ${check.name}: ${check.detail}`);
  console.log(pass ? 'PASS' : 'FAIL');
  return pass ? 0 : 1;
}

/** Fails fast if the names this script reads are not what the proxy exports. */
async function assertMetricNames(adminUrl: string): Promise<void> {
  const exported = await scrape(adminUrl);
  const missing = Object.values(METRICS).filter((name) => !exported.has(name));
  if (missing.length > 0) throw new Error(`metrics not exported by mcp-warden: ${missing.join(', ')}`);
}

/** One sample every SAMPLE_INTERVAL_MS on a fixed grid from the start, and a last one when time is up. */
async function sampleUntilStopped(stack: SoakStack, startedAt: number, durationS: number, stopped: AbortSignal, samples: Sample[], stats: Stats): Promise<void> {
  const maxSamples = Math.ceil((durationS * 1000) / SAMPLE_INTERVAL_MS) + 2;
  for (let index = 0; index < maxSamples; index += 1) {
    const sample = await takeSample(stack.adminUrl, stack.child.pid, startedAt);
    samples.push(sample);
    // The demo MCP server records every request with its body, for tests; in a soak that record would
    // only grow this process. The proxy is measured, not this process, but keep the generator steady.
    stack.mcp.requests.splice(0);
    // Every sample goes to stderr: the trend is what a soak is about, and it shows the run is alive.
    progress(sample, stats);
    if (stopped.aborted) return;
    await delay(Math.max(0, startedAt + (index + 1) * SAMPLE_INTERVAL_MS - Date.now()), undefined, { signal: stopped }).catch(() => undefined);
  }
}

/** Valid tokens are re-minted now and then, so none expires mid-run and forged ones keep changing. */
async function refreshTokensUntilStopped(tokens: TokenPool, durationS: number, stopped: AbortSignal, stats: Stats): Promise<void> {
  const maxRefreshes = Math.ceil((durationS * 1000) / TOKEN_REFRESH_MS);
  for (let refresh = 0; refresh < maxRefreshes && !stopped.aborted; refresh += 1) {
    await delay(TOKEN_REFRESH_MS, undefined, { signal: stopped }).catch(() => undefined);
    if (stopped.aborted) return;
    // A failed refresh keeps the previous tokens, which are still valid for a while; it is only noted.
    await tokens.refresh().then(
      () => stats.note('token refreshes'),
      () => stats.note('token refresh failures'),
    );
  }
}

function progress(sample: Sample, stats: Stats): void {
  const { requests } = stats.totals();
  log(
    `t=${Math.round(sample.t)}s requests=${requests} rss=${mib(sample.rssProc)}MiB heap=${mib(sample.heapUsed)}MiB ` +
      `lag_p99=${ms(sample.lagP99)}ms open_streams=${sample.openStreams ?? '?'}`,
  );
}

/** JSON with two-space indents, but any object or array that fits on one line is kept on one line. */
function compactJson(value: unknown, indent = ''): string {
  const flat = JSON.stringify(value);
  if (flat === undefined || flat.length + indent.length <= 110 || value === null || typeof value !== 'object') return flat ?? 'null';
  const inner = `${indent}  `;
  const entries = Array.isArray(value)
    ? value.map((item) => `${inner}${compactJson(item, inner)}`)
    : Object.entries(value).map(([key, item]) => `${inner}${JSON.stringify(key)}: ${compactJson(item, inner)}`);
  const [open, close] = Array.isArray(value) ? ['[', ']'] : ['{', '}'];
  return `${open}\n${entries.join(',\n')}\n${indent}${close}`;
}

function log(message: string): void {
  console.error(`[soak] ${message}`);
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error('[soak] setup failed:', error instanceof Error ? error.stack : error);
    console.log('FAIL');
    process.exit(1);
  },
);
