import type { IncomingMessage } from 'node:http';
import { Answers, type AnswerRules, type WatchedRequest } from '../mcp/answers/answers.ts';
import { answerHandling } from '../mcp/answers/answer-stream.ts';
import { LIST_SHAPES, type ListShape } from '../mcp/answers/list-filter.ts';
import type { RpcId } from '../mcp/json-rpc.ts';
import type { Policy } from '../mcp/policy.ts';
import { isMachine } from '../auth/principal.ts';
import type { Access } from './access.ts';
import type { PipelineParts } from './parts.ts';
import type { Step } from './step.ts';

/** The protocol revision from which list results carry caching hints (`cacheScope`). */
const CACHE_HINTS_SINCE = '2026-07-28';
const CALL_METHODS = [...new Set([...LIST_SHAPES.values()].map((shape) => shape.callMethod))];

/**
 * Sets up the reading of the upstream's answers, for requests that need it: a list that could show this
 * caller something it may not use (or that another caller would see differently, on 2026-07-28), and
 * audited calls waiting for their outcome. A GET stream of a caller who can be hidden anything has every
 * list answer on it filtered: it may replay a POST's answers (resumption) or carry them (legacy SSE).
 * Every other request streams through untouched.
 */
export function watchAnswers(parts: PipelineParts, next: Step): Step {
  const { config, policy, mcpMetrics } = parts;
  const maxBytes = config.policy.max_response_bytes;
  // An answer read on its way must come uncompressed: the forward stage drops Accept-Encoding when there is one.
  const watch = (access: Access, answers: Answers) => {
    access.answers = (headers) => answerHandling(answers, maxBytes, headers);
  };
  const rulesFor = (req: IncomingMessage, access: Access, scopes: () => ReadonlySet<string>, mayHide: boolean): AnswerRules => {
    const cacheHints = cacheHintsOf(req);
    const machine = isMachine(access.principal!);
    return {
      allows: (method, target) => {
        const verdict = policy.decideMessage({ method, target }, scopes(), machine);
        return verdict.exposed && verdict.missing.length === 0;
      },
      markPrivate: (list) => cacheHints && policy.variesByCaller(list.callMethod),
      mayHide,
      onAnswer: (id, outcome) => access.toolCalls?.answered(id, outcome),
      onHidden: (list, count) => mcpMetrics.hidden(list.member, count),
    };
  };
  return (req, res, access) => {
    if (req.method === 'GET') {
      const scopes = policy.effectiveScopes(access.principal!.scopes);
      const machine = isMachine(access.principal!);
      if (CALL_METHODS.some((method) => policy.mayHide(method, scopes, machine))) watch(access, new Answers([], [], { ...rulesFor(req, access, () => scopes, true), byShape: true }));
      return next(req, res, access);
    }
    // Most POSTs need nothing read: the caller's scopes are widened only for those that do.
    if (!access.decision) return next(req, res, access);
    let scopes: ReadonlySet<string> | undefined;
    const scopesOf = () => (scopes ??= policy.effectiveScopes(access.principal!.scopes));
    const plan = planAnswers(access, policy, scopesOf, cacheHintsOf(req));
    if (plan) watch(access, new Answers(plan.ids, plan.watched, rulesFor(req, access, scopesOf, plan.mayHide)));
    return next(req, res, access);
  };
}

function cacheHintsOf(req: IncomingMessage): boolean {
  const version = req.headers['mcp-protocol-version'];
  return typeof version === 'string' && version >= CACHE_HINTS_SINCE;
}

/** Which answers of a POST are read: its list requests that need filtering, and its audited calls. */
function planAnswers(access: Access, policy: Policy, scopes: () => ReadonlySet<string>, cacheHints: boolean): { ids: RpcId[]; watched: WatchedRequest[]; mayHide: boolean } | undefined {
  const machine = isMachine(access.principal!);
  const ids: RpcId[] = [];
  const watched: WatchedRequest[] = [];
  let mayHide = false;
  for (const { message } of access.decision!.messages) {
    if (message.method === undefined || message.id === undefined) continue;
    ids.push(message.id);
    const list: ListShape | undefined = LIST_SHAPES.get(message.method);
    const filtered = list !== undefined && (policy.mayHide(list.callMethod, scopes(), machine) || (cacheHints && policy.variesByCaller(list.callMethod)));
    // A list that must say cacheScope private is rewritten even for a caller it hides nothing from: one too
    // large to read is then refused too, rather than reach a shared cache unmarked.
    mayHide ||= filtered;
    const audited = access.toolCalls?.watches(message.id) ?? false;
    if (filtered || audited) watched.push({ id: message.id, list: filtered ? list : undefined, audited });
  }
  return watched.length > 0 ? { ids, watched, mayHide } : undefined;
}
