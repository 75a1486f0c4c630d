/** Why a stream was refused: the principal has its share, or the proxy has no room left. */
export type StreamRefusal = 'too_many_streams' | 'overloaded';

/**
 * Counts open GET event streams in all and per principal. A stream holds a proxy socket, an upstream
 * socket and upstream state for as long as the client likes, so one token must not take them all.
 */
export class StreamSlots {
  readonly #perPrincipal = new Map<string, number>();
  readonly #maxTotal: number;
  readonly #maxPerPrincipal: number;
  #total = 0;

  constructor(limits: { total: number; perPrincipal: number }) {
    this.#maxTotal = limits.total;
    this.#maxPerPrincipal = limits.perPrincipal;
  }

  /** Takes a slot for `principal`, or says why not; call the returned release exactly once when the stream ends. */
  acquire(principal: string): { ok: true; release: () => void } | { ok: false; refusal: StreamRefusal } {
    const held = this.#perPrincipal.get(principal) ?? 0;
    if (held >= this.#maxPerPrincipal) return { ok: false, refusal: 'too_many_streams' };
    if (this.#total >= this.#maxTotal) return { ok: false, refusal: 'overloaded' };
    this.#perPrincipal.set(principal, held + 1);
    this.#total += 1;
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        this.#total -= 1;
        const left = this.#perPrincipal.get(principal)! - 1;
        if (left === 0) this.#perPrincipal.delete(principal);
        else this.#perPrincipal.set(principal, left);
      },
    };
  }
}
