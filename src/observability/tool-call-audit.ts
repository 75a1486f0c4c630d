import { hash } from 'node:crypto';
import type { Principal } from '../auth/principal.ts';
import type { AnswerOutcome } from '../mcp/answers/answers.ts';
import type { RpcId } from '../mcp/json-rpc.ts';
import type { MessageDecision } from '../mcp/policy.ts';
import type { Logger } from './logger.ts';
import type { CallDecision, CallOutcome, McpMetrics } from './mcp-metrics.ts';

/** The methods an audit line is written for: each names what it uses. */
export const AUDITED_METHODS: ReadonlySet<string> = new Set(['tools/call', 'prompts/get', 'resources/read']);

interface Entry {
  readonly decision: MessageDecision;
  readonly verdict: CallDecision;
  readonly argumentsSha256: string | undefined;
}

/**
 * The `tool call` lines of one request: one per audited message, written once its outcome is known
 * (the upstream's answer, or the end of the response). The arguments are never logged, only their
 * SHA-256 (of their JSON as sent, re-serialized), so a line can be matched to a call without its content.
 */
export class ToolCallAudit {
  readonly #entries = new Map<string, Entry>();
  readonly #logger: Logger;
  readonly #metrics: McpMetrics;
  readonly #fields: Record<string, unknown>;

  constructor(logger: Logger, metrics: McpMetrics, requestId: string, principal: Principal, decisions: readonly MessageDecision[]) {
    this.#logger = logger;
    this.#metrics = metrics;
    this.#fields = { request_id: requestId, iss: principal.issuer, sub: principal.subject, client_id: principal.clientId, source: 'body' };
    let unnamed = 0;
    for (const decision of decisions) {
      if (decision.message.method === undefined || !AUDITED_METHODS.has(decision.message.method)) continue;
      const verdict: CallDecision = !decision.exposed ? 'not_exposed' : decision.missing.length > 0 ? 'deny' : 'allow';
      const args = decision.message.arguments;
      const argumentsSha256 = args === undefined ? undefined : hash('sha256', JSON.stringify(args), 'hex');
      // A notification is answered by nothing: it gets a key of its own, and its line at the end.
      const key = decision.message.id === undefined ? `notification ${unnamed++}` : JSON.stringify(decision.message.id);
      this.#entries.set(key, { decision, verdict, argumentsSha256 });
    }
  }

  get empty(): boolean {
    return this.#entries.size === 0;
  }

  /** An allowed request whose answer the line waits for. */
  watches(id: RpcId): boolean {
    return this.#entries.get(JSON.stringify(id))?.verdict === 'allow';
  }

  /** The upstream answered one audited request. */
  answered(id: RpcId, answer: AnswerOutcome): void {
    const key = JSON.stringify(id);
    const entry = this.#entries.get(key);
    if (!entry) return;
    this.#entries.delete(key);
    this.#write(entry, answer.outcome, answer.outcome === 'error' ? answer.code : undefined);
  }

  /** The response is over: every line not written yet is, with what became of its call. */
  finish(forwarded: boolean): void {
    for (const entry of this.#entries.values()) this.#write(entry, forwarded ? 'unseen' : 'not_forwarded', undefined);
    this.#entries.clear();
  }

  #write(entry: Entry, outcome: CallOutcome, errorCode: unknown): void {
    const { message, rule, missing } = entry.decision;
    const method = message.method!;
    this.#metrics.call(method, entry.verdict, outcome);
    this.#logger.info(
      {
        ...this.#fields,
        rpc_id: message.id,
        rpc_method: method,
        [method === 'resources/read' ? 'uri' : 'name']: message.target,
        decision: entry.verdict,
        rule,
        missing_scopes: entry.verdict === 'deny' ? missing : undefined,
        arguments_sha256: entry.argumentsSha256,
        outcome,
        error_code: typeof errorCode === 'number' ? errorCode : undefined,
      },
      'tool call',
    );
  }
}
