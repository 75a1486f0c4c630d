// Samples the proxy process every few seconds: its own view (/metrics on the admin port, prom-client
// default metrics) and the kernel's (/proc/<pid>/status VmRSS).
import { readFileSync } from 'node:fs';

export const SAMPLE_INTERVAL_MS = 5_000;

export interface Sample {
  /** Seconds since traffic started. */
  readonly t: number;
  readonly rssProc: number | undefined;
  readonly rssProm: number | undefined;
  readonly heapUsed: number | undefined;
  /** prom-client resets its event-loop delay histogram on each scrape: these cover the last interval. */
  readonly lagP99: number | undefined;
  readonly lagMax: number | undefined;
  readonly openStreams: number | undefined;
}

/** The metric names read; checked against the child's /metrics when the run starts. */
export const METRICS = {
  rss: 'mcp_warden_process_resident_memory_bytes',
  heapUsed: 'mcp_warden_nodejs_heap_size_used_bytes',
  lagP99: 'mcp_warden_nodejs_eventloop_lag_p99_seconds',
  lagMax: 'mcp_warden_nodejs_eventloop_lag_max_seconds',
  openStreams: 'mcp_warden_open_streams',
} as const;

export async function takeSample(adminUrl: string, pid: number, startedAt: number): Promise<Sample> {
  const metrics = await scrape(adminUrl);
  return {
    t: (Date.now() - startedAt) / 1000,
    rssProc: vmRss(pid),
    rssProm: metrics.get(METRICS.rss),
    heapUsed: metrics.get(METRICS.heapUsed),
    lagP99: metrics.get(METRICS.lagP99),
    lagMax: metrics.get(METRICS.lagMax),
    openStreams: metrics.get(METRICS.openStreams),
  };
}

/** Unlabelled series of the Prometheus text format, by name; an empty map if the scrape failed. */
export async function scrape(adminUrl: string): Promise<Map<string, number>> {
  const values = new Map<string, number>();
  try {
    const response = await fetch(`${adminUrl}/metrics`, { signal: AbortSignal.timeout(3_000) });
    for (const line of (await response.text()).split('\n')) {
      const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*) (\S+)$/.exec(line);
      if (match) values.set(match[1]!, Number(match[2]));
    }
  } catch {
    // A missed scrape shows as undefined values in the sample; the run goes on.
  }
  return values;
}

/** Resident set size in bytes from the kernel, or undefined once the process is gone. */
function vmRss(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}
