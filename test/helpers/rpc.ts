import { MCP_HEADERS, type Stack } from './stack.ts';

export type RpcMessage = Record<string, unknown>;

/** One raw POST to the stack's MCP endpoint; the JSON-RPC messages of its answer, whether JSON or SSE. */
export async function rpc(stack: Stack, token: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; messages: RpcMessage[]; raw: string }> {
  const response = await fetch(stack.mcpUrl, { method: 'POST', headers: { ...MCP_HEADERS, authorization: `Bearer ${token}`, ...headers }, body: JSON.stringify(body) });
  const raw = await response.text();
  const type = response.headers.get('content-type') ?? '';
  const payloads = type.startsWith('text/event-stream')
    ? raw.split(/\n\n/).flatMap((event) => event.split('\n').filter((line) => line.startsWith('data: ')).map((line) => JSON.parse(line.slice(6)) as unknown))
    : raw
      ? [JSON.parse(raw) as unknown]
      : [];
  return { status: response.status, messages: payloads.flatMap((payload) => (Array.isArray(payload) ? payload : [payload])) as RpcMessage[], raw };
}

/** The names (or URIs) a list answer carries. */
export const namesOf = (message: RpcMessage | undefined, member: string, key: string): string[] =>
  ((message?.result as Record<string, Array<Record<string, string>>> | undefined)?.[member] ?? []).map((entry) => entry[key]!);
