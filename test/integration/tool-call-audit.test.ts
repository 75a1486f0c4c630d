import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { CATALOG_RULES, FAIL_CODE, TOOL_NAMES } from '../fixtures/catalog-mcp-server.ts';
import { type CatalogStack, startCatalogStack } from '../helpers/catalog-stack.ts';
import { namesOf, rpc } from '../helpers/rpc.ts';
import { ARGUMENT_SENTINEL, type Stack } from '../helpers/stack.ts';
import { connectWithToken } from '../helpers/stdio-stack.ts';

const call = (id: number, name: string, args: Record<string, unknown> = { text: ARGUMENT_SENTINEL }) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });
const sha256 = (value: unknown) => createHash('sha256').update(JSON.stringify(value)).digest('hex');
const toolCallLines = (stack: Stack, rpcId: number) => stack.logs.filter((line) => line.msg === 'tool call' && line.rpc_id === rpcId);
const metricsOf = async (stack: Stack) => (await fetch(`${stack.warden.adminUrl}/metrics`)).text();

describe.each([
  ['JSON', 'json'],
  ['SSE', 'sse'],
] as const)('policy.expose and the tool call audit, %s answers', (_kind, upstream) => {
  let ctx: CatalogStack;

  beforeAll(async () => {
    ctx = await startCatalogStack(upstream, { policy: { rules: CATALOG_RULES, expose: { tools: ['read_*', 'search_*', 'get_*', 'fail', 'delete_file'], prompts: ['greeting'] } } });
    return ctx.close;
  });

  it('lists only exposed tools and prompts, and of those only what the scopes allow', async () => {
    const { stack, read, admin } = ctx;
    const listed = await rpc(stack, read, { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { cursor: 'all' } });
    expect(namesOf(listed.messages[0], 'tools', 'name')).toEqual(['read_file', 'search_docs', 'get_status', 'fail']);
    const asAdmin = await rpc(stack, admin, { jsonrpc: '2.0', id: 2, method: 'tools/list', params: { cursor: 'all' } });
    expect(namesOf(asAdmin.messages[0], 'tools', 'name')).toEqual(['read_file', 'search_docs', 'get_status', 'delete_file', 'fail']);
    const prompts = await rpc(stack, admin, { jsonrpc: '2.0', id: 3, method: 'prompts/list', params: { cursor: 'all' } });
    expect(namesOf(prompts.messages[0], 'prompts', 'name')).toEqual(['greeting']);
  });

  it('answers a call outside the allowlist as the upstream answers an unknown tool, even for an admin, and never forwards it', async () => {
    const { stack, admin } = ctx;
    const catalog = ctx.catalog!;
    const before = catalog.received.length;
    const refused = await rpc(stack, admin, call(10, 'delete_everything'));
    expect(refused.status).toBe(200);
    expect(refused.messages).toEqual([{ jsonrpc: '2.0', id: 10, error: { code: -32602, message: 'Unknown tool: delete_everything' } }]);
    const prompt = await rpc(stack, admin, { jsonrpc: '2.0', id: 11, method: 'prompts/get', params: { name: 'admin_audit', arguments: { a: ARGUMENT_SENTINEL } } });
    expect(prompt.messages[0]!.error).toMatchObject({ code: -32602, message: 'Unknown prompt: admin_audit' });
    expect(catalog.received.length).toBe(before);
    expect(toolCallLines(stack, 10)).toEqual([expect.objectContaining({ decision: 'not_exposed', outcome: 'not_forwarded', name: 'delete_everything' })]);
    const access = stack.logs.find((line) => line.msg === 'request' && line.request_id === toolCallLines(stack, 10)[0]!.request_id);
    expect(access).toMatchObject({ reason: 'not_exposed', outcome: 'denied', status: 200 });
    expect(await metricsOf(stack)).toMatch(/mcp_warden_auth_failures_total\{reason="not_exposed",issuer="[^"]+"\} 2/);
  });

  it('writes one line per call with who, what, the decision, the arguments hash and the outcome, never the arguments', async () => {
    const { stack, read } = ctx;
    const allowed = await rpc(stack, read, call(20, 'read_file'));
    expect(allowed.messages.at(-1)).toMatchObject({ id: 20, result: { content: [{ text: 'called read_file' }] } });
    const failed = await rpc(stack, read, call(21, 'fail'));
    expect(failed.messages.at(-1)).toMatchObject({ id: 21, error: { code: FAIL_CODE } });
    const denied = await rpc(stack, read, call(22, 'delete_file'));
    expect(denied.status).toBe(403);
    await rpc(stack, read, { jsonrpc: '2.0', id: 23, method: 'resources/read', params: { uri: 'file:///secret/keys.txt' } });

    const [line] = toolCallLines(stack, 20);
    expect(line).toMatchObject({ decision: 'allow', outcome: 'result', name: 'read_file', rpc_method: 'tools/call', client_id: expect.any(String), iss: stack.as.issuer, source: 'body' });
    expect(line!.arguments_sha256).toBe(sha256({ text: ARGUMENT_SENTINEL }));
    expect(stack.logs.some((entry) => entry.msg === 'request' && entry.request_id === line!.request_id)).toBe(true);
    expect(toolCallLines(stack, 21)).toEqual([expect.objectContaining({ decision: 'allow', outcome: 'error', error_code: FAIL_CODE })]);
    expect(toolCallLines(stack, 22)).toEqual([expect.objectContaining({ decision: 'deny', outcome: 'not_forwarded', missing_scopes: ['mcp:admin'], rule: 'policy.rules[0]' })]);
    expect(toolCallLines(stack, 23)).toEqual([expect.objectContaining({ decision: 'deny', uri: 'file:///secret/keys.txt' })]);
    expect(JSON.stringify(stack.logs)).not.toContain(ARGUMENT_SENTINEL);
    const metrics = await metricsOf(stack);
    expect(metrics).toMatch(/mcp_warden_tool_calls_total\{method="tools\/call",decision="allow",outcome="result"\} 1/);
    expect(metrics).toMatch(/mcp_warden_tool_calls_total\{method="tools\/call",decision="allow",outcome="error"\} 1/);
  });
});

describe('a list too large to filter', () => {
  let ctx: CatalogStack;

  beforeAll(async () => {
    ctx = await startCatalogStack('sse', { policy: { max_response_bytes: 1024, rules: CATALOG_RULES } });
    return ctx.close;
  });

  it('answers a list too large to filter with an error, never the hidden entries; an admin, who can be hidden nothing, gets it whole', async () => {
    const { stack, read: token, admin } = ctx;
    const tooLarge = await rpc(stack, token, { jsonrpc: '2.0', id: 30, method: 'tools/list', params: { cursor: 'all' } });
    expect(tooLarge.messages).toEqual([{ jsonrpc: '2.0', id: 30, error: { code: -32603, message: 'the response was too large for the proxy to filter' } }]);
    expect(tooLarge.raw).not.toContain('delete_everything');
    const whole = await rpc(stack, admin, { jsonrpc: '2.0', id: 31, method: 'tools/list', params: { cursor: 'all' } });
    expect(namesOf(whole.messages.at(-1), 'tools', 'name')).toEqual(TOOL_NAMES);
    // On 2026-07-28 the admin's list must still say cacheScope private: one too large to rewrite is refused, not passed unmarked.
    const unmarkable = await rpc(stack, admin, { jsonrpc: '2.0', id: 32, method: 'tools/list', params: { cursor: 'all' } }, { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/list' });
    expect(unmarkable.messages).toEqual([expect.objectContaining({ id: 32, error: expect.objectContaining({ code: -32603 }) })]);
  });
});

describe('the audit by default, and turned off', () => {
  it('audits calls with no policy configured at all', async () => {
    const { stack, read: token, close } = await startCatalogStack('json', {});
    try {
      const answer = await rpc(stack, token, call(40, 'read_file'));
      expect(answer.messages.at(-1)).toMatchObject({ id: 40, result: { content: [{ text: 'called read_file' }] } });
      expect(toolCallLines(stack, 40)).toEqual([expect.objectContaining({ decision: 'allow', outcome: 'result', name: 'read_file', arguments_sha256: sha256({ text: ARGUMENT_SENTINEL }) })]);
    } finally {
      await close();
    }
  });

  it('writes no tool call line with audit.tool_calls false', async () => {
    const { stack, read: token, close } = await startCatalogStack('json', { audit: { tool_calls: false } });
    try {
      expect((await rpc(stack, token, call(41, 'read_file'))).status).toBe(200);
      expect(stack.logs.filter((line) => line.msg === 'tool call')).toEqual([]);
    } finally {
      await close();
    }
  });
});

describe('a stdio upstream', () => {
  let ctx: CatalogStack;

  beforeAll(async () => {
    ctx = await startCatalogStack('stdio', { policy: { rules: CATALOG_RULES } });
    return ctx.close;
  });

  it('filters lists and audits calls through the stdio bridge as through HTTP', async () => {
    const { stack, read: token } = ctx;
    const { client, close } = await connectWithToken(stack.mcpUrl, token);
    try {
      const { tools } = await client.listTools({ cursor: 'all' });
      expect(tools.map((tool) => tool.name)).toEqual(TOOL_NAMES.filter((name) => !name.startsWith('delete_')));
      await client.callTool({ name: 'read_file', arguments: { path: ARGUMENT_SENTINEL } });
      const line = stack.logs.find((entry) => entry.msg === 'tool call' && entry.name === 'read_file');
      expect(line).toMatchObject({ decision: 'allow', outcome: 'result', arguments_sha256: sha256({ path: ARGUMENT_SENTINEL }) });
    } finally {
      await close();
    }
  });
});
