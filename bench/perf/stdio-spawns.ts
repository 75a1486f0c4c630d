// New stdio MCP sessions, timed from the initialize request to its answer: directly (spawn the server,
// write initialize to its stdin, read the answer on its stdout) and through mcp-warden (POST initialize,
// read the answer's SSE event; mcp-warden spawns one process per session). Also what the bench reads
// from mcp-warden's admin /metrics, and the one definition of the server both sides run.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';
import type { ChildRegistry } from './stdio-calls.ts';
import { BASE_HEADERS, REPO, type StdioWarden } from './targets.ts';

export const SERVER_COMMAND: readonly [string, ...string[]] = [process.execPath, join(REPO, 'bench/perf/stdio-server.ts')];
/**
 * mcp-warden's default upstream.env_passthrough: the directly spawned server gets exactly these too (the
 * SDK's StdioClientTransport adds its own few defaults, such as USER and SHELL, which change nothing here).
 */
const PASSTHROUGH = ['PATH', 'HOME', 'LANG', 'TZ'];
/** Longer than mcp-warden's startup_timeout (10 s), so its own 504 would be seen rather than ours. */
const SPAWN_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;
/** A DELETEd session's process must be gone (SIGTERM; kill_grace 5 s, then SIGKILL) before the next spawn. */
const GONE_TIMEOUT_MS = 10_000;
const POLL_MS = 20;
const INITIALIZE = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'mcp-warden-bench', version: '1.0.0' } },
});

/** Direct and proxied spawns take turns (the first alternating), so a drift of the machine hits both alike. */
export async function measureSpawns(warden: StdioWarden, token: string, n: number, children: ChildRegistry, end: number): Promise<{ direct: number[]; proxied: number[] }> {
  const direct: number[] = [];
  const proxied: number[] = [];
  for (let i = 0; i < n; i += 1) {
    if (performance.now() > end) throw new Error('stdio part: the spawn loop overran its time bound');
    const steps = [async () => direct.push(await directSpawn(children)), async () => proxied.push(await proxiedSpawn(warden, token))];
    if (i % 2 === 1) steps.reverse();
    for (const step of steps) await step();
  }
  return { direct, proxied };
}

/** Milliseconds from spawn() to the initialize answer on the child's stdout; the child has ended when it returns. */
export async function directSpawn(children: ChildRegistry): Promise<number> {
  const started = performance.now();
  const child = spawn(SERVER_COMMAND[0], SERVER_COMMAND.slice(1), { cwd: REPO, env: childEnv(), stdio: ['pipe', 'pipe', 'ignore'] });
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start bench/perf/stdio-server.ts');
  children.add(pid);
  const closed = new Promise((resolve) => child.once('close', resolve));
  try {
    child.stdin.on('error', () => undefined); // a child that died is reported by the missing answer
    child.stdin.write(`${INITIALIZE}\n`);
    await firstAnswer(child.stdout);
    return performance.now() - started;
  } finally {
    child.stdin.end(); // the SDK server exits once stdin closes
    const kill = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await closed;
    clearTimeout(kill);
    children.delete(pid);
  }
}

/** Milliseconds from POSTing initialize to mcp-warden to its answer's SSE event; the session is DELETEd and its process gone when it returns. */
export async function proxiedSpawn(warden: StdioWarden, token: string): Promise<number> {
  const authorization = `Bearer ${token}`;
  const started = performance.now();
  const response = await fetch(warden.url, { method: 'POST', headers: { ...BASE_HEADERS, authorization }, body: INITIALIZE, signal: AbortSignal.timeout(SPAWN_TIMEOUT_MS) });
  const sessionId = response.headers.get('mcp-session-id');
  if (response.status !== 200 || !sessionId || !String(response.headers.get('content-type')).startsWith('text/event-stream')) {
    throw new Error(`mcp-warden answered initialize with ${response.status}: ${(await response.text()).slice(0, 300)}`);
  }
  const reader = response.body!.getReader();
  await firstEvent(reader);
  const elapsed = performance.now() - started;
  while (!(await reader.read()).done); // the stream ends after its one answer; the fetch signal bounds this
  const ended = await fetch(warden.url, {
    method: 'DELETE',
    headers: { authorization, 'mcp-session-id': sessionId, 'mcp-protocol-version': LATEST_PROTOCOL_VERSION },
    signal: AbortSignal.timeout(STOP_TIMEOUT_MS),
  });
  await ended.arrayBuffer();
  if (ended.status !== 200) throw new Error(`mcp-warden answered DELETE with ${ended.status}`);
  await processesGone(warden);
  return elapsed;
}

/** Resolves at the first stdout line that answers initialize (id 1). */
function firstAnswer(stdout: Readable): Promise<void> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const finish = (error?: Error) => {
      clearTimeout(timer);
      stdout.off('data', onData).off('end', onEnd).resume(); // whatever else comes is drained
      if (error) reject(error);
      else resolve();
    };
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      for (let end = buffered.indexOf('\n'); end !== -1; end = buffered.indexOf('\n')) {
        const line = buffered.slice(0, end);
        buffered = buffered.slice(end + 1);
        if (answersInitialize(line)) return finish();
      }
    };
    const onEnd = () => finish(new Error('the stdio server closed stdout without answering initialize'));
    const timer = setTimeout(() => finish(new Error(`the stdio server did not answer initialize within ${SPAWN_TIMEOUT_MS} ms`)), SPAWN_TIMEOUT_MS);
    stdout.on('data', onData).once('end', onEnd);
  });
}

/** Reads SSE events until one whose data answers initialize. */
async function firstEvent(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
  const decoder = new TextDecoder();
  let buffered = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error('mcp-warden ended the initialize stream without an answer');
    buffered += decoder.decode(value, { stream: true });
    for (let end = buffered.indexOf('\n\n'); end !== -1; end = buffered.indexOf('\n\n')) {
      const data = buffered
        .slice(0, end)
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).trimStart())
        .join('\n');
      buffered = buffered.slice(end + 2);
      if (answersInitialize(data)) return;
    }
  }
}

function answersInitialize(text: string): boolean {
  try {
    const message = JSON.parse(text) as { id?: unknown; result?: unknown };
    return message.id === 1 && message.result !== undefined;
  } catch {
    return false;
  }
}

/** Until mcp-warden runs no stdio process: the next measurement must not share the CPU with a dying one. */
export async function processesGone(warden: StdioWarden): Promise<void> {
  const end = Date.now() + GONE_TIMEOUT_MS;
  while (Date.now() < end) {
    if ((await wardenMetrics(warden)).get('mcp_warden_stdio_processes') === 0) return;
    await delay(POLL_MS);
  }
  throw new Error(`mcp-warden still runs stdio processes ${GONE_TIMEOUT_MS} ms after their sessions were deleted`);
}

/** mcp-warden's mcp_warden_stdio_* series from its admin /metrics, by name with labels. */
export async function wardenMetrics(warden: StdioWarden): Promise<Map<string, number>> {
  const text = await (await fetch(`${warden.adminOrigin}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^(mcp_warden_stdio_\w+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (match) values.set(match[1]!, Number(match[2]));
  }
  return values;
}

/** The environment mcp-warden gives a child by default, for the directly started server. */
export function childEnv(): Record<string, string> {
  return Object.fromEntries(PASSTHROUGH.flatMap((name) => (process.env[name] === undefined ? [] : [[name, process.env[name]!]])));
}
