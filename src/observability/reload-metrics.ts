import { Counter, Gauge, type Registry } from 'prom-client';

/** How a reload ended: applied, a file that is no valid config, or a change a running process refuses. */
export type ReloadResult = 'ok' | 'invalid' | 'refused';

/** Config reloads, on the proxy's registry. */
export class ReloadMetrics {
  readonly #reloads: Counter<'result'>;
  readonly #failed: Gauge;

  constructor(registry: Registry) {
    this.#reloads = new Counter({
      name: 'mcp_warden_config_reloads_total',
      help: 'Config reloads (SIGHUP or a changed file) by result: ok (applied), invalid (the file is no valid config), refused (it changes what needs a restart, or what it needs cannot be had).',
      labelNames: ['result'],
      registers: [registry],
    });
    this.#failed = new Gauge({
      name: 'mcp_warden_config_reload_failed',
      help: '1 while the last reload failed: the process serves an older config than the file holds.',
      registers: [registry],
    });
  }

  reloaded(result: ReloadResult): void {
    this.#reloads.inc({ result });
    this.#failed.set(result === 'ok' ? 0 : 1);
  }
}
