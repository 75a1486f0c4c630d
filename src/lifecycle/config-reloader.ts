import { readFileSync } from 'node:fs';
import { ConfigError, type ConfigProblem } from '../config/errors.ts';
import { parseConfigText } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { ReloadMetrics, ReloadResult } from '../observability/reload-metrics.ts';

/** How often the file is looked at: a ConfigMap swap reaches the pod within a minute or so anyway. */
const DEFAULT_PERIOD_MS = 2_000;

export type ApplyOutcome = { readonly ok: true; readonly changed: readonly string[] } | { readonly ok: false; readonly problems: readonly ConfigProblem[] };

export interface ConfigReloaderOptions {
  readonly path: string;
  /** Applies a valid config, or refuses it with its reasons (the running process keeps its own). */
  readonly apply: (next: Config) => Promise<ApplyOutcome>;
  readonly logger: Logger;
  readonly metrics: ReloadMetrics;
  readonly periodMs?: number;
}

/**
 * Reloads the config file on demand (SIGHUP) and when its content changes (a Kubernetes ConfigMap swap
 * replaces the file behind a symlink, which file-change events do not always report, so it is compared
 * by content). An invalid or refused file changes nothing: every problem is logged, and the failure is
 * counted and shown by a gauge until a reload succeeds.
 */
export class ConfigReloader {
  readonly #o: ConfigReloaderOptions;
  #seen: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<ReloadResult> | undefined;

  constructor(options: ConfigReloaderOptions) {
    this.#o = options;
    this.#seen = read(options.path);
  }

  /** Looks at the file every period from now on; a content change reloads it. */
  watch(): void {
    this.#timer = setInterval(() => {
      const text = read(this.#o.path);
      // A file that is briefly missing mid-swap is not a change; its next content is.
      if (text === undefined || text === this.#seen || this.#running) return;
      void this.reload('file');
    }, this.#o.periodMs ?? DEFAULT_PERIOD_MS);
    this.#timer.unref();
  }

  /** Reads, validates and applies the file once; concurrent calls share one reload. */
  reload(trigger: 'signal' | 'file'): Promise<ReloadResult> {
    this.#running ??= this.#reload(trigger).finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  close(): void {
    clearInterval(this.#timer);
  }

  async #reload(trigger: 'signal' | 'file'): Promise<ReloadResult> {
    const { path, logger, metrics } = this.#o;
    const text = read(path);
    this.#seen = text;
    let next: Config;
    try {
      if (text === undefined) throw new ConfigError(path, [{ path: '', message: 'cannot read the config file' }]);
      next = parseConfigText(text, path);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      metrics.reloaded('invalid');
      logger.error({ trigger, file: path, problems: error.problems }, 'config reload failed: the file is not a valid config; the running config stays');
      return 'invalid';
    }
    const outcome = await this.#o.apply(next);
    if (!outcome.ok) {
      metrics.reloaded('refused');
      logger.error({ trigger, file: path, problems: outcome.problems }, 'config reload refused; the running config stays');
      return 'refused';
    }
    metrics.reloaded('ok');
    logger.info({ trigger, file: path, changed: outcome.changed }, 'config reloaded');
    return 'ok';
  }
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
