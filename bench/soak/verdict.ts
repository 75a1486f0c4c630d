// Turns the samples and counters into checks and the printed summary.
import type { WardenChild } from './stack.ts';
import { SAMPLE_INTERVAL_MS, type Sample } from './sampler.ts';
import { CATEGORIES, round, type Stats } from './stats.ts';

const MAX_RSS_GROWTH = 0.1;
const MAX_LAG_P99_S = 0.05;
/** Runs whose measured part is at least this long compare whole minutes; shorter ones compare quarters. */
const MINUTE_WINDOWS_FROM_S = 240;

export interface Check {
  readonly name: string;
  readonly pass: boolean;
  readonly detail: string;
}

export interface RunFacts {
  readonly durationS: number;
  readonly warmupS: number;
  readonly trafficSeconds: number;
  readonly samples: readonly Sample[];
  readonly stats: Stats;
  readonly child: WardenChild;
  /** mcp_warden_open_streams once traffic stopped and the last streams had time to close. */
  readonly openStreamsAfter: number | undefined;
}

/** The first and last windows whose median RSS is compared: a minute each, or a quarter for short runs. */
export function rssWindows(samples: readonly Sample[], warmupS: number, durationS: number) {
  const measuredS = durationS - warmupS;
  const width = measuredS >= MINUTE_WINDOWS_FROM_S ? 60 : measuredS / 4;
  const slack = SAMPLE_INTERVAL_MS / 1000;
  const measured = samples.filter((sample) => sample.t >= warmupS && sample.t <= durationS + slack);
  return {
    basis: measuredS >= MINUTE_WINDOWS_FROM_S ? 'first vs last minute after warm-up' : 'first vs last quarter after warm-up',
    first: measured.filter((sample) => sample.t <= warmupS + width),
    last: measured.filter((sample) => sample.t >= durationS - width),
    measured,
  };
}

/** Each sample's lag values cover the interval since the previous scrape; keep those wholly after warm-up. */
function lagSamplesAfterWarmup(samples: readonly Sample[], warmupS: number): Sample[] {
  return samples.filter((sample, index) => index > 0 && samples[index - 1]!.t >= warmupS - 0.5);
}

export function evaluate(facts: RunFacts): { checks: Check[]; proxy: Record<string, unknown> } {
  const totals = facts.stats.totals();
  const windows = rssWindows(facts.samples, facts.warmupS, facts.durationS);
  const firstMedian = median(values(windows.first, 'rssProc'));
  const lastMedian = median(values(windows.last, 'rssProc'));
  const growth = firstMedian && lastMedian ? (lastMedian - firstMedian) / firstMedian : undefined;
  const lagSamples = lagSamplesAfterWarmup(facts.samples, facts.warmupS);
  const lagP99 = max(values(lagSamples, 'lagP99'));
  const lagMax = max(values(lagSamples, 'lagMax'));
  const exit = facts.child.exit;
  const idle = CATEGORIES.filter((category) => facts.stats.report(facts.trafficSeconds)[category].requests === 0);

  const checks: Check[] = [
    { name: 'no wrong allow decisions', pass: totals.wrongAllows === 0, detail: `${totals.wrongAllows} invalid requests got a 2xx` },
    { name: 'no unexpected 5xx', pass: totals.unexpected5xx === 0, detail: `${totals.unexpected5xx} (none were injected)` },
    {
      name: `RSS growth < ${MAX_RSS_GROWTH * 100}%`,
      pass: growth !== undefined && growth < MAX_RSS_GROWTH,
      detail:
        growth === undefined
          ? 'not enough samples to compare'
          : `${pct(growth)} (${windows.basis}: median ${mib(firstMedian)} MiB over ${windows.first.length} samples -> ${mib(lastMedian)} MiB over ${windows.last.length})`,
    },
    {
      name: `event-loop delay p99 < ${MAX_LAG_P99_S * 1000} ms`,
      pass: lagP99 !== undefined && lagP99 < MAX_LAG_P99_S,
      detail: lagP99 === undefined ? 'no lag samples after warm-up' : `max of ${lagSamples.length} sampled p99 values after warm-up: ${ms(lagP99)} ms (max single delay ${ms(lagMax)} ms)`,
    },
    // Beyond the four above: signs of trouble the soak would otherwise hide.
    { name: 'every request got the status it should', pass: totals.unexpectedStatus === 0, detail: `${totals.unexpectedStatus} valid requests refused, or invalid ones answered other than 401/403` },
    { name: 'no client errors we did not cause', pass: totals.clientErrors === 0, detail: `${totals.clientErrors} resets, timeouts or broken streams` },
    { name: 'answers were right', pass: totals.badAnswers === 0, detail: `${totals.badAnswers} wrong echo, missing progress or broadcast events` },
    {
      name: 'proxy ran throughout and stopped cleanly on SIGTERM',
      pass: exit !== undefined && exit.expected && exit.code === 0,
      detail: exit ? `exit code ${exit.code}, signal ${exit.signal ?? 'none'}, ${exit.expected ? 'after our SIGTERM' : 'ON ITS OWN during the run'}` : 'still running',
    },
    { name: 'open streams back to 0 after traffic', pass: facts.openStreamsAfter === 0, detail: `mcp_warden_open_streams = ${facts.openStreamsAfter ?? 'unknown'}` },
    { name: 'every category carried traffic', pass: idle.length === 0, detail: idle.length === 0 ? 'all did' : `no requests in ${idle.join(', ')}` },
  ];

  const summary = (pick: keyof Sample, from: readonly Sample[]) => {
    const list = values(from, pick);
    return { min: mib(min(list)), median: mib(median(list)), max: mib(max(list)) };
  };
  const proxy = {
    pid: facts.child.pid,
    samples: facts.samples.length,
    rssMiB: { source: '/proc/<pid>/status VmRSS, after warm-up', ...summary('rssProc', windows.measured), firstWindowMedian: mib(firstMedian), lastWindowMedian: mib(lastMedian), growth: growth === undefined ? null : pct(growth), basis: windows.basis },
    rssMiBFromMetrics: { source: 'mcp_warden_process_resident_memory_bytes, after warm-up', ...summary('rssProm', windows.measured) },
    heapUsedMiB: { source: 'mcp_warden_nodejs_heap_size_used_bytes, after warm-up', ...summary('heapUsed', windows.measured) },
    eventLoopMs: { p99Max: ms(lagP99), p99Median: ms(median(values(lagSamples, 'lagP99'))), maxMax: ms(lagMax) },
    openStreamsAfterTraffic: facts.openStreamsAfter ?? null,
    exit: exit ?? null,
    logLines: facts.child.log.lines,
    logTail: facts.child.log.tail,
  };
  return { checks, proxy };
}

function values(samples: readonly Sample[], pick: keyof Sample): number[] {
  return samples.map((sample) => sample[pick]).filter((value): value is number => typeof value === 'number' && Number.isFinite(value));
}

export function median(list: readonly number[]): number | undefined {
  if (list.length === 0) return undefined;
  const sorted = [...list].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function min(list: readonly number[]): number | undefined {
  return list.length === 0 ? undefined : Math.min(...list);
}

function max(list: readonly number[]): number | undefined {
  return list.length === 0 ? undefined : Math.max(...list);
}

export function mib(bytes: number | undefined): number | null {
  return bytes === undefined ? null : round(bytes / 1024 / 1024, 1);
}

export function ms(seconds: number | undefined): number | null {
  return seconds === undefined ? null : round(seconds * 1000, 1);
}

function pct(ratio: number): string {
  return `${ratio >= 0 ? '+' : ''}${round(ratio * 100, 2)}%`;
}
