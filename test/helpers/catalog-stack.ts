import { CATALOG_SCOPES, startCatalogServer, type CatalogServer } from '../fixtures/catalog-mcp-server.ts';
import { startStack, type Stack } from './stack.ts';

const FIXTURE = new URL('../fixtures/catalog-mcp-server.ts', import.meta.url).pathname;

export interface CatalogStack {
  readonly stack: Stack;
  /** The HTTP catalog server; absent over stdio. */
  readonly catalog: CatalogServer | undefined;
  /** Tokens for the stack's resource: `mcp:read`, and `mcp:read mcp:admin`. */
  readonly read: string;
  readonly admin: string;
  close(): Promise<void>;
}

/** mcp-warden in front of the catalog fixture (answering in JSON, in SSE, or over stdio), with `extra` config on top. */
export async function startCatalogStack(upstream: 'json' | 'sse' | 'stdio', extra: Record<string, unknown>): Promise<CatalogStack> {
  const catalog = upstream === 'stdio' ? undefined : await startCatalogServer({ json: upstream === 'json' });
  const upstreamConfig = catalog ? { url: catalog.url } : { command: [process.execPath, FIXTURE, '--stdio'] };
  const stack = await startStack((base) => ({ ...base, upstream: upstreamConfig, ...extra }), { scopes: CATALOG_SCOPES }).catch(async (error: unknown) => {
    await catalog?.close();
    throw error;
  });
  return {
    stack,
    catalog,
    read: await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:read' }),
    admin: await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:read mcp:admin' }),
    async close() {
      await stack.close();
      await catalog?.close();
    },
  };
}
