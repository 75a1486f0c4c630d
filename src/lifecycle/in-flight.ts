import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * Tracks what is open so that shutdown can tell work that should finish (requests, including a tool
 * call answered as a stream) from standalone GET event streams, which never finish by themselves and
 * are closed cleanly instead.
 */
export class InFlight {
  readonly #requests = new Set<IncomingMessage>();
  readonly #streams = new Map<IncomingMessage, () => void>();
  #waiters: Array<() => void> = [];

  track(req: IncomingMessage, res: ServerResponse): void {
    this.#requests.add(req);
    res.once('close', () => {
      this.#requests.delete(req);
      this.#streams.delete(req);
      if (this.#requests.size === 0) this.#wake();
    });
  }

  /** A GET event stream: shutdown does not wait for it, and ends it with `end`. */
  standaloneStream(req: IncomingMessage, end: () => void): void {
    if (!this.#requests.delete(req)) return;
    this.#streams.set(req, end);
    if (this.#requests.size === 0) this.#wake();
  }

  get requests(): number {
    return this.#requests.size;
  }

  get streams(): number {
    return this.#streams.size;
  }

  /** Resolves once no request is in flight. */
  idle(): Promise<void> {
    if (this.#requests.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  closeStreams(): void {
    for (const end of this.#streams.values()) end();
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}
