import type { IncomingMessage, ServerResponse } from 'node:http';
import { AuthFailure } from '../auth/failure.ts';
import { isMachine, type Principal } from '../auth/principal.ts';
import { isJson, judgeBody } from '../mcp/judge.ts';
import type { PolicyDecision } from '../mcp/policy.ts';
import { ToolCallAudit } from '../observability/tool-call-audit.ts';
import { readBody } from '../proxy/read-body.ts';
import type { Access } from './access.ts';
import { sendContinue } from './continue.ts';
import type { PipelineParts } from './parts.ts';
import { refuse } from './refuse.ts';
import type { Step } from './step.ts';
import { answerUnexposed } from './unexposed.ts';

/**
 * Rules or an allowlist are on, tool calls are audited, or the upstream relays messages: the JSON-RPC
 * body of a POST is read and judged whole before a byte of it is forwarded (without rules or an allowlist,
 * judging only checks that it is JSON-RPC at all, and names the calls the audit writes lines for).
 */
export function inspect(parts: PipelineParts, next: Step): Step {
  const { config, policy, upstream, logger, mcpMetrics } = parts;
  const auditing = config.audit.tool_calls;
  // Nothing to judge, and an upstream that takes a stream: no body is ever read and this stage is not even called.
  if (!policy.inspectsBodies && !upstream.needsBody && !auditing) return next;
  const maxBodyBytes = config.policy.max_body_bytes;
  const judge = async (req: IncomingMessage, res: ServerResponse, access: Access): Promise<void> => {
    const principal = access.principal!;
    if (!isJson(req.headers)) return refuse(parts, res, access, new AuthFailure('unsupported_media_type'));
    sendContinue(res, access);
    const read = await readBody(req, maxBodyBytes);
    if (!read.ok && read.problem === 'client_gone') return;
    if (!read.ok) {
      // The rest of the body was not read, so the connection cannot carry another request.
      res.setHeader('connection', 'close');
      return refuse(parts, res, access, new AuthFailure('body_too_large'));
    }
    const judgement = judgeBody(req.headers, read.body, principal.scopes, isMachine(principal), policy);
    const { decision } = judgement;
    if (decision) {
      if (policy.inspectsBodies) logDecisions(parts, access.requestId, principal, decision);
      const { messages } = decision;
      access.rpc = { methods: messages.map((message) => message.message.method), target: messages[0]?.message.target };
      access.decision = decision;
      access.batch = judgement.batch ?? false;
      if (auditing) {
        const toolCalls = new ToolCallAudit(logger, mcpMetrics, access.requestId, principal, messages);
        if (!toolCalls.empty) access.toolCalls = toolCalls;
      }
    }
    if (!judgement.allowed) access.rpcId = judgement.rpcId ?? null;
    if (!judgement.allowed && judgement.reason === 'not_exposed') return answerUnexposed(parts, res, access);
    if (!judgement.allowed) return refuse(parts, res, access, new AuthFailure(judgement.reason, judgement.detail, principal.issuer), decision?.needed);
    access.body = read.body;
    return next(req, res, access);
  };
  return (req, res, access) => (req.method === 'POST' ? judge(req, res, access) : next(req, res, access));
}

/** One `policy decision` line and count per message, when rules or the allowlist spoke. */
function logDecisions({ metrics, logger }: PipelineParts, requestId: string, principal: Principal, decision: PolicyDecision): void {
  for (const message of decision.messages) {
    const allowed = message.exposed && message.missing.length === 0;
    metrics.policyDecision(message.message.method, allowed, message.rule);
    logger.info(
      {
        request_id: requestId,
        iss: principal.issuer,
        sub: principal.subject,
        client_id: principal.clientId,
        rpc_method: message.message.method,
        target: message.message.target,
        decision: !message.exposed ? 'not_exposed' : allowed ? 'allow' : 'deny',
        rule: message.rule,
        missing_scopes: allowed || !message.exposed ? undefined : message.missing,
      },
      'policy decision',
    );
  }
}
