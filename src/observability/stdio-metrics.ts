import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Why a stdio child process ended; a closed set. */
export type ProcessExit = 'deleted' | 'idle' | 'unbound' | 'abandoned' | 'shutdown' | 'startup_timeout' | 'crashed' | 'exited';

/** The stdio upstream's processes, on the proxy's registry beside the request metrics. */
export class StdioMetrics {
  readonly #spawns: Counter<'result'>;
  readonly #exits: Counter<'reason'>;
  readonly #startupSeconds: Histogram;
  readonly #dropped: Counter<'kind'>;

  constructor(registry: Registry, processes: () => number) {
    new Gauge({
      name: 'mcp_warden_stdio_processes',
      help: 'stdio MCP server processes running now (one per MCP session).',
      registers: [registry],
      collect() {
        this.set(processes());
      },
    });
    this.#spawns = new Counter({
      name: 'mcp_warden_stdio_spawns_total',
      help: 'stdio MCP server processes started, by result: ok (answered initialize), failed (could not start, exited or timed out before answering).',
      labelNames: ['result'],
      registers: [registry],
    });
    this.#exits = new Counter({
      name: 'mcp_warden_stdio_exits_total',
      help: 'stdio MCP server processes ended, by reason.',
      labelNames: ['reason'],
      registers: [registry],
    });
    this.#startupSeconds = new Histogram({
      name: 'mcp_warden_stdio_startup_seconds',
      help: 'Time from spawning a stdio MCP server to its answer to initialize.',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    });
    this.#dropped = new Counter({
      name: 'mcp_warden_stdio_dropped_total',
      help: 'What a stdio MCP server wrote that was not passed on: stdout lines that are not JSON-RPC or too long, stderr lines over the log rate.',
      labelNames: ['kind'],
      registers: [registry],
    });
  }

  spawned(result: 'ok' | 'failed', startupSeconds?: number): void {
    this.#spawns.inc({ result });
    if (startupSeconds !== undefined) this.#startupSeconds.observe(startupSeconds);
  }

  exited(reason: ProcessExit): void {
    this.#exits.inc({ reason });
  }

  dropped(kind: 'not_json_rpc' | 'too_long' | 'stderr_rate'): void {
    this.#dropped.inc({ kind });
  }
}
