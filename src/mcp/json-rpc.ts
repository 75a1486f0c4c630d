export type RpcId = string | number | null;

/** A JSON-RPC error response: what the proxy answers in the MCP server's stead. */
export function jsonRpcError(id: RpcId | undefined, error: { code: number; message: string; data?: unknown }): { jsonrpc: '2.0'; id: RpcId; error: typeof error } {
  return { jsonrpc: '2.0', id: id ?? null, error };
}

/** What policy needs to know of one JSON-RPC message a client sent. */
export interface PeekedMessage {
  /** Absent for responses (a client answering a server request). */
  readonly method: string | undefined;
  /** `params.name` of tools/call and prompts/get, `params.uri` of resources/read, `params.taskId` of tasks/get, tasks/update and tasks/cancel. */
  readonly target: string | undefined;
  /** Absent for notifications: nothing will answer them. */
  readonly id?: RpcId;
  /** `params.arguments` of tools/call and prompts/get, for the audit line's hash only: never logged. */
  readonly arguments?: unknown;
}

export type PeekResult = { ok: true; messages: readonly PeekedMessage[]; batch: boolean } | { ok: false; problem: string };

/** What a message acts on: the value 2026-07-28 clients repeat in `Mcp-Name`. */
const TARGET_MEMBER: ReadonlyMap<string, 'name' | 'uri' | 'taskId'> = new Map([
  ['tools/call', 'name'],
  ['prompts/get', 'name'],
  ['resources/read', 'uri'],
  ['tasks/get', 'taskId'],
  ['tasks/update', 'taskId'],
  ['tasks/cancel', 'taskId'],
]);

/** Member names the decision rests on, at the message level and inside params. */
const MESSAGE_MEMBERS = ['method', 'params', 'id'];
const PARAMS_MEMBERS = ['name', 'uri', 'taskId'];
const MESSAGE_FOLDED = new Set(MESSAGE_MEMBERS.map((member) => member.toLowerCase()));
const PARAMS_FOLDED = new Set(PARAMS_MEMBERS.map((member) => member.toLowerCase()));

/**
 * Go's encoding/json (and so Go MCP servers) matches member names case-insensitively, folding ſ to s and
 * the Kelvin sign to k, and keeps the last match: `"Method"` or `"paramſ"` would be read there but not
 * here. A body with such a look-alike of a member we judge by is refused rather than judged.
 */
function hasLookAlike(object: object, members: readonly string[], folded: ReadonlySet<string>): boolean {
  for (const key in object) if (!members.includes(key) && folded.has(key.toLowerCase().replaceAll('ſ', 's'))) return true;
  return false;
}

/**
 * Reads the methods and targets out of a JSON-RPC body (one message or a batch). A body that is not
 * JSON-RPC is a problem, not an empty list: a message the proxy cannot read is a message it cannot judge.
 */
export function peekJsonRpc(body: Buffer): PeekResult {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return { ok: false, problem: 'the body is not JSON' };
  }
  const batch = Array.isArray(parsed);
  const items: unknown[] = batch ? (parsed as unknown[]) : [parsed];
  if (items.length === 0) return { ok: false, problem: 'an empty batch' };
  const messages: PeekedMessage[] = [];
  // Answers are told apart by id: two requests sharing one could get a list answer past its filter.
  const requestIds = new Set<string>();
  for (const item of items) {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return { ok: false, problem: 'a batch member is not an object' };
    if (hasLookAlike(item, MESSAGE_MEMBERS, MESSAGE_FOLDED)) return { ok: false, problem: 'a member name differs from method, params or id only in case' };
    const { method, params, id } = item as { method?: unknown; params?: unknown; id?: unknown };
    if (method !== undefined && typeof method !== 'string') return { ok: false, problem: 'method is not a string' };
    if (typeof params === 'object' && params !== null && hasLookAlike(params, PARAMS_MEMBERS, PARAMS_FOLDED)) {
      return { ok: false, problem: 'a params member name differs from name, uri or taskId only in case' };
    }
    const member = method === undefined ? undefined : TARGET_MEMBER.get(method);
    let target: string | undefined;
    if (member) {
      const value = typeof params === 'object' && params !== null && Object.hasOwn(params, member) ? (params as Record<string, unknown>)[member] : undefined;
      if (typeof value !== 'string') return { ok: false, problem: `${method} without a string params.${member}` };
      target = value;
    }
    if (id !== undefined && typeof id !== 'string' && typeof id !== 'number' && id !== null) return { ok: false, problem: 'id is not a string, a number or null' };
    if (method !== undefined && id !== undefined) {
      const key = JSON.stringify(id);
      if (requestIds.has(key)) return { ok: false, problem: 'two requests share an id' };
      requestIds.add(key);
    }
    const rpcId = id as RpcId | undefined;
    const takesArguments = method === 'tools/call' || method === 'prompts/get';
    messages.push(takesArguments ? { method, target, id: rpcId, arguments: (params as { arguments?: unknown }).arguments } : { method, target, id: rpcId });
  }
  return { ok: true, messages, batch };
}
