import { KeyedCounts } from '../lifecycle/counts.ts';

/** Why a stream was refused: the principal has its share, or the proxy has no room left. */
export type StreamRefusal = 'too_many_streams' | 'overloaded';

/**
 * A slot taken. An object rather than a closure pair: every open stream holds its slot for as long as
 * it lives, and two closures with their scopes were four times the size.
 */
export class StreamSlot {
  readonly ok = true;
  readonly #free: (principal: string) => void;
  readonly #principal: string;
  #released = false;

  constructor(free: (principal: string) => void, principal: string) {
    this.#free = free;
    this.#principal = principal;
  }

  /** Gives the slot back; calling it again (a close and an error, say) does nothing. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#free(this.#principal);
  }
}

/**
 * Counts open GET event streams in all and per principal. A stream holds a proxy socket, an upstream
 * socket and upstream state for as long as the client likes, so one token must not take them all.
 */
export class StreamSlots {
  readonly #perPrincipal = new KeyedCounts();
  readonly #maxTotal: number;
  readonly #maxPerPrincipal: number;
  #total = 0;
  /** One for every slot. */
  readonly #free = (principal: string): void => {
    this.#total -= 1;
    this.#perPrincipal.remove(principal);
  };

  constructor(limits: { total: number; perPrincipal: number }) {
    this.#maxTotal = limits.total;
    this.#maxPerPrincipal = limits.perPrincipal;
  }

  /** Takes a slot for `principal`, or says why not; release it when the stream ends. */
  acquire(principal: string): StreamSlot | { ok: false; refusal: StreamRefusal } {
    if (this.#perPrincipal.get(principal) >= this.#maxPerPrincipal) return { ok: false, refusal: 'too_many_streams' };
    if (this.#total >= this.#maxTotal) return { ok: false, refusal: 'overloaded' };
    this.#perPrincipal.add(principal);
    this.#total += 1;
    return new StreamSlot(this.#free, principal);
  }
}
