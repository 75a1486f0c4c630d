import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { CATALOG_RULES as RULES, PROGRESS_GAP_MS, PROGRESS_STEPS, PROMPT_NAMES, RESOURCE_URIS, TEMPLATE_URIS, TOOL_NAMES } from '../fixtures/catalog-mcp-server.ts';
import { type CatalogStack, startCatalogStack } from '../helpers/catalog-stack.ts';
import { namesOf, rpc } from '../helpers/rpc.ts';
import { MCP_HEADERS, type Stack } from '../helpers/stack.ts';

const ADMIN_ONLY_TOOLS = TOOL_NAMES.filter((name) => name.startsWith('delete_'));

/** Every page of a list, through the official SDK client. */
async function allTools(client: Client): Promise<string[]> {
  const names: string[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const result = await client.listTools(cursor === undefined ? {} : { cursor });
    names.push(...result.tools.map((tool) => tool.name));
    cursor = result.nextCursor;
    pages += 1;
  } while (cursor !== undefined && pages < 10);
  expect(pages).toBe(2);
  return names;
}

async function connect(stack: Stack, token: string): Promise<Client> {
  const client = new Client({ name: 'list-filter-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
  return client;
}

describe.each([
  ['JSON', 'json'],
  ['SSE', 'sse'],
] as const)('list filtering by scope, %s answers', (_kind, upstream) => {
  let ctx: CatalogStack;

  beforeAll(async () => {
    ctx = await startCatalogStack(upstream, { policy: { rules: RULES } });
    return ctx.close;
  });

  it('shows a mcp:read caller, through the SDK client and across both pages, every tool but the admin ones; an admin sees them all', async () => {
    const { stack, read, admin } = ctx;
    const reader = await connect(stack, read);
    const names = await allTools(reader);
    expect(names).toEqual(TOOL_NAMES.filter((name) => !ADMIN_ONLY_TOOLS.includes(name)));
    await expect(reader.callTool({ name: 'delete_everything', arguments: {} })).rejects.toThrow(/403|insufficient_scope|Forbidden/i);
    await reader.close();
    const administrator = await connect(stack, admin);
    expect(await allTools(administrator)).toEqual(TOOL_NAMES);
    await administrator.close();
  });

  it('filters prompts, resources and resource templates alike, through raw requests', async () => {
    const { stack, read, admin } = ctx;
    const prompts = await rpc(stack, read, [
      { jsonrpc: '2.0', id: 1, method: 'prompts/list' },
      { jsonrpc: '2.0', id: 2, method: 'prompts/list', params: { cursor: 'page-2' } },
    ]);
    expect(prompts.messages.flatMap((message) => namesOf(message, 'prompts', 'name'))).toEqual(PROMPT_NAMES.filter((name) => name !== 'admin_audit'));
    const resources = await rpc(stack, read, { jsonrpc: '2.0', id: 3, method: 'resources/list' });
    expect(namesOf(resources.messages[0], 'resources', 'uri')).toEqual(RESOURCE_URIS.filter((uri) => !uri.startsWith('file:///secret/')));
    const templates = await rpc(stack, read, { jsonrpc: '2.0', id: 4, method: 'resources/templates/list' });
    expect(namesOf(templates.messages[0], 'resourceTemplates', 'uriTemplate')).toEqual(['file:///public/{name}']);
    const adminTemplates = await rpc(stack, admin, { jsonrpc: '2.0', id: 5, method: 'resources/templates/list' });
    expect(namesOf(adminTemplates.messages[0], 'resourceTemplates', 'uriTemplate')).toEqual(TEMPLATE_URIS);
    for (const response of [prompts, resources, templates]) expect(response.raw).not.toMatch(/admin_audit|secret\/keys/);
  });

  it('keeps nextCursor and the other members of a filtered page, and says cacheScope private on 2026-07-28', async () => {
    const { stack, read, admin } = ctx;
    const first = await rpc(stack, read, { jsonrpc: '2.0', id: 7, method: 'tools/list' }, { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/list' });
    const result = first.messages[0]!.result as Record<string, unknown>;
    expect(result.nextCursor).toBe('page-2');
    expect(result.ttlMs).toBe(60_000);
    expect(result.cacheScope).toBe('private');
    // An admin is shown everything, but the list still varies by caller: no cache may share it either.
    const asAdmin = await rpc(stack, admin, { jsonrpc: '2.0', id: 8, method: 'tools/list' }, { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/list' });
    expect((asAdmin.messages[0]!.result as Record<string, unknown>).cacheScope).toBe('private');
    const older = await rpc(stack, read, { jsonrpc: '2.0', id: 9, method: 'tools/list' });
    expect((older.messages[0]!.result as Record<string, unknown>).cacheScope).toBe('public');
  });

  it('counts the hidden entries', async () => {
    const { stack } = ctx;
    const metrics = await (await fetch(`${stack.warden.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/mcp_warden_list_entries_hidden_total\{list="tools"\} [1-9]/);
  });
});

describe('an SSE list answer that reports progress first', () => {
  let ctx: CatalogStack;

  beforeAll(async () => {
    ctx = await startCatalogStack('sse', { policy: { rules: RULES } });
    return ctx.close;
  });

  it('passes each progress event unchanged as it is sent, and filters only the result', async () => {
    const { stack, read: token } = ctx;
    const response = await fetch(stack.mcpUrl, {
      method: 'POST',
      headers: { ...MCP_HEADERS, authorization: `Bearer ${token}` },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: { progressToken: 'p1' } } }),
    });
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    const arrivals: Array<{ data: Record<string, unknown>; lag: number; block: string }> = [];
    let buffered = '';
    for (let reads = 0; reads < 100 && !arrivals.some((event) => 'result' in event.data); reads += 1) {
      const { done, value } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      const blocks = buffered.split('\n\n');
      buffered = blocks.pop()!;
      for (const block of blocks) {
        const line = block.split('\n').find((candidate) => candidate.startsWith('data: '));
        if (!line || line === 'data: ') continue;
        const data = JSON.parse(line.slice(6)) as Record<string, unknown>;
        const sentAt = Number(/sent at (\d+)/.exec(String((data.params as Record<string, unknown> | undefined)?.message))?.[1] ?? Date.now());
        arrivals.push({ data, lag: Date.now() - sentAt, block });
      }
    }
    await reader.cancel().catch(() => undefined);
    const progress = arrivals.filter((event) => event.data.method === 'notifications/progress');
    expect(progress).toHaveLength(PROGRESS_STEPS);
    // Each came while the server was still working (well inside the gap to the next one), not with the result.
    for (const event of progress) expect(event.lag).toBeLessThan(PROGRESS_GAP_MS / 2);
    // Unchanged: the upstream's event as the SDK wrote it, with its event type and id.
    expect(progress[0]!.block).toMatch(/^event: message\ndata: \{"method":"notifications\/progress"/);
    const result = arrivals.find((event) => 'result' in event.data)!;
    expect(namesOf(result.data, 'tools', 'name')).not.toContain('delete_everything');
    expect(result.block).toMatch(/^event: message\ndata: \{/);
  });
});
