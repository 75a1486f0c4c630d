// The parts under test: the real authorization server and MCP server in this process, and mcp-warden
// as a child process (`node src/cli.ts --config FILE`), so its memory and event loop are its own.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { startAuthorizationServer, type StartedAuthorizationServer } from '../../demo/authorization-server.ts';
import { startMcpServer, type StartedMcpServer } from '../../demo/mcp-server.ts';
import { freePorts, stopProcess } from '../processes.ts';
import { OTHER_OPAQUE_RESOURCE, OTHER_RESOURCE, SCOPES } from './tokens.ts';

const REPO = resolve(import.meta.dirname, '../..');
const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;
const LOG_TAIL_LINES = 20;
/** Tokens live this long; the pool is refreshed far more often, so none expires while in use. */
const TOKEN_TTL_S = 600;

export interface SoakStack {
  readonly as: StartedAuthorizationServer;
  readonly mcp: StartedMcpServer;
  /** The protected endpoint, also the audience of the JWTs. */
  readonly mcpUrl: string;
  /** A second audience the proxy accepts, whose tokens the AS issues as opaque (checked by introspection). */
  readonly opaqueResource: string;
  readonly adminUrl: string;
  readonly child: WardenChild;
  close(): Promise<void>;
}

export interface WardenChild {
  readonly pid: number;
  /** Set when the process ended; `expected` tells whether we had asked it to. */
  exit: { code: number | null; signal: NodeJS.Signals | null; expected: boolean } | undefined;
  /** The child's log output (warn and above), counted, with its last lines kept for the summary. */
  readonly log: { lines: number; tail: string[] };
  stop(): Promise<void>;
}

export async function startSoakStack(workers: number): Promise<SoakStack> {
  const [port, adminPort] = (await freePorts(2)) as [number, number];
  const mcpUrl = `http://127.0.0.1:${port}/mcp`;
  const opaqueResource = `http://127.0.0.1:${port}/mcp-opaque`;
  const mcp = await startMcpServer();
  const scopes = [...SCOPES];
  const as = await startAuthorizationServer({
    accessTokenTtlSeconds: TOKEN_TTL_S,
    resources: {
      [mcpUrl]: { scopes, format: 'jwt' },
      [opaqueResource]: { scopes, format: 'opaque' },
      [OTHER_RESOURCE]: { scopes, format: 'jwt' },
      [OTHER_OPAQUE_RESOURCE]: { scopes, format: 'opaque' },
    },
  });
  const dir = mkdtempSync(join(tmpdir(), 'mcp-warden-soak-'));
  const configPath = join(dir, 'config.yaml');
  writeFileSync(configPath, stringify(wardenConfig({ port, adminPort, mcpUrl, opaqueResource, as, upstream: mcp.origin, workers })));
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  let child: WardenChild | undefined;
  const close = async () => {
    await child?.stop();
    await Promise.all([as.close(), mcp.close()]);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    child = spawnWarden(configPath, { SOAK_INTROSPECTION_SECRET: as.introspectionClient.client_secret });
    await waitReady(adminUrl, child);
  } catch (error) {
    await close();
    throw error;
  }
  return { as, mcp, mcpUrl, opaqueResource, adminUrl, child, close };
}

/**
 * Built as test/helpers/stack.ts builds its config, plus: introspection for the opaque audience, a
 * policy rule (so bodies are read and judged, a code path worth soaking), and warn-level logs.
 */
function wardenConfig(parts: { port: number; adminPort: number; mcpUrl: string; opaqueResource: string; as: StartedAuthorizationServer; upstream: string; workers: number }) {
  return {
    listen: { host: '127.0.0.1', port: parts.port },
    admin: { host: '127.0.0.1', port: parts.adminPort },
    resource: { url: parts.mcpUrl, name: 'mcp-warden soak', scopes_supported: [...SCOPES] },
    authorization_servers: [
      {
        issuer: parts.as.issuer,
        // The secret reaches the child through its environment, never through the file.
        introspection: { client_id: parts.as.introspectionClient.client_id, client_secret: '${env:SOAK_INTROSPECTION_SECRET}' },
      },
    ],
    tokens: { audiences: [parts.opaqueResource], required_scopes: ['mcp:read'] },
    upstream: { url: parts.upstream },
    // No scope hierarchy: a token with only mcp:write must lack mcp:read (the insufficient-scope kind).
    policy: { rules: [{ match: { method: 'tools/call', tool: 'delete_*' }, scopes: ['mcp:admin'] }] },
    // Every worker is the same principal from the same IP, standing in for many clients: the per-principal
    // stream cap (default 16) is raised so a worker's next GET stream never races its last one's close.
    limits: { max_streams_per_principal: Math.max(16, parts.workers * 2) },
    logging: { level: 'warn' },
    lifecycle: { shutdown_grace: '2s' },
  };
}

function spawnWarden(configPath: string, env: Record<string, string>): WardenChild {
  const proc = spawn(process.execPath, [join(REPO, 'src/cli.ts'), '--config', configPath], {
    cwd: REPO,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (proc.pid === undefined) throw new Error('could not start mcp-warden');
  let stopping = false;
  const child: WardenChild = {
    pid: proc.pid,
    exit: undefined,
    log: { lines: 0, tail: [] },
    // SIGTERM lets the proxy drain within shutdown_grace.
    stop: () => {
      if (child.exit === undefined) stopping = true;
      return stopProcess(proc, STOP_TIMEOUT_MS);
    },
  };
  proc.on('exit', (code, signal) => (child.exit = { code, signal, expected: stopping }));
  // Both streams must be read, or a full pipe would block the child; only a tail is kept.
  for (const stream of [proc.stdout, proc.stderr]) {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) keepLine(child.log, line);
    });
  }
  return child;
}

function keepLine(log: { lines: number; tail: string[] }, line: string): void {
  if (line.trim() === '') return;
  log.lines += 1;
  log.tail.push(line.length > 300 ? `${line.slice(0, 300)}…` : line);
  if (log.tail.length > LOG_TAIL_LINES) log.tail.shift();
}

/** /readyz answers 200 once the proxy has the issuer's keys and introspection endpoint. */
async function waitReady(adminUrl: string, child: WardenChild): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exit) throw new Error(`mcp-warden exited before it was ready (code ${child.exit.code}):\n${child.log.tail.join('\n')}`);
    const status = await fetch(`${adminUrl}/readyz`, { signal: AbortSignal.timeout(1_000) }).then(
      async (response) => (await response.body?.cancel(), response.status),
      () => 0,
    );
    if (status === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`mcp-warden not ready within ${READY_TIMEOUT_MS} ms:\n${child.log.tail.join('\n')}`);
}
