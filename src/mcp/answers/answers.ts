import { jsonRpcError, type RpcId } from '../json-rpc.ts';
import { filterList, LIST_SHAPES, type ListShape } from './list-filter.ts';

/** What the upstream answered one request with, for the audit line. */
export type AnswerOutcome = { readonly outcome: 'result' } | { readonly outcome: 'error'; readonly code: unknown };

/** One request of a POST that its answer is looked at for. */
export interface WatchedRequest {
  readonly id: RpcId;
  /** A list request: its answer is filtered before the client sees it. */
  readonly list?: ListShape;
  /** A call the audit line waits for. */
  readonly audited: boolean;
}

export interface AnswerRules {
  /** The one decision, for a list entry's target under the caller's scopes and the allowlist. */
  readonly allows: (callMethod: string, target: string) => boolean;
  /** Whether a list of this kind must say `cacheScope: "private"`. */
  readonly markPrivate: (list: ListShape) => boolean;
  /** False only when no list answer needs rewriting for this caller: then one too large to read may pass unread. */
  readonly mayHide: boolean;
  readonly onAnswer: (id: RpcId, outcome: AnswerOutcome) => void;
  readonly onHidden: (list: ListShape, count: number) => void;
  /**
   * Answers not owed by id are filtered by their shape: a stream that replays earlier answers (a resumed
   * GET) or carries them all (the legacy HTTP+SSE transport) must not bring back what a POST would hide.
   */
  readonly byShape?: boolean;
}

/** JSON-RPC "internal error": the answer in place of a list response too large to filter. */
const INTERNAL_ERROR = -32603;

/**
 * The answers a POST's requests are owed, as the upstream's messages go by: list results are filtered
 * and audited calls reported. Everything else in a message is left as it is.
 */
export class Answers {
  readonly #owed = new Map<string, WatchedRequest>();
  /** Every request of the POST (watched or not) still unanswered: what an unreadable response is replaced by errors for. */
  readonly #unanswered = new Map<string, RpcId>();
  #listsOwed = 0;
  readonly #rules: AnswerRules;

  constructor(ids: readonly RpcId[], watched: readonly WatchedRequest[], rules: AnswerRules) {
    this.#rules = rules;
    for (const id of ids) this.#unanswered.set(JSON.stringify(id), id);
    for (const request of watched) {
      this.#owed.set(JSON.stringify(request.id), request);
      if (request.list) this.#listsOwed += 1;
    }
  }

  /** A list answer is still to come (or may come at any time): the upstream's messages must be held until they are read. */
  get holding(): boolean {
    return this.#listsOwed > 0 || this.#rules.byShape === true;
  }

  /** Answers are owed by id: a response that cannot be read is replaced by errors for them. */
  get owing(): boolean {
    return this.#unanswered.size > 0;
  }

  /** Some answer is still looked for. */
  get watching(): boolean {
    return this.#owed.size > 0;
  }

  get mayHide(): boolean {
    return this.#rules.mayHide;
  }

  /** Reads one parsed payload (a message or a batch) and returns it, rewritten where a list was filtered; the same object when nothing changed. */
  take(payload: unknown): unknown {
    if (!Array.isArray(payload)) return this.#message(payload);
    let changed = false;
    const messages = payload.map((message: unknown) => {
      const taken = this.#message(message);
      changed ||= taken !== message;
      return taken;
    });
    return changed ? messages : payload;
  }

  /** Errors for every request not yet answered, in place of a response that cannot be filtered. */
  unanswered(): unknown[] {
    const errors = [...this.#unanswered.values()].map((id) => jsonRpcError(id, { code: INTERNAL_ERROR, message: 'the response was too large for the proxy to filter' }));
    for (const key of [...this.#unanswered.keys()]) this.#answered(key);
    return errors;
  }

  #message(message: unknown): unknown {
    if (typeof message !== 'object' || message === null || !('id' in message)) return message;
    const isResult = 'result' in message;
    if (!isResult && !('error' in message)) return message;
    const key = JSON.stringify(message.id);
    const watched = this.#owed.get(key);
    this.#answered(key);
    if (watched?.audited) {
      const code = isResult ? undefined : (message.error as { code?: unknown } | null)?.code;
      this.#rules.onAnswer(watched.id, isResult ? { outcome: 'result' } : { outcome: 'error', code });
    }
    const result = isResult ? message.result : undefined;
    if (typeof result !== 'object' || result === null) return message;
    const lists = watched?.list ? [watched.list] : this.#rules.byShape ? shapesOf(result as Record<string, unknown>) : [];
    let filtered = result as Record<string, unknown>;
    for (const list of lists) {
      const outcome = filterList(filtered, list, (target) => this.#rules.allows(list.callMethod, target), this.#rules.markPrivate(list));
      if (outcome.hidden > 0) this.#rules.onHidden(list, outcome.hidden);
      filtered = outcome.result;
    }
    return filtered === result ? message : { ...message, result: filtered };
  }

  #answered(key: string): void {
    this.#unanswered.delete(key);
    const watched = this.#owed.get(key);
    if (!watched) return;
    this.#owed.delete(key);
    if (watched.list) this.#listsOwed -= 1;
  }
}

/** The lists a result carries entries of, judged by their members alone. */
function shapesOf(result: Record<string, unknown>): ListShape[] {
  return [...LIST_SHAPES.values()].filter((shape) => Array.isArray(result[shape.member]));
}
