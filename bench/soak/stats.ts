// Counters per traffic category, and the judgement of each response against what it should have been.
export const CATEGORIES = ['valid', 'invalid', 'sse', 'disconnect', 'opaque'] as const;
export type Category = (typeof CATEGORIES)[number];

/**
 * What a request must get: `allow` a 2xx; `deny` a 401 or 403 (any 2xx is a wrong allow). Requests we
 * abort ourselves are still judged on their status when the headers came back before the abort.
 */
export type Expectation = 'allow' | 'deny';

/** How one exchange ended, as the client saw it. */
export type Outcome =
  | { readonly kind: 'status'; readonly status: number; readonly body?: string }
  | { readonly kind: 'aborted-by-us' }
  | { readonly kind: 'client-error'; readonly code: string };

interface CategoryStats {
  requests: number;
  statuses: Record<string, number>;
  wrongAllows: number;
  unexpected5xx: number;
  /** A status that is neither what was expected nor a 5xx: a valid request refused, an invalid one answered 400/404… */
  unexpectedStatus: number;
  /** Network errors and timeouts we did not cause, by code. */
  clientErrors: Record<string, number>;
  /** Requests we cut on purpose (AbortController); expected, counted so the mix is visible. */
  abortedByUs: number;
  /** A 2xx whose content was wrong: echo text, missing progress events, missing broadcast. */
  badAnswers: number;
  /** Per label (e.g. invalid kind, MCP method): requests and statuses. */
  labels: Record<string, { requests: number; statuses: Record<string, number> }>;
}

/** Problems seen, kept for the summary so a FAIL can be diagnosed: the first few of each sort, bounded. */
interface Problem {
  readonly category: Category;
  readonly label: string;
  readonly what: string;
  readonly atS: number;
}

const MAX_PROBLEMS_KEPT = 30;
const MAX_PROBLEMS_PER_SORT = 3;
const BODY_SNIPPET = 200;

export class Stats {
  readonly #byCategory = new Map<Category, CategoryStats>(CATEGORIES.map((category) => [category, emptyStats()]));
  readonly problems: Problem[] = [];
  readonly counters: Record<string, number> = {};
  readonly #startedAt: number;
  readonly #problemSorts = new Map<string, number>();

  constructor(startedAt: number) {
    this.#startedAt = startedAt;
  }

  /** Counts one request and judges its outcome. Returns whether it was what was expected. */
  record(category: Category, label: string, expect: Expectation, outcome: Outcome): boolean {
    const stats = this.#byCategory.get(category)!;
    const perLabel = (stats.labels[label] ??= { requests: 0, statuses: {} });
    stats.requests += 1;
    perLabel.requests += 1;
    if (outcome.kind === 'aborted-by-us') {
      stats.abortedByUs += 1;
      return true;
    }
    if (outcome.kind === 'client-error') {
      increment(stats.clientErrors, outcome.code);
      this.#problem(category, label, `client error ${outcome.code}`);
      return false;
    }
    const { status } = outcome;
    increment(stats.statuses, String(status));
    increment(perLabel.statuses, String(status));
    const ok2xx = status >= 200 && status < 300;
    const snippet = outcome.body ? `: ${outcome.body.slice(0, BODY_SNIPPET)}` : '';
    if (expect === 'deny' && ok2xx) {
      stats.wrongAllows += 1;
      this.#problem(category, label, `WRONG ALLOW ${status}${snippet}`);
      return false;
    }
    if (status >= 500) {
      stats.unexpected5xx += 1;
      this.#problem(category, label, `5xx ${status}${snippet}`);
      return false;
    }
    const expected = expect === 'allow' ? ok2xx : status === 401 || status === 403;
    if (!expected) {
      stats.unexpectedStatus += 1;
      this.#problem(category, label, `unexpected ${status}${snippet}`);
    }
    return expected;
  }

  /** A stream that broke after its (good) headers, in a way we did not cause: counted with client errors. */
  streamFailure(category: Category, label: string, code: string): void {
    increment(this.#byCategory.get(category)!.clientErrors, `stream:${code}`);
    this.#problem(category, label, `stream broken: ${code}`);
  }

  /** Free-form counters for the summary: sessions opened, events received, … */
  note(name: string, count = 1): void {
    this.counters[name] = (this.counters[name] ?? 0) + count;
  }

  /** A 2xx with the wrong content. */
  badAnswer(category: Category, label: string, what: string): void {
    this.#byCategory.get(category)!.badAnswers += 1;
    this.#problem(category, label, `bad answer: ${what}`);
  }

  totals(): { wrongAllows: number; unexpected5xx: number; unexpectedStatus: number; clientErrors: number; badAnswers: number; requests: number } {
    const all = [...this.#byCategory.values()];
    const sum = (pick: (stats: CategoryStats) => number) => all.reduce((total, stats) => total + pick(stats), 0);
    return {
      requests: sum((stats) => stats.requests),
      wrongAllows: sum((stats) => stats.wrongAllows),
      unexpected5xx: sum((stats) => stats.unexpected5xx),
      unexpectedStatus: sum((stats) => stats.unexpectedStatus),
      clientErrors: sum((stats) => Object.values(stats.clientErrors).reduce((a, b) => a + b, 0)),
      badAnswers: sum((stats) => stats.badAnswers),
    };
  }

  /** The per-category table for the summary, with requests per second over the traffic time. */
  report(trafficSeconds: number): Record<Category, CategoryStats & { perSecond: number }> {
    const out = {} as Record<Category, CategoryStats & { perSecond: number }>;
    for (const [category, stats] of this.#byCategory) {
      out[category] = { ...stats, perSecond: round(stats.requests / Math.max(trafficSeconds, 1e-9), 1) };
    }
    return out;
  }

  #problem(category: Category, label: string, what: string): void {
    // One sort is a category, label and the first words of the problem (e.g. "5xx 503").
    const sort = `${category}|${label}|${what.split(':')[0]}`;
    const seen = (this.#problemSorts.get(sort) ?? 0) + 1;
    this.#problemSorts.set(sort, seen);
    if (seen > MAX_PROBLEMS_PER_SORT || this.problems.length >= MAX_PROBLEMS_KEPT) return;
    this.problems.push({ category, label, what, atS: round((Date.now() - this.#startedAt) / 1000, 1) });
  }
}

function emptyStats(): CategoryStats {
  return { requests: 0, statuses: {}, wrongAllows: 0, unexpected5xx: 0, unexpectedStatus: 0, clientErrors: {}, abortedByUs: 0, badAnswers: 0, labels: {} };
}

function increment(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

export function round(value: number, digits: number): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}
