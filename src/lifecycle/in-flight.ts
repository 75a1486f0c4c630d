/**
 * Tracks what is open so that shutdown can tell work that should finish (requests, including a tool
 * call answered as a stream) from standalone GET event streams, which never finish by themselves and
 * are closed cleanly instead.
 *
 * Requests are counted, not kept: a long-lived collection keyed by request objects made V8 promote
 * every request's objects to the old generation (about 8 KB each), which cost more CPU in garbage
 * collection than the rest of the proxy's own work.
 */
export class InFlight {
  #requests = 0;
  #nextTicket = 0;
  readonly #streams = new Map<number, () => void>();
  #waiters: Array<() => void> = [];
  #quietWaiters: Array<() => void> = [];

  /** Counts a request until `end`; the ticket names it to `standaloneStream` and `end`. */
  begin(): number {
    this.#requests += 1;
    return this.#nextTicket++;
  }

  /** The request's response has closed. */
  end(ticket: number): void {
    if (this.#streams.delete(ticket)) {
      if (this.#streams.size === 0 && this.#requests === 0) this.#wakeQuiet();
      return;
    }
    this.#requests -= 1;
    if (this.#requests === 0) this.#wake();
  }

  /** A GET event stream: shutdown does not wait for it, and ends it with `end`. */
  standaloneStream(ticket: number, end: () => void): void {
    if (this.#streams.has(ticket)) return;
    this.#streams.set(ticket, end);
    this.#requests -= 1;
    if (this.#requests === 0) this.#wake();
  }

  get requests(): number {
    return this.#requests;
  }

  get streams(): number {
    return this.#streams.size;
  }

  /** Resolves once no request is in flight. */
  idle(): Promise<void> {
    if (this.#requests === 0) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Resolves once no request and no stream is open: what served them can then be closed. */
  quiet(): Promise<void> {
    if (this.#requests === 0 && this.#streams.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#quietWaiters.push(resolve));
  }

  closeStreams(): void {
    for (const end of this.#streams.values()) end();
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
    if (this.#streams.size === 0) this.#wakeQuiet();
  }

  #wakeQuiet(): void {
    const waiters = this.#quietWaiters;
    this.#quietWaiters = [];
    for (const wake of waiters) wake();
  }
}
