import type { ServerResponse } from 'node:http';
import { REASONS } from '../auth/challenge.ts';
import { jsonRpcError, type PeekedMessage } from '../mcp/json-rpc.ts';
import { sendJson } from '../proxy/respond.ts';
import type { Access } from './access.ts';
import type { PipelineParts } from './parts.ts';

/** JSON-RPC "invalid params": what MCP servers (and the 2026-07-28 spec, for resources too) answer for an unknown name. */
const INVALID_PARAMS = -32602;
const INVALID_REQUEST = -32600;

/**
 * A request naming something outside `policy.expose` is answered the way the upstream answers a name it
 * does not have: a JSON-RPC error, not a 403, since no scope would help. In a batch the other requests
 * are answered too, as not forwarded: the batch goes whole or not at all. Counted and logged as
 * `not_exposed` like any refusal.
 */
export function answerUnexposed(parts: PipelineParts, res: ServerResponse, access: Access): void {
  access.outcome = 'denied';
  access.reason = 'not_exposed';
  parts.metrics.authFailure('not_exposed', access.principal?.issuer);
  const errors = access.decision!.messages
    .filter(({ message }) => message.method !== undefined && message.id !== undefined)
    .map(({ message, exposed }) => jsonRpcError(message.id, exposed ? { code: INVALID_REQUEST, message: 'not forwarded: another request of the batch was refused' } : unknown(message)));
  if (errors.length === 0) {
    // Notifications only: nothing to answer, as an upstream would accept them.
    res.writeHead(202, { 'content-length': '0' }).end();
    return;
  }
  sendJson(res, REASONS.not_exposed.status, access.batch ? errors : errors[0]);
}

function unknown(message: PeekedMessage): { code: number; message: string; data?: unknown } {
  if (message.method === 'resources/read') return { code: INVALID_PARAMS, message: 'Resource not found', data: { uri: message.target } };
  return { code: INVALID_PARAMS, message: `${message.method === 'prompts/get' ? 'Unknown prompt' : 'Unknown tool'}: ${message.target}` };
}
