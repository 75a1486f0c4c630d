import type { IncomingHttpHeaders } from 'node:http';
import type { AuthFailureReason } from '../auth/failure.ts';
import { peekJsonRpc, type RpcId } from './json-rpc.ts';
import type { Policy, PolicyDecision } from './policy.ts';
import { headerBodyMismatch } from './request-headers.ts';

export type Judgement =
  | { readonly allowed: true; readonly decision: PolicyDecision; readonly batch: boolean }
  | {
      readonly allowed: false;
      readonly reason: AuthFailureReason;
      readonly detail: string;
      readonly decision?: PolicyDecision;
      readonly batch?: boolean;
      /** The refused message's id, for an answer in JSON-RPC. */
      readonly rpcId?: RpcId;
    };

/**
 * Decides a JSON-RPC body against the rules: it must be readable, agree with its headers, and be allowed
 * whole. `machine`: the token is a machine's, for rules that match on the principal.
 */
export function judgeBody(headers: IncomingHttpHeaders, body: Buffer, granted: ReadonlySet<string>, machine: boolean, policy: Policy): Judgement {
  const peeked = peekJsonRpc(body);
  if (!peeked.ok) return { allowed: false, reason: 'unreadable_body', detail: peeked.problem };
  const mismatch = headerBodyMismatch(headers, peeked.messages, peeked.batch);
  if (mismatch) return { allowed: false, reason: 'header_mismatch', detail: mismatch, rpcId: peeked.batch ? null : (peeked.messages[0]?.id ?? null) };
  const decision = policy.decide(peeked.messages, granted, machine);
  const { batch } = peeked;
  if (decision.allowed) return { allowed: true, decision, batch };
  // Something not exposed does not exist for the caller, whatever else the request lacks.
  if (decision.messages.some((message) => !message.exposed)) return { allowed: false, reason: 'not_exposed', detail: 'a message names something not exposed', decision, batch };
  return { allowed: false, reason: 'insufficient_scope', detail: 'a message needs more scope', decision, batch };
}

/** MCP's JSON-RPC POSTs are application/json; anything else cannot be judged, so it is not forwarded. */
export function isJson(headers: IncomingHttpHeaders): boolean {
  const type = (headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  return type === 'application/json';
}
