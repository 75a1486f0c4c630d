import { Answers, type WatchedRequest } from '../mcp/answers/answers.ts';
import { answerStream } from '../mcp/answers/answer-stream.ts';
import { LIST_SHAPES } from '../mcp/answers/list-filter.ts';
import type { RpcId } from '../mcp/json-rpc.ts';
import type { PipelineParts } from './parts.ts';
import type { Step } from './step.ts';

/** The protocol revision from which list results carry caching hints (`cacheScope`). */
const CACHE_HINTS_SINCE = '2026-07-28';

/**
 * Sets up the reading of the upstream's answers, for requests that need it: a list that could show this
 * caller something it may not use (or that another caller would see differently, on 2026-07-28), and
 * audited calls waiting for their outcome. Every other request streams through untouched.
 */
export function watchAnswers(parts: PipelineParts, next: Step): Step {
  const { config, policy, mcpMetrics } = parts;
  const maxBytes = config.policy.max_response_bytes;
  return (req, res, access) => {
    const { decision, toolCalls } = access;
    if (!decision) return next(req, res, access);
    const version = req.headers['mcp-protocol-version'];
    const cacheHints = typeof version === 'string' && version >= CACHE_HINTS_SINCE;
    let effective: ReadonlySet<string> | undefined;
    const ids: RpcId[] = [];
    const watched: WatchedRequest[] = [];
    let mayHide = false;
    for (const { message } of decision.messages) {
      if (message.method === undefined || message.id === undefined) continue;
      ids.push(message.id);
      const list = LIST_SHAPES.get(message.method);
      const hides = list !== undefined && policy.mayHide(list.callMethod, (effective ??= policy.effectiveScopes(access.principal!.scopes)));
      const filtered = list !== undefined && (hides || (cacheHints && policy.variesByCaller(list.callMethod)));
      mayHide ||= hides;
      const audited = toolCalls?.watches(message.id) ?? false;
      if (filtered || audited) watched.push({ id: message.id, list: filtered ? list : undefined, audited });
    }
    if (watched.length === 0) return next(req, res, access);
    const scopes = effective ?? policy.effectiveScopes(access.principal!.scopes);
    const answers = new Answers(ids, watched, {
      allows: (method, target) => {
        const verdict = policy.decideMessage({ method, target }, scopes);
        return verdict.exposed && verdict.missing.length === 0;
      },
      markPrivate: (list) => cacheHints && policy.variesByCaller(list.callMethod),
      mayHide,
      onAnswer: (id, outcome) => toolCalls?.answered(id, outcome),
      onHidden: (list, count) => mcpMetrics.hidden(list.member, count),
    });
    access.answers = (headers) => answerStream(answers, maxBytes, headers);
    // A compressed answer could not be read: the upstream is asked for the body as it is.
    delete req.headers['accept-encoding'];
    return next(req, res, access);
  };
}
