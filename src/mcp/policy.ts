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
  /** False when `policy.expose` hides the target: the caller is told it does not exist, whatever its scopes. */
  readonly exposed: boolean;
}

export interface PolicyDecision {
  readonly allowed: boolean;
  /** Everything the whole request needs, for one challenge covering all of it. */
  readonly needed: readonly string[];
  readonly messages: readonly MessageDecision[];
}

interface CompiledRule {
  readonly label: string;
  /** Whose messages the rule speaks on: machines', users', or (undefined) everyone's. */
  readonly principal: 'machine' | 'user' | undefined;
  readonly method: (value: string) => boolean;
  readonly target: ((value: string) => boolean) | undefined;
  readonly scopes: readonly string[];
}

/** The method that uses what a list names, and the `policy.expose` key that limits it. */
const EXPOSE_KEY: ReadonlyMap<string, 'tools' | 'prompts' | 'resources'> = new Map([
  ['tools/call', 'tools'],
  ['prompts/get', 'prompts'],
  ['resources/read', 'resources'],
]);

/** Rules, the scope hierarchy and the allowlist, compiled once at startup. */
export class Policy {
  readonly #rules: readonly CompiledRule[];
  readonly #required: readonly string[];
  readonly #implies: ReadonlyMap<string, readonly string[]>;
  /** Per call method, whether a target is in `policy.expose`; a method without an entry is not limited. */
  readonly #expose: ReadonlyMap<string, (target: string) => boolean>;

  constructor(config: Config) {
    this.#required = config.tokens.required_scopes;
    this.#implies = new Map(Object.entries(config.policy.scope_hierarchy));
    this.#rules = config.policy.rules.map((rule, index) => {
      const target = rule.match.tool ?? rule.match.prompt ?? rule.match.uri;
      return {
        label: `policy.rules[${index}]`,
        principal: rule.match.principal,
        method: compileGlob(rule.match.method),
        target: target === undefined ? undefined : compileGlob(target),
        scopes: rule.scopes,
      };
    });
    const expose = new Map<string, (target: string) => boolean>();
    for (const [method, key] of EXPOSE_KEY) {
      const globs = config.policy.expose[key]?.map(compileGlob);
      if (globs) expose.set(method, (target) => globs.some((matches) => matches(target)));
    }
    this.#expose = expose;
  }

  /** Bodies need reading only when some rule or the allowlist could look at them. */
  get inspectsBodies(): boolean {
    return this.#rules.length > 0 || this.#expose.size > 0;
  }

  /** Whether two callers can be shown different entries of this kind: some rule could speak on its call method. */
  variesByCaller(callMethod: string): boolean {
    return this.#rules.some((rule) => rule.method(callMethod));
  }

  /**
   * Whether anything of this kind could be hidden from a caller with these (effective) scopes; false only
   * when nothing can. `machine`: the token is a machine's (`sub` = `client_id`, see `isMachine`).
   */
  mayHide(callMethod: string, effective: ReadonlySet<string>, machine: boolean): boolean {
    if (this.#expose.has(callMethod)) return true;
    return this.#rules.some((rule) => appliesTo(rule, machine) && rule.method(callMethod) && rule.scopes.some((scope) => !effective.has(scope)));
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
  decide(messages: readonly PeekedMessage[], granted: ReadonlySet<string>, machine: boolean): PolicyDecision {
    const effective = this.effectiveScopes(granted);
    const decisions = messages.map((message) => this.decideMessage(message, effective, machine));
    return {
      allowed: decisions.every((decision) => decision.exposed && decision.missing.length === 0),
      needed: [...new Set(decisions.flatMap((decision) => decision.needed))],
      messages: decisions,
    };
  }

  /**
   * Judges one message against scopes already widened by `effectiveScopes`. The one decision for a call
   * and for the list entry naming what it would call, so a list never shows what a call would refuse.
   */
  decideMessage(message: PeekedMessage, effective: ReadonlySet<string>, machine: boolean): MessageDecision {
    const rule = message.method === undefined ? undefined : this.#rules.find((candidate) => appliesTo(candidate, machine) && this.#matches(candidate, message));
    const needed = rule ? [...new Set([...this.#required, ...rule.scopes])] : this.#required;
    const exposed = message.method === undefined || message.target === undefined || (this.#expose.get(message.method)?.(message.target) ?? true);
    return { message, rule: rule?.label, needed, missing: needed.filter((scope) => !effective.has(scope)), exposed };
  }

  #matches(rule: CompiledRule, message: PeekedMessage): boolean {
    if (!rule.method(message.method!)) return false;
    return rule.target === undefined || (message.target !== undefined && rule.target(message.target));
  }
}

function appliesTo(rule: CompiledRule, machine: boolean): boolean {
  return rule.principal === undefined || (rule.principal === 'machine') === machine;
}
