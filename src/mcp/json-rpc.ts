/** What policy needs to know of one JSON-RPC message a client sent. */
export interface PeekedMessage {
  /** Absent for responses (a client answering a server request). */
  readonly method: string | undefined;
  /** `params.name` of tools/call and prompts/get, `params.uri` of resources/read. */
  readonly target: string | undefined;
}

export type PeekResult = { ok: true; messages: readonly PeekedMessage[]; batch: boolean } | { ok: false; problem: string };

const TARGET_MEMBER: Readonly<Record<string, 'name' | 'uri'>> = { 'tools/call': 'name', 'prompts/get': 'name', 'resources/read': 'uri' };

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
  for (const item of items) {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return { ok: false, problem: 'a batch member is not an object' };
    const { method, params } = item as { method?: unknown; params?: unknown };
    if (method !== undefined && typeof method !== 'string') return { ok: false, problem: 'method is not a string' };
    const member = method === undefined ? undefined : TARGET_MEMBER[method];
    let target: string | undefined;
    if (member) {
      const value = typeof params === 'object' && params !== null ? (params as Record<string, unknown>)[member] : undefined;
      if (typeof value !== 'string') return { ok: false, problem: `${method} without a string params.${member}` };
      target = value;
    }
    messages.push({ method, target });
  }
  return { ok: true, messages, batch };
}
