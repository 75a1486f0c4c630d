import { KeyedCounts, once } from '../lifecycle/counts.ts';

/** Why a stream was refused: the principal has its share, or the proxy has no room left. */
export type StreamRefusal = 'too_many_streams' | 'overloaded';

/**
 * Counts open GET event streams in all and per principal. A stream holds a proxy socket, an upstream
 * socket and upstream state for as long as the client likes, so one token must not take them all.
 */
export class StreamSlots {
  readonly #perPrincipal = new KeyedCounts();
  readonly #maxTotal: number;
  readonly #maxPerPrincipal: number;
  #total = 0;

  constructor(limits: { total: number; perPrincipal: number }) {
    this.#maxTotal = limits.total;
    this.#maxPerPrincipal = limits.perPrincipal;
  }

  /** Takes a slot for `principal`, or says why not; call the returned release exactly once when the stream ends. */
  acquire(principal: string): { ok: true; release: () => void } | { ok: false; refusal: StreamRefusal } {
    if (this.#perPrincipal.get(principal) >= this.#maxPerPrincipal) return { ok: false, refusal: 'too_many_streams' };
    if (this.#total >= this.#maxTotal) return { ok: false, refusal: 'overloaded' };
    this.#perPrincipal.add(principal);
    this.#total += 1;
    return {
      ok: true,
      release: once(() => {
        this.#total -= 1;
        this.#perPrincipal.remove(principal);
      }),
    };
  }
}
