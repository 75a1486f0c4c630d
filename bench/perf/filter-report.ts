// The list-filtering and tool-call-audit part of the report: the tools/list targets (i)–(k) in the main
// table's shape, and each filtering or auditing target against the same request with neither. The DPoP
// pair, (l) against (c), is reported in the same shape.
import { median, type Window } from './measure.ts';
import { byId, fixed, markdown, signed, targetTable, type Summary } from './report.ts';
import type { TargetId } from './targets.ts';
import { DELETE_TOOLS, LIST_RESPONSE, LIST_TOOLS } from './tool-list.ts';

/** A target that reads bodies or answers, and the one that differs from it only in not doing so. */
interface Pair {
  readonly target: TargetId;
  readonly reference: TargetId;
  readonly what: string;
}

export const FILTER_PAIRS: readonly Pair[] = [
  { target: 'k', reference: 'j', what: `tools/list filtered to ${LIST_TOOLS - DELETE_TOOLS} (rule, audit on) vs unfiltered (no rules, audit off)` },
  { target: 'f', reference: 'h', what: 'tools/call with the rule and the audit on vs no rules, audit off' },
  { target: 'c', reference: 'h', what: 'tools/call with the audit on (the default) vs off: the audit alone' },
];

/** (l) is (c) with the token bound to a key and a new DPoP proof on every request. */
export const DPOP_PAIRS: readonly Pair[] = [{ target: 'l', reference: 'c', what: 'tools/call with DPoP, a new proof per request, vs the same as Bearer' }];

/** (m) is (c) with request limits per principal, client and IP, in memory. */
export const LIMIT_PAIRS: readonly Pair[] = [{ target: 'm', reference: 'c', what: 'tools/call with limits.requests per principal, client and IP (memory) vs none' }];

/** (n) is (c) with tracing on: two spans per request, every trace sampled, exported over OTLP/HTTP. */
export const TRACING_PAIRS: readonly Pair[] = [{ target: 'n', reference: 'c', what: 'tools/call with tracing (sampling 1.0, OTLP/HTTP to a local sink) vs off' }];

export interface PairFigures {
  readonly target: TargetId;
  readonly reference: TargetId;
  readonly what: string;
  /** Medians over the rounds, 50-connection windows. */
  readonly cpuUsPerRequest: number;
  readonly referenceCpuUsPerRequest: number;
  /** Proxy CPU µs/req of the target minus the reference's, each round's 50-connection windows, in round order. */
  readonly addedCpuUsPerRound: readonly number[];
  /** The median of addedCpuUsPerRound: what the filtering or the audit costs per request. */
  readonly addedCpuUsPerRequest: number;
  readonly rps50: number;
  readonly referenceRps50: number;
  readonly rpsRatio: number;
  readonly addedP50At1Ms: number;
}

export function filterPairs(summaries: readonly Summary[], windows: readonly Window[], pairs: readonly Pair[] = FILTER_PAIRS): PairFigures[] {
  return pairs.map(({ target, reference, what }) => {
    const [mine, theirs] = [byId(summaries, target), byId(summaries, reference)];
    const perRound = pairedCpuDifferences(windows, target, reference);
    return {
      target,
      reference,
      what,
      cpuUsPerRequest: mine.cpuUsPerRequest ?? Number.NaN,
      referenceCpuUsPerRequest: theirs.cpuUsPerRequest ?? Number.NaN,
      addedCpuUsPerRound: perRound,
      addedCpuUsPerRequest: median(perRound),
      rps50: mine.rps50,
      referenceRps50: theirs.rps50,
      rpsRatio: mine.rps50 / theirs.rps50,
      addedP50At1Ms: mine.p50At1 - theirs.p50At1,
    };
  });
}

/** (i)–(k) as the main table shows (a)–(h): (i) is the direct reference, (j) the unfiltered proxy. */
export function listTable(summaries: readonly Summary[]): string {
  return targetTable(summaries, 'tools/list', 'i', 'j');
}

/** Each pair on one row: the CPU it adds per request (paired by round), and what that does to throughput and latency. */
export function pairTable(pairs: readonly PairFigures[]): string {
  const rows = pairs.map((p) => [
    `(${p.target}) vs (${p.reference}): ${p.what}`,
    `${fixed(p.cpuUsPerRequest, 1)} vs ${fixed(p.referenceCpuUsPerRequest, 1)}`,
    `${signed(p.addedCpuUsPerRequest, 1)}${p.addedCpuUsPerRound.length > 1 ? ` (rounds ${p.addedCpuUsPerRound.map((d) => signed(d, 1)).join(', ')})` : ''}`,
    `${fixed(p.rps50, 0)} vs ${fixed(p.referenceRps50, 0)}`,
    fixed(p.rpsRatio, 2),
    signed(p.addedP50At1Ms, 3),
  ]);
  return markdown(['comparison', 'proxy CPU µs/req @50', 'added µs/req (median of rounds)', 'req/s @50', 'req/s ratio', 'added p50 @1 (ms)'], rows);
}

export const LIST_HEADING = `tools/list: the upstream answers with ${LIST_TOOLS} tools (${fixed(Buffer.byteLength(LIST_RESPONSE) / 1024, 1)} KiB of JSON, ${DELETE_TOOLS} named delete_…); the bench's token has mcp:read, not mcp:admin:`;

export const PAIR_HEADING =
  'List filtering and the tool-call audit, each against the same request through an mcp-warden with no rules and the audit off (added µs/req: each round\'s difference of proxy CPU at 50 connections, then the median):';

export const DPOP_HEADING =
  'DPoP (RFC 9449): (l) is (c) with its token bound to a key (cnf.jkt) and a new ES256 proof per request (fresh jti and iat, ath of the token), against (c) with the same kind of token as Bearer (added µs/req as above: paired by round):';

export const LIMIT_HEADING =
  'Request rate limits: (m) is (c) with limits.requests per_principal, per_client and per_ip (memory store, limits too high to refuse: each request takes from three buckets and gets the RateLimit fields), against (c) (added µs/req as above: paired by round):';

export const TRACING_HEADING =
  'OpenTelemetry tracing: (n) is (c) with tracing on, every trace sampled (a SERVER span and the upstream call per request), batched and exported over OTLP/HTTP JSON to a local sink that discards them, against (c) with tracing off (added µs/req as above: paired by round):';

/** (l)'s proofs over the 50-connection windows: how many were pre-signed and handed out, and how many the pool lacked. */
export function proofLine(windows: readonly Window[]): string {
  const mine = windows.filter((window) => window.proofs && window.connections === 50);
  const sum = (pick: (use: NonNullable<Window['proofs']>) => number) => mine.reduce((total, window) => total + pick(window.proofs!), 0);
  const signMs = sum((use) => use.signMs);
  return `(l) proofs in its 50-connection windows: ${sum((use) => use.handedOut)} sent, each once, ${sum((use) => use.presigned)} pre-signed before the windows (${fixed(signMs / 1000, 1)} s), ${sum((use) => use.signedInWindow)} signed during a window because the pool ran dry (should be 0: that signing is load-generator CPU)`;
}

/** Proxy CPU per request of `target` minus `reference` in each round's 50-connection windows, in round order. */
function pairedCpuDifferences(windows: readonly Window[], target: TargetId, reference: TargetId): number[] {
  const at50 = (id: TargetId) => windows.filter((window) => window.target === id && window.connections === 50).map((window) => window.proxyCpuUsPerRequest ?? Number.NaN);
  const [mine, theirs] = [at50(target), at50(reference)];
  return mine.slice(0, theirs.length).map((value, round) => value - theirs[round]!);
}
