/** `/readyz`: ready once the verifier can work, and no longer once draining has begun. */
export class Readiness {
  #draining = false;
  readonly #verifierReady: () => boolean;

  constructor(verifierReady: () => boolean) {
    this.#verifierReady = verifierReady;
  }

  get ready(): boolean {
    return !this.#draining && this.#verifierReady();
  }

  get draining(): boolean {
    return this.#draining;
  }

  startDraining(): void {
    this.#draining = true;
  }
}
