/**
 * Stops calling an endpoint that keeps failing: after `threshold` failures in a row it refuses calls for
 * `openMs`, then lets one trial call through; a success closes it again. Requests then get their 503 at
 * once instead of each waiting out a timeout against a dead authorization server.
 */
export class CircuitBreaker {
  readonly #threshold: number;
  readonly #openMs: number;
  readonly #now: () => number;
  #failures = 0;
  #openUntil = 0;
  #trialInFlight = false;

  constructor(options: { threshold: number; openMs: number; now?: () => number }) {
    this.#threshold = options.threshold;
    this.#openMs = options.openMs;
    this.#now = options.now ?? Date.now;
  }

  /** May a call go out now? */
  allow(): boolean {
    if (this.#failures < this.#threshold) return true;
    if (this.#now() < this.#openUntil || this.#trialInFlight) return false;
    this.#trialInFlight = true;
    return true;
  }

  success(): void {
    this.#failures = 0;
    this.#trialInFlight = false;
  }

  failure(): void {
    this.#failures += 1;
    this.#trialInFlight = false;
    if (this.#failures >= this.#threshold) this.#openUntil = this.#now() + this.#openMs;
  }
}
