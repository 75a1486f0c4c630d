import { Counter, type Registry } from 'prom-client';
import { LabelChildren } from './label-children.ts';

/** What became of a tool call, prompt or resource read: a closed set, a metric label and the audit line's field. */
export type CallDecision = 'allow' | 'deny' | 'not_exposed';
export type CallOutcome = 'result' | 'error' | 'not_forwarded' | 'unseen';

/** Tool calls as the audit sees them, and list entries hidden from callers, on the proxy's registry. */
export class McpMetrics {
  readonly #calls: Counter<'method' | 'decision' | 'outcome'>;
  readonly #hidden: Counter<'list'>;

  constructor(registry: Registry) {
    this.#calls = new Counter({
      name: 'mcp_warden_tool_calls_total',
      help: 'tools/call, prompts/get and resources/read messages, by method, decision (allow, deny, not_exposed) and the upstream outcome (result, error, not_forwarded, unseen).',
      labelNames: ['method', 'decision', 'outcome'],
      registers: [registry],
    });
    this.#hidden = new Counter({
      name: 'mcp_warden_list_entries_hidden_total',
      help: 'Entries dropped from list results because the caller may not use them, by list (tools, prompts, resources, resourceTemplates).',
      labelNames: ['list'],
      registers: [registry],
    });
  }

  readonly #callChildren = new LabelChildren((method, decision, outcome) => this.#calls.labels({ method, decision, outcome }));

  call(method: string, decision: CallDecision, outcome: CallOutcome): void {
    this.#callChildren.of(method, decision, outcome).inc();
  }

  hidden(list: string, count: number): void {
    this.#hidden.inc({ list }, count);
  }
}
