// Turns the windows into medians, a markdown table, the issue's acceptance checks and a JSON file.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { meanMinorMs, type GcStats } from './gc.ts';
import { median, type Window } from './measure.ts';
import type { SseResult } from './sse.ts';
import type { StdioResult } from './stdio.ts';
import type { RequestKind, Target, TargetId } from './targets.ts';
import { mib } from './sse.ts';

export interface Summary {
  readonly id: TargetId;
  readonly label: string;
  readonly request: RequestKind;
  /** Medians over the repeats. */
  readonly rps50: number;
  readonly p50At1: number;
  readonly p99At1: number;
  readonly p50At50: number;
  readonly p99At50: number;
  readonly cpuUsPerRequest: number | undefined;
  readonly rssBytes: number | undefined;
  readonly upstreamCpuUsPerRequest: number;
  readonly loadGeneratorCorePercent: number;
  /** The largest share of a core used by other processes in any of this target's windows. */
  readonly otherLoadMaxCorePercent: number;
  readonly rps1: number;
}

export interface Check {
  readonly name: string;
  readonly pass: boolean;
  readonly detail: string;
}

export function summarize(targets: readonly Target[], windows: readonly Window[]): Summary[] {
  return targets.map((target) => {
    const at = (connections: number) => windows.filter((window) => window.target === target.id && window.connections === connections);
    const [one, fifty] = [at(1), at(50)];
    const med = (list: readonly Window[], pick: (window: Window) => number | undefined) => median(list.map((window) => pick(window) ?? Number.NaN));
    return {
      id: target.id,
      label: target.label,
      request: target.request,
      rps50: med(fifty, (window) => window.requestsPerSecond),
      rps1: med(one, (window) => window.requestsPerSecond),
      p50At1: med(one, (window) => window.p50),
      p99At1: med(one, (window) => window.p99),
      p50At50: med(fifty, (window) => window.p50),
      p99At50: med(fifty, (window) => window.p99),
      cpuUsPerRequest: target.proxy ? med(fifty, (window) => window.proxyCpuUsPerRequest) : undefined,
      rssBytes: target.proxy ? med(fifty, (window) => window.proxyRssBytes) : undefined,
      upstreamCpuUsPerRequest: med(fifty, (window) => window.upstreamCpuUsPerRequest),
      loadGeneratorCorePercent: med(fifty, (window) => window.loadGeneratorCorePercent),
      otherLoadMaxCorePercent: Math.max(...[...one, ...fifty].map((window) => window.otherLoadCorePercent)),
    };
  });
}

/** The tools/call targets, (a)–(h) and (l); the tools/list ones have a table of their own (filter-report.ts). */
export function mainTable(summaries: readonly Summary[]): string {
  return targetTable(summaries, 'tools/call', 'a', 'b');
}

/**
 * One row per target of a request kind, against two references: `direct` (straight to the upstream) and
 * `base` (the proxy every other row is compared with).
 */
export function targetTable(summaries: readonly Summary[], request: RequestKind, directId: TargetId, baseId: TargetId): string {
  const direct = byId(summaries, directId);
  const base = byId(summaries, baseId);
  const rows = summaries
    .filter((s) => s.request === request)
    .map((s) => [
      `(${s.id}) ${s.label}`,
      fixed(s.rps50, 0),
      `${fixed(s.p50At1, 3)} / ${fixed(s.p99At1, 3)}`,
      `${fixed(s.p50At50, 2)} / ${fixed(s.p99At50, 2)}`,
      s.cpuUsPerRequest === undefined ? '—' : fixed(s.cpuUsPerRequest, 1),
      s.rssBytes === undefined ? '—' : mib(s.rssBytes),
      fixed(s.rps50 / direct.rps50, 2),
      s.id === directId ? '—' : fixed(s.rps50 / base.rps50, 2),
      s.cpuUsPerRequest === undefined ? '—' : fixed(s.cpuUsPerRequest / base.cpuUsPerRequest!, 2),
      s.id === directId || s.id === baseId ? '—' : signed(s.p50At1 - base.p50At1, 3),
    ]);
  const header = ['target', 'req/s @50', 'p50 / p99 @1 (ms)', 'p50 / p99 @50 (ms)', 'proxy CPU µs/req', 'proxy RSS MiB', `req/s vs (${directId})`, `req/s vs (${baseId})`, `CPU vs (${baseId})`, `added p50 @1 over (${baseId}) (ms)`];
  return markdown(header, rows);
}

export function contextTable(summaries: readonly Summary[], windows: readonly Window[], gc: Partial<Record<string, GcStats>> = {}): string {
  const rows = summaries.map((s) => {
    const mine = windows.filter((window) => window.target === s.id);
    const failures = mine.reduce((sum, window) => sum + window.non2xx + window.errors, 0);
    const stats = gc[s.id];
    const gcCell = stats ? `${stats.minorCount} × ${fixed(meanMinorMs(stats), 2)} ms; ${stats.majorCount}` : '—';
    return [`(${s.id})`, fixed(s.rps1, 0), fixed(s.upstreamCpuUsPerRequest, 1), fixed(s.loadGeneratorCorePercent, 0), fixed(s.otherLoadMaxCorePercent, 0), String(failures), gcCell];
  });
  return markdown(
    ['target', 'req/s @1', 'upstream CPU µs/req @50', 'load generator % of a core @50', 'other processes, max % of a core', 'non-2xx + errors (all windows)', 'mcp-warden GC, whole run: scavenges × mean; major GCs'],
    rows,
  );
}

/** Scavenges this many times slower than the median mcp-warden's (and over 2 ms) mark a slow GC regime. */
const SLOW_GC_FACTOR = 3;
const SLOW_GC_MIN_MS = 2;

/** A warning naming the mcp-warden processes whose GC ran in a slow regime; undefined when none did. */
export function gcWarning(gc: Partial<Record<string, GcStats>>): string | undefined {
  const means = Object.entries(gc).flatMap(([id, stats]) => (stats ? [{ id, ms: meanMinorMs(stats) }] : []));
  if (means.length < 2) return undefined;
  const typical = median(means.map((m) => m.ms));
  const slow = means.filter((m) => m.ms > SLOW_GC_MIN_MS && m.ms > SLOW_GC_FACTOR * typical);
  if (slow.length === 0) return undefined;
  const named = slow.map((m) => `(${m.id}) ${fixed(m.ms, 1)} ms`).join(', ');
  return `WARNING: slow GC regime in ${named} per scavenge against ${fixed(typical, 2)} ms typical: such a process spends about a third more CPU per request whatever it runs (it settles there at random, and stays); its CPU figures and the checks that use them measure that, not the code. Rerun for a comparison`;
}

export function acceptanceChecks(summaries: readonly Summary[], windows: readonly Window[]): Check[] {
  const b = byId(summaries, 'b');
  const c = byId(summaries, 'c');
  const d = byId(summaries, 'd');
  const e = byId(summaries, 'e');
  const f = byId(summaries, 'f');
  const g = byId(summaries, 'g');
  const o = byId(summaries, 'o');
  const cpu = (s: Summary) => s.cpuUsPerRequest!;
  const within5 = (s: Summary) => Math.abs(cpu(s) - cpu(c)) / cpu(c);
  const gVsC = pairedCpuRatios(windows, 'g', 'c');
  const gVsCMedian = median(gVsC) - 1;
  const addedP50 = c.p50At1 - b.p50At1;
  return [
    {
      name: '(c) CPU ≤ 1.10 × (b) and req/s ≥ 0.90 × (b)',
      pass: cpu(c) <= 1.1 * cpu(b) && c.rps50 >= 0.9 * b.rps50,
      detail: `CPU ${fixed(cpu(c) / cpu(b), 2)} × (b), req/s ${fixed(c.rps50 / b.rps50, 2)} × (b)`,
    },
    { name: '(d) CPU within 5 % of (c)', pass: within5(d) <= 0.05, detail: `${signed(((cpu(d) - cpu(c)) / cpu(c)) * 100, 1)} %` },
    { name: '(e) CPU within 5 % of (c)', pass: within5(e) <= 0.05, detail: `${signed(((cpu(e) - cpu(c)) / cpu(c)) * 100, 1)} %` },
    {
      name: '(c) p50@1 − (b) p50@1 ≤ 0.05 ms and (c) p99@1 ≤ 1 ms',
      pass: addedP50 <= 0.05 && c.p99At1 <= 1,
      detail: `added p50 ${signed(addedP50, 3)} ms, p99 ${fixed(c.p99At1, 3)} ms`,
    },
    { name: '(f) req/s ≥ 0.85 × (b)', pass: f.rps50 >= 0.85 * b.rps50, detail: `${fixed(f.rps50 / b.rps50, 2)} × (b)` },
    // Issue 24: mcp-warden, with its own forwarder, against the http-proxy-3 floor it replaced; (o) shows what
    // that forwarder alone costs, so the part of each figure that is mcp-warden's own can be read off.
    {
      name: 'issue 24: (c) CPU ≤ 0.75 × (b) and req/s ≥ 1.3 × (b)',
      pass: cpu(c) <= 0.75 * cpu(b) && c.rps50 >= 1.3 * b.rps50,
      detail: `CPU ${fixed(cpu(c) / cpu(b), 2)} × (b), req/s ${fixed(c.rps50 / b.rps50, 2)} × (b); the undici floor (o) alone: CPU ${fixed(cpu(o) / cpu(b), 2)} × (b), req/s ${fixed(o.rps50 / b.rps50, 2)} × (b)`,
    },
    {
      name: 'issue 24: (c) p99@1 ≤ (b) p99@1 and added p50@1 ≤ 0.05 ms',
      pass: c.p99At1 <= b.p99At1 && addedP50 <= 0.05,
      detail: `p99 ${fixed(c.p99At1, 3)} vs ${fixed(b.p99At1, 3)} ms, added p50 ${signed(addedP50, 3)} ms`,
    },
    { name: 'issue 24: (f) CPU ≤ 0.9 × (b)', pass: cpu(f) <= 0.9 * cpu(b), detail: `${fixed(cpu(f) / cpu(b), 2)} × (b)` },
    // Issue 18, the hot path: a cached exchanged token must cost no more than the static setup (c). Compared
    // round by round, as the rounds were measured: the machine drifts between rounds by more than 10 %.
    {
      name: '(g) CPU within 10 % of (c), median of the rounds\' ratios',
      pass: Math.abs(gVsCMedian) <= 0.1,
      detail: `(g) CPU vs (c) per round ${gVsC.map((ratio) => `${signed((ratio - 1) * 100, 1)} %`).join(', ')}: median ${signed(gVsCMedian * 100, 1)} % (medians of each ${fixed(cpu(g), 1)} vs ${fixed(cpu(c), 1)} µs/req); req/s ${fixed(g.rps50 / c.rps50, 2)} × (c)`,
    },
  ];
}

/** Proxy CPU per request of `target` over `reference` in each round's 50-connection windows, in round order. */
function pairedCpuRatios(windows: readonly Window[], target: TargetId, reference: TargetId): number[] {
  const at50 = (id: TargetId) => windows.filter((window) => window.target === id && window.connections === 50).map((window) => window.proxyCpuUsPerRequest ?? Number.NaN);
  const [mine, theirs] = [at50(target), at50(reference)];
  return mine.slice(0, theirs.length).map((value, round) => value / theirs[round]!);
}

/** A warning when something besides the bench used the CPU during the windows; undefined when quiet. */
export function otherLoadWarning(summaries: readonly Summary[], thresholdPercent: number): string | undefined {
  const worst = Math.max(...summaries.map((s) => s.otherLoadMaxCorePercent));
  if (!(worst > thresholdPercent)) return undefined;
  return `WARNING: other processes used up to ${worst.toFixed(0)} % of a core during the windows: the numbers above are skewed by that load; rerun on a quiet machine`;
}

export function checkLines(checks: readonly Check[]): string {
  return checks.map((check) => `${check.pass ? 'PASS' : 'FAIL'}  ${check.name}: ${check.detail}`).join('\n');
}

export function sseLines(sse: SseResult): string {
  const refused = Object.entries(sse.refused).map(([why, n]) => `${n}× ${why}`).join(', ') || 'none';
  const lines = [
    `idle SSE streams requested: ${sse.requested}; open-files limit (ulimit -n): ${sse.fdLimit ?? 'unlimited'}${sse.fdLimited ? ` — only ${sse.attempted} attempted: the proxy needs 2 sockets per stream (client and upstream) and the limit is not raised by the bench` : ''}`,
    `streams open through mcp-warden (200 + event-stream headers): ${sse.opened} of ${sse.attempted}; still waiting for headers: ${sse.waiting}; refused: ${refused}; upstream sees ${sse.upstreamOpen} open`,
    `mcp-warden RSS idle ${mib(sse.rssIdleBytes)} MiB → with the streams ${mib(sse.rssWithStreamsBytes)} MiB (${fixed(sse.bytesPerConnection / 1024, 1)} KiB per client connection held; ${fixed(sse.secondsToOpen, 1)} s to open)`,
    `added latency per SSE event (median of ${sse.latency.events}): ${signed(sse.latency.addedMedianMs, 3)} ms (direct ${fixed(sse.latency.directMedianMs, 3)} ms, through mcp-warden ${fixed(sse.latency.proxiedMedianMs, 3)} ms; p99 ${fixed(sse.latency.directP99Ms, 3)} / ${fixed(sse.latency.proxiedP99Ms, 3)} ms)`,
  ];
  if (sse.waiting > 0 && sse.upstreamOpen < sse.opened + sse.waiting) {
    lines.push(
      `note: the upstream held only ${sse.upstreamOpen} streams; each needs an upstream socket, and mcp-warden's upstream pool allows limits.max_connections of them (src/proxy/forward.ts), so further streams wait until upstream.response_timeout`,
    );
  }
  return lines.join('\n');
}

/** The stdio part: the table, then what mcp-warden itself reports and whether other load skewed it. */
export function stdioLines(stdio: StdioResult, warnPercent: number): string {
  const { spawns, calls, throughput: tp } = stdio;
  const three = (s: { p50: number; p95: number; max: number }) => `${fixed(s.p50, 1)} / ${fixed(s.p95, 1)} / ${fixed(s.max, 1)}`;
  const two = (s: { p50: number; p99: number }) => `${fixed(s.p50, 3)} / ${fixed(s.p99, 3)}`;
  const table = markdown(
    ['stdio MCP server (bench/perf/stdio-server.ts)', 'direct: the bench on its stdio', 'through mcp-warden: HTTP → stdio bridge', 'added by mcp-warden'],
    [
      [`new session: spawn → initialize answer, p50 / p95 / max (ms), n=${spawns.proxied.n}`, three(spawns.direct), three(spawns.proxied), `${signed(spawns.proxied.p50 - spawns.direct.p50, 1)} (p50)`],
      [
        `tools/call echo, 1 in flight, p50 / p99 (ms), n=${calls.n}`,
        two(calls.direct),
        two(calls.proxied),
        `${signed(calls.proxied.p50 - calls.direct.p50, 3)} / ${signed(calls.proxied.p99 - calls.direct.p99, 3)}`,
      ],
      [`tools/call per second, ${tp.sessions} sessions at 1 in flight each`, fixed(tp.directPerSecond, 0), fixed(tp.proxiedPerSecond, 0), `× ${fixed(tp.proxiedPerSecond / tp.directPerSecond, 2)}`],
    ],
  );
  const counters = Object.entries(stdio.counters).map(([name, value]) => `${name.replace('mcp_warden_stdio_', '')} ${value}`).join(', ');
  const other = stdio.otherLoadCorePercent;
  const worst = Math.max(other.spawns, other.calls, other.throughput);
  return [
    table,
    '',
    `mcp-warden's own start-up figure (mcp_warden_stdio_startup_seconds, its spawn → the child's initialize answer): mean ${spawns.wardenMeanMs === undefined ? 'n/a' : fixed(spawns.wardenMeanMs, 1)} ms over the measured sessions`,
    `mcp-warden CPU per proxied tools/call: ${fixed(calls.wardenCpuUsPerCall, 0)} µs at 1 in flight, ${fixed(tp.wardenCpuUsPerCall, 0)} µs with ${tp.sessions} sessions; the bench's clients (one thread) used ${fixed(tp.clientCorePercent.direct, 0)} % (direct) and ${fixed(tp.clientCorePercent.proxied, 0)} % (proxied) of a core in the throughput windows`,
    `failed tools/call: ${calls.failures + tp.failures}; mcp-warden counters: ${counters || 'none'}`,
    `other processes, % of a core: spawns ${fixed(other.spawns, 0)}, tools/call ${fixed(other.calls, 0)}, throughput ${fixed(other.throughput, 0)}`,
    ...(worst > warnPercent ? [`WARNING: other processes used up to ${worst.toFixed(0)} % of a core during the stdio part: its numbers are skewed by that load; rerun it on a quiet machine (--stdio-only)`] : []),
  ].join('\n');
}

export function writeJson(dir: string, content: unknown, name = 'latest.json'): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, name);
  writeFileSync(path, `${JSON.stringify(content, null, 2)}\n`);
  return path;
}

export function byId(summaries: readonly Summary[], id: TargetId): Summary {
  const found = summaries.find((s) => s.id === id);
  if (!found) throw new Error(`no results for target (${id})`);
  return found;
}

export function markdown(header: readonly string[], rows: readonly (readonly string[])[]): string {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((row) => `| ${row.join(' | ')} |`)].join('\n');
}

export function fixed(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : 'n/a';
}

export function signed(value: number, digits: number): string {
  return Number.isFinite(value) ? `${value >= 0 ? '+' : ''}${value.toFixed(digits)}` : 'n/a';
}
