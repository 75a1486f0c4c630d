import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Client as Client2,
  StreamableHTTPClientTransport as Transport2,
  UnauthorizedError as UnauthorizedError2,
  type OAuthClientInformationMixed as OAuthClientInformationMixed2,
  type OAuthTokens as OAuthTokens2,
} from '@modelcontextprotocol/client';
import { Client as Client1 } from '@modelcontextprotocol/sdk/client/index.js';
import { UnauthorizedError as UnauthorizedError1 } from '@modelcontextprotocol/sdk/client/auth.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { OAuthClientInformationMixed as OAuthClientInformationMixed1, OAuthTokens as OAuthTokens1 } from '@modelcontextprotocol/sdk/shared/auth.js';
import { StreamableHTTPClientTransport as Transport1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, describe, expect, it } from 'vitest';
import { installBrowser, type BrowsedAuthorization } from '../helpers/compat-browser.ts';
import {
  inspectAuthorization,
  MODES,
  observedFlow,
  recordResults,
  ScriptedOAuthProvider,
  startCompatStack,
  type CompatMode,
  type CompatResult,
  type CompatStack,
} from '../helpers/compat.ts';
import { freePort, waitFor } from '../helpers/stack.ts';

/**
 * Real third-party MCP clients through the whole OAuth flow against mcp-warden: with oidc-provider as
 * the authorization server, in broker mode with dynamic registration, and in broker mode with a client
 * ID metadata document. Discovery from the 401, registration, authorization code + PKCE + resource (the
 * user's browser scripted, see compat-browser.ts), then tools/list and a tools/call. Each outcome goes to
 * test/compat/results.json, which scripts/compat-table.mjs renders into README.md.
 */

const packageDir = (name: string): string => fileURLToPath(new URL(`../../node_modules/${name}`, import.meta.url));
const versionOf = (name: string): string => (JSON.parse(readFileSync(join(packageDir(name), 'package.json'), 'utf8')) as { version: string }).version;

const CLIENTS = {
  sdk1: { label: 'the SDK 1.x client', name: 'MCP TypeScript SDK 1.x (`@modelcontextprotocol/sdk`)', package: '@modelcontextprotocol/sdk' },
  sdk2: { label: 'the SDK 2.x client', name: 'MCP TypeScript SDK 2.x (`@modelcontextprotocol/client`)', package: '@modelcontextprotocol/client' },
  mcpRemote: { label: 'mcp-remote', name: '`mcp-remote` (stdio proxy)', package: 'mcp-remote' },
  inspector: { label: 'the Inspector CLI', name: 'MCP Inspector CLI (`@modelcontextprotocol/inspector --cli`)', package: '@modelcontextprotocol/inspector' },
} as const;
type ClientKey = keyof typeof CLIENTS;

/** How long one client may take for the whole flow and both calls; each child process gets less. */
const CLIENT_TIMEOUT_MS = 25_000;
const PROCESS_TIMEOUT_MS = 15_000;
const ECHO = 'compat echo';

const results: CompatResult[] = [];
afterAll(() => {
  if (results.length > 0) recordResults(results, Object.values(CLIENTS).map((client) => client.name));
});

/** What a client run brings back for the common checks. */
interface ClientRun {
  /** The authorization request the client sent the (scripted) user to; none if it never asked. */
  readonly authorizationUrl: URL;
  readonly toolNames: readonly string[];
  readonly callResult: unknown;
  readonly notes: string;
}

/**
 * The checks every client passes, then its row: discovery seen by mcp-warden, the registration kind the
 * mode asks for (DCR: a registration at the broker, or a non-URL client_id at oidc-provider; CIMD: the
 * document's URL as client_id and no registration), PKCE S256 and the resource in the authorization
 * request, the tools listed and the echo answered, both let through by mcp-warden on a token of the
 * client_id the user authorized.
 */
function verifyAndRecord(key: ClientKey, stack: CompatStack, run: ClientRun): void {
  const seen = inspectAuthorization(run.authorizationUrl, stack.mcpUrl);
  const flow = observedFlow(stack, seen.clientId);
  expect(flow.discovered).toBe(true);
  expect(seen.pkce).toBe(true);
  expect(seen.resource).toBe(true);
  if (stack.mode === 'broker-cimd') {
    expect(seen.registration).toBe('CIMD');
    expect(flow.registrations).toBe(0);
  } else {
    expect(seen.registration).toBe('DCR');
    expect(flow.registrations).toBe(stack.mode === 'broker' ? 1 : 0);
  }
  expect(run.toolNames).toContain('echo');
  expect(JSON.stringify(run.callResult)).toContain(ECHO);
  // Both calls reached the server through mcp-warden with a token it verified as this client's.
  expect(flow.authorizedMethods).toEqual(expect.arrayContaining(['tools/list', 'tools/call']));
  const client = CLIENTS[key];
  results.push({
    client: client.name, version: versionOf(client.package), mode: stack.mode,
    discovery: true, registration: seen.registration, token: true, toolsList: true, toolsCall: true, notes: run.notes,
  });
}

async function withStack(mode: CompatMode, run: (stack: CompatStack) => Promise<void>): Promise<void> {
  const stack = await startCompatStack(mode);
  try {
    await run(stack);
  } finally {
    await stack.close();
  }
}

/** The SDK clients in process: the first connect meets the 401 and starts the flow, the second connects with the token. */
async function runSdk1(stack: CompatStack): Promise<ClientRun> {
  const clientMetadataUrl = stack.mode === 'broker-cimd' ? stack.clientMetadataDocument('compat sdk 1.x', [ScriptedOAuthProvider.REDIRECT_URI]) : undefined;
  const provider = new ScriptedOAuthProvider<OAuthClientInformationMixed1, OAuthTokens1>('compat sdk 1.x', clientMetadataUrl);
  const url = new URL(stack.mcpUrl);
  const first = new Transport1(url, { authProvider: provider });
  await expect(new Client1({ name: 'compat-sdk1', version: '1' }).connect(first)).rejects.toBeInstanceOf(UnauthorizedError1);
  await first.finishAuth((await provider.callback!).searchParams.get('code')!);
  const transport = new Transport1(url, { authProvider: provider });
  const client = new Client1({ name: 'compat-sdk1', version: '1' });
  await client.connect(transport);
  try {
    const { tools } = await client.listTools();
    const callResult = await client.callTool({ name: 'echo', arguments: { text: ECHO } });
    return { authorizationUrl: provider.authorizationUrl!, toolNames: tools.map((tool) => tool.name), callResult, notes: `protocol ${transport.protocolVersion}` };
  } finally {
    await client.close();
  }
}

async function runSdk2(stack: CompatStack): Promise<ClientRun> {
  const clientMetadataUrl = stack.mode === 'broker-cimd' ? stack.clientMetadataDocument('compat sdk 2.x', [ScriptedOAuthProvider.REDIRECT_URI]) : undefined;
  const provider = new ScriptedOAuthProvider<OAuthClientInformationMixed2, OAuthTokens2>('compat sdk 2.x', clientMetadataUrl);
  const url = new URL(stack.mcpUrl);
  const first = new Transport2(url, { authProvider: provider });
  await expect(new Client2({ name: 'compat-sdk2', version: '1' }).connect(first)).rejects.toSatisfy((error) => error instanceof UnauthorizedError2);
  // The whole callback (code, state, iss): SDK 2.x checks the RFC 9207 iss where the server advertises it.
  await first.finishAuth((await provider.callback!).searchParams);
  // 'auto': the client probes with server/discover (2026-07-28) through mcp-warden before initialize.
  const client = new Client2({ name: 'compat-sdk2', version: '1' }, { versionNegotiation: { mode: 'auto' } });
  await client.connect(new Transport2(url, { authProvider: provider }));
  try {
    const { tools } = await client.listTools();
    const callResult = await client.callTool({ name: 'echo', arguments: { text: ECHO } });
    // The probe went through mcp-warden to the server, which (SDK 1.x) refused it: hence the fallback.
    expect(stack.logs.some((log) => log.rpc_method === 'server/discover' && typeof log.upstream_status === 'number')).toBe(true);
    return {
      authorizationUrl: provider.authorizationUrl!, toolNames: tools.map((tool) => tool.name), callResult,
      notes: `\`versionNegotiation: auto\`: its \`server/discover\` probe passes mcp-warden, the test server (SDK 1.x) refuses it, so protocol ${client.getNegotiatedProtocolVersion()}`,
    };
  } finally {
    await client.close();
  }
}

/**
 * mcp-remote as an MCP host runs it: a child process on stdio, here under an SDK stdio client. It
 * launches the browser through the `open` package's bundled xdg-open, which runs `$BROWSER` when it
 * finds no desktop; the scripted browser walks the flow and opens mcp-remote's loopback callback.
 */
async function runMcpRemote(stack: CompatStack): Promise<ClientRun> {
  const home = mkdtempSync(join(tmpdir(), 'compat-mcp-remote-'));
  const browserLog = join(home, 'browser.log');
  const port = await freePort();
  const cimd = stack.mode === 'broker-cimd' ? ['--client-metadata-url', stack.clientMetadataDocument('compat mcp-remote', [`http://127.0.0.1:${port}/oauth/callback`])] : [];
  const stderr: string[] = [];
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [join(packageDir('mcp-remote'), 'dist/proxy.js'), stack.mcpUrl, String(port), '--host', '127.0.0.1', '--transport', 'http-only', '--auth-timeout', '15', ...cimd],
    env: { PATH: process.env.PATH ?? '', HOME: home, MCP_REMOTE_CONFIG_DIR: join(home, 'mcp-auth'), BROWSER: installBrowser(home), COMPAT_BROWSER_LOG: browserLog },
    stderr: 'pipe',
  });
  transport.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk.toString()));
  const client = new Client1({ name: 'compat-mcp-remote', version: '1' });
  try {
    await client.connect(transport, { timeout: PROCESS_TIMEOUT_MS });
    const { tools } = await client.listTools();
    const callResult = await client.callTool({ name: 'echo', arguments: { text: ECHO } });
    const browsed = await onlyAuthorization(browserLog);
    return {
      authorizationUrl: new URL(browsed.authorizationUrl), toolNames: tools.map((tool) => tool.name), callResult,
      notes: `stdio proxy under an SDK 1.x stdio client; \`BROWSER\` run by its bundled xdg-open; callback on its own loopback port${cimd.length ? ', fixed as the document lists it' : ''}`,
    };
  } catch (error) {
    throw new Error(`${String(error)}\nmcp-remote stderr:\n${stderr.join('').slice(-4000)}\nbrowser: ${safeRead(browserLog)}`);
  } finally {
    await client.close();
    rmSync(home, { recursive: true, force: true });
  }
}

/**
 * The Inspector's CLI mode, two runs sharing a temporary HOME: tools/list (which logs in) and
 * tools/call (which finds the stored token). Its stderr is not a TTY (and VITEST is set), so it only
 * prints the authorization URL unless MCP_AUTO_OPEN_ENABLED=true forces the browser; the OS keychain
 * is absent here, so MCP_INSPECTOR_SECRET_STORE=file keeps the token in a 0600 file for the second run.
 */
async function runInspector(stack: CompatStack): Promise<ClientRun> {
  const home = mkdtempSync(join(tmpdir(), 'compat-inspector-'));
  const browserLog = join(home, 'browser.log');
  const callbackUrl = `http://127.0.0.1:${await freePort()}/oauth/callback`;
  const cimd = stack.mode === 'broker-cimd' ? ['--client-metadata-url', stack.clientMetadataDocument('compat inspector', [callbackUrl])] : [];
  const env = { PATH: process.env.PATH ?? '', HOME: home, BROWSER: installBrowser(home), COMPAT_BROWSER_LOG: browserLog, MCP_AUTO_OPEN_ENABLED: 'true', MCP_INSPECTOR_SECRET_STORE: 'file' };
  const inspector = (...args: string[]) =>
    runProcess(process.execPath, [join(packageDir('@modelcontextprotocol/inspector'), 'clients/launcher/build/index.js'), '--cli', stack.mcpUrl, '--callback-url', callbackUrl, ...cimd, '--format', 'json', ...args], env, home);
  try {
    const list = await inspector('--method', 'tools/list');
    expect(list.code, list.stderr).toBe(0);
    const call = await inspector('--method', 'tools/call', '--tool-name', 'echo', '--tool-arg', `text=${ECHO}`);
    expect(call.code, call.stderr).toBe(0);
    const browsed = await onlyAuthorization(browserLog);
    return {
      authorizationUrl: new URL(browsed.authorizationUrl),
      toolNames: (JSON.parse(list.stdout) as { result: { tools: Array<{ name: string }> } }).result.tools.map((tool) => tool.name),
      callResult: JSON.parse(call.stdout),
      notes: 'interactive OAuth in `--cli` mode; off a TTY it opens `BROWSER` only with `MCP_AUTO_OPEN_ENABLED=true`; callback on `--callback-url`; the second run (`tools/call`) reuses the stored token',
    };
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

const RUNS: Record<ClientKey, (stack: CompatStack) => Promise<ClientRun>> = { sdk1: runSdk1, sdk2: runSdk2, mcpRemote: runMcpRemote, inspector: runInspector };

/**
 * The `open` package (mcp-remote's and the Inspector's opener) reaches `$BROWSER` only through its
 * bundled xdg-open, on Linux with no desktop in the environment (the children get none); on macOS or
 * Windows it would start the real browser, so the child-process clients run on Linux only.
 */
const BROWSER_REACHABLE = process.platform === 'linux';
const IN_PROCESS: readonly ClientKey[] = ['sdk1', 'sdk2'];

describe.each(MODES)('compatibility with real MCP clients, %s', (mode) => {
  for (const key of Object.keys(RUNS) as ClientKey[]) {
    it.skipIf(!BROWSER_REACHABLE && !IN_PROCESS.includes(key))(`${CLIENTS[key].label} discovers from the 401, gets a client_id, authorizes with PKCE and resource, lists tools and calls one`, { timeout: CLIENT_TIMEOUT_MS }, async () => {
      await withStack(mode, async (stack) => verifyAndRecord(key, stack, await RUNS[key](stack)));
    });
  }
});

/**
 * The scripted browser was opened exactly once, and the client's callback listener took the code. The
 * browser logs after the callback page has loaded, which can be after the client has already used the
 * token: wait a little for the line.
 */
async function onlyAuthorization(browserLog: string): Promise<BrowsedAuthorization> {
  const lines = () => safeRead(browserLog).split('\n').filter(Boolean);
  await waitFor(() => lines().length > 0, 'the scripted browser to log', 5_000);
  const browsed = lines().map((line) => JSON.parse(line) as BrowsedAuthorization);
  expect(browsed).toHaveLength(1);
  expect(browsed[0]!.callbackStatus).toBe(200);
  return browsed[0]!;
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** Runs a client process to completion, killed (its whole process group) if it outlives PROCESS_TIMEOUT_MS. */
function runProcess(command: string, args: readonly string[], env: Record<string, string>, cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
      reject(new Error(`${args.slice(1, 4).join(' ')} did not finish within ${PROCESS_TIMEOUT_MS} ms\nstderr:\n${stderr.slice(-4000)}`));
    }, PROCESS_TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
