import type { Config } from '../config/schema.ts';
import { compileGlob } from './glob.ts';
import type { PeekedMessage } from './json-rpc.ts';

/** The decision for one message: which rule spoke (or none) and the scopes the message needs. */
export interface MessageDecision {
  readonly message: PeekedMessage;
  /** `policy.rules[i]` of the first matching rule, or undefined: bounded, so usable as a label. */
  readonly rule: string | undefined;
  readonly needed: readonly string[];
  readonly missing: readonly string[];
}

export interface PolicyDecision {
  readonly allowed: boolean;
  /** Everything the whole request needs, for one challenge covering all of it. */
  readonly needed: readonly string[];
  readonly messages: readonly MessageDecision[];
}

interface CompiledRule {
  readonly label: string;
  readonly method: (value: string) => boolean;
  readonly target: ((value: string) => boolean) | undefined;
  readonly scopes: readonly string[];
}

/** Rules and the scope hierarchy, compiled once at startup. */
export class Policy {
  readonly #rules: readonly CompiledRule[];
  readonly #required: readonly string[];
  readonly #implies: ReadonlyMap<string, readonly string[]>;

  constructor(config: Config) {
    this.#required = config.tokens.required_scopes;
    this.#implies = new Map(Object.entries(config.policy.scope_hierarchy));
    this.#rules = config.policy.rules.map((rule, index) => {
      const target = rule.match.tool ?? rule.match.prompt ?? rule.match.uri;
      return {
        label: `policy.rules[${index}]`,
        method: compileGlob(rule.match.method),
        target: target === undefined ? undefined : compileGlob(target),
        scopes: rule.scopes,
      };
    });
  }

  /** Bodies need reading only when some rule could look at them. */
  get inspectsBodies(): boolean {
    return this.#rules.length > 0;
  }

  /** The granted scopes plus everything they imply, transitively (2026-07-28 §11.1.2). */
  effectiveScopes(granted: ReadonlySet<string>): Set<string> {
    const effective = new Set(granted);
    const queue = [...granted];
    for (let scope = queue.pop(); scope !== undefined; scope = queue.pop()) {
      for (const implied of this.#implies.get(scope) ?? []) {
        if (!effective.has(implied)) {
          effective.add(implied);
          queue.push(implied);
        }
      }
    }
    return effective;
  }

  /** True when the token lacks a scope every request needs (`tokens.required_scopes`), hierarchy applied. */
  lacksRequired(granted: ReadonlySet<string>): boolean {
    // The common case, scopes granted as they are required, needs no hierarchy walk (nor its sets).
    if (this.#required.every((scope) => granted.has(scope))) return false;
    const effective = this.effectiveScopes(granted);
    return this.#required.some((scope) => !effective.has(scope));
  }

  /** Judges every message; one denied message denies the request, and the challenge names all needs. */
  decide(messages: readonly PeekedMessage[], granted: ReadonlySet<string>): PolicyDecision {
    const effective = this.effectiveScopes(granted);
    const decisions = messages.map((message): MessageDecision => {
      const rule = message.method === undefined ? undefined : this.#rules.find((candidate) => this.#matches(candidate, message));
      const needed = [...new Set([...this.#required, ...(rule?.scopes ?? [])])];
      return { message, rule: rule?.label, needed, missing: needed.filter((scope) => !effective.has(scope)) };
    });
    return {
      allowed: decisions.every((decision) => decision.missing.length === 0),
      needed: [...new Set(decisions.flatMap((decision) => decision.needed))],
      messages: decisions,
    };
  }

  #matches(rule: CompiledRule, message: PeekedMessage): boolean {
    if (!rule.method(message.method!)) return false;
    return rule.target === undefined || (message.target !== undefined && rule.target(message.target));
  }
}
