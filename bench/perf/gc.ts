// What V8's garbage collector did in each mcp-warden, from prom-client's GC histogram on its /metrics.
// A process sometimes settles into a slow regime (scavenges of several milliseconds instead of well under
// one, old space twice the size), and then stays there: its CPU per request is ~30 % higher whatever it
// does. That is the process's luck, not its configuration, so the report shows it beside the figures.

/** Cumulative since the process started: the warm-up, the check request and every window. */
export interface GcStats {
  readonly minorCount: number;
  readonly minorSeconds: number;
  readonly majorCount: number;
}

const SERIES = /^mcp_warden_nodejs_gc_duration_seconds_(sum|count)\{kind="(minor|major)"\} (\S+)$/;

/** The GC figures of the mcp-warden whose admin listener is at `adminOrigin`; undefined when unreadable. */
export async function readGc(adminOrigin: string): Promise<GcStats | undefined> {
  try {
    const response = await fetch(`${adminOrigin}/metrics`, { signal: AbortSignal.timeout(2_000) });
    const values = new Map<string, number>();
    for (const line of (await response.text()).split('\n')) {
      const match = SERIES.exec(line);
      if (match) values.set(`${match[2]}_${match[1]}`, Number(match[3]));
    }
    const minorCount = values.get('minor_count');
    const minorSeconds = values.get('minor_sum');
    if (minorCount === undefined || minorSeconds === undefined) return undefined;
    return { minorCount, minorSeconds, majorCount: values.get('major_count') ?? 0 };
  } catch {
    return undefined;
  }
}

/** Mean scavenge time in milliseconds. */
export function meanMinorMs(stats: GcStats): number {
  return stats.minorCount === 0 ? 0 : (stats.minorSeconds * 1000) / stats.minorCount;
}
