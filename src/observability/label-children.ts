/**
 * The label children of one metric, resolved once per combination of label values and found again by
 * nested map lookups. prom-client sorts and hashes a label object on every call, and a key string built
 * per call costs an allocation and a hash of its own: both showed in the request path's profile.
 */
export class LabelChildren<T> {
  readonly #resolve: (first: string, second: string, third: string) => T;
  readonly #children = new Map<string, Map<string, Map<string, T>>>();

  constructor(resolve: (first: string, second: string, third: string) => T) {
    this.#resolve = resolve;
  }

  /** The child for these values; a metric with fewer labels leaves the rest out. */
  of(first: string, second = '', third = ''): T {
    let seconds = this.#children.get(first);
    if (!seconds) this.#children.set(first, (seconds = new Map()));
    let thirds = seconds.get(second);
    if (!thirds) seconds.set(second, (thirds = new Map()));
    let child = thirds.get(third);
    if (!child) thirds.set(third, (child = this.#resolve(first, second, third)));
    return child;
  }
}
