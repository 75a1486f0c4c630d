import type { IncomingHttpHeaders } from 'node:http';
import type { AuthFailureReason } from '../auth/failure.ts';
import { peekJsonRpc } from './json-rpc.ts';
import type { Policy, PolicyDecision } from './policy.ts';
import { headerBodyMismatch } from './request-headers.ts';

export type Judgement =
  | { readonly allowed: true; readonly decision: PolicyDecision }
  | { readonly allowed: false; readonly reason: AuthFailureReason; readonly detail: string; readonly decision?: PolicyDecision };

/** Decides a JSON-RPC body against the rules: it must be readable, agree with its headers, and be allowed whole. */
export function judgeBody(headers: IncomingHttpHeaders, body: Buffer, granted: ReadonlySet<string>, policy: Policy): Judgement {
  const peeked = peekJsonRpc(body);
  if (!peeked.ok) return { allowed: false, reason: 'unreadable_body', detail: peeked.problem };
  const mismatch = headerBodyMismatch(headers, peeked.messages, peeked.batch);
  if (mismatch) return { allowed: false, reason: 'header_mismatch', detail: mismatch };
  const decision = policy.decide(peeked.messages, granted);
  return decision.allowed ? { allowed: true, decision } : { allowed: false, reason: 'insufficient_scope', detail: 'a message needs more scope', decision };
}

/** MCP's JSON-RPC POSTs are application/json; anything else cannot be judged, so it is not forwarded. */
export function isJson(headers: IncomingHttpHeaders): boolean {
  const type = (headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  return type === 'application/json';
}
