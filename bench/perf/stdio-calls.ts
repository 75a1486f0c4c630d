// tools/call over a stdio MCP server, two ways with the same client library (the official SDK's Client):
// directly on the child's stdin/stdout (StdioClientTransport), and through mcp-warden's bridge
// (StreamableHTTPClientTransport with a bearer token). Whatever differs between the two is the bridge:
// HTTP, auth, the session's Streamable HTTP server transport and the relay to the child's pipes.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { StdioWarden } from './targets.ts';

/** Connecting means a spawn and initialize (and over HTTP, a token check): generous, but bounded. */
const CONNECT_TIMEOUT_MS = 15_000;
/** An echo answers in about a millisecond; a call not answered in this is a failure, not a stall. */
const CALL_TIMEOUT_MS = 10_000;
/** More than this share of failed calls makes the figures worthless, as in the HTTP windows. */
const MAX_FAILURE_SHARE = 0.01;
const MESSAGE = 'hi';

/** One MCP session, either way; `call` returns the milliseconds of one tools/call echo. */
export interface Session {
  call(): Promise<number>;
  close(): Promise<void>;
}

/** Pids of the child processes this process started directly, so that none outlives the bench. */
export interface ChildRegistry {
  add(pid: number): void;
  delete(pid: number): void;
}

export interface Latencies {
  readonly direct: number[];
  readonly proxied: number[];
  readonly failures: number;
  /** What `cpu` (the proxy's CPU time, µs) grew by over the measured calls, warm-up excluded. */
  readonly cpuMicros: number;
}

export interface ThroughputWindow {
  readonly calls: number;
  readonly seconds: number;
  readonly failures: number;
  /** What the CPU probe grew by during the window. */
  readonly cpuMicros: number;
  /** This process (every client, one thread) as a share of one core: near 100 the clients were the limit. */
  readonly clientCorePercent: number;
}

/** A CPU clock of the process of interest (mcp-warden), in microseconds. */
export type CpuProbe = () => number;

/** The SDK's client on `transport`, connected within the bound; closed again if it could not connect. */
async function connected(transport: Transport): Promise<Client> {
  const client = new Client({ name: 'mcp-warden-bench', version: '1.0.0' });
  try {
    await client.connect(transport, { timeout: CONNECT_TIMEOUT_MS });
  } catch (error) {
    await client.close().catch(() => undefined);
    throw error;
  }
  return client;
}

/** The stdio server spawned by the SDK's client transport, with the environment mcp-warden would give it. */
export async function openDirect(command: readonly string[], env: Record<string, string>, cwd: string, children: ChildRegistry): Promise<Session> {
  const [program, ...args] = command as [string, ...string[]];
  const transport = new StdioClientTransport({ command: program, args, env, cwd, stderr: 'ignore' });
  const client = await connected(transport);
  const pid = transport.pid;
  if (pid !== null) children.add(pid);
  return {
    call: () => timedCall(client),
    close: async () => {
      // The SDK ends stdin, then SIGTERM after 2 s and SIGKILL after 2 s more; the pid is free only then.
      await client.close();
      if (pid !== null) children.delete(pid);
    },
  };
}

/** A session through mcp-warden: the same client over Streamable HTTP, the token in every request. */
export async function openProxied(warden: StdioWarden, token: string): Promise<Session> {
  const transport = new StreamableHTTPClientTransport(new URL(warden.url), { requestInit: { headers: { authorization: `Bearer ${token}` } } });
  const client = await connected(transport);
  return {
    call: () => timedCall(client),
    close: async () => {
      // DELETE ends the child at once; without it the process would stay until upstream.idle_timeout.
      await transport.terminateSession().catch(() => undefined);
      await client.close();
    },
  };
}

/**
 * `calls` sequential echoes on each session, at one in flight, after `warmUp` unmeasured ones each. The
 * two sides take turns in blocks (the first side alternating), so a drift of the machine hits both alike.
 */
export async function callLatencies(direct: Session, proxied: Session, counts: { calls: number; warmUp: number; blocks: number }, cpu: CpuProbe, deadline: number): Promise<Latencies> {
  const { calls, warmUp, blocks } = counts;
  const result = { direct: [] as number[], proxied: [] as number[], failures: 0, cpuMicros: 0 };
  for (const session of [direct, proxied]) await repeat(session, warmUp, deadline, [], result);
  // The proxy idles while the direct side runs, so its CPU over all blocks is what the proxied calls cost.
  const cpuBefore = cpu();
  const perBlock = Math.ceil(calls / blocks);
  for (let block = 0; block < blocks; block += 1) {
    const size = Math.min(perBlock, calls - block * perBlock);
    const order: Array<[Session, number[]]> = [
      [direct, result.direct],
      [proxied, result.proxied],
    ];
    if (block % 2 === 1) order.reverse();
    for (const [session, into] of order) await repeat(session, size, deadline, into, result);
  }
  result.cpuMicros = cpu() - cpuBefore;
  assertFew(result.failures, 2 * (calls + warmUp), 'tools/call');
  return result;
}

/**
 * Calls per second over `sessions` sessions each calling sequentially for `seconds`: throughput when
 * several sessions (several child processes) share the machine. Every session is closed before it returns.
 */
export async function throughput(
  open: (index: number) => Promise<Session>,
  counts: { sessions: number; seconds: number; warmUp: number },
  cpu: CpuProbe,
): Promise<ThroughputWindow> {
  const { sessions, seconds, warmUp } = counts;
  const settled = await Promise.allSettled(Array.from({ length: sessions }, (_, index) => open(index)));
  const opened = settled.flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value] : []));
  try {
    const failed = settled.find((outcome) => outcome.status === 'rejected');
    if (failed) throw failed.reason;
    const tally = { failures: 0 };
    const warmDeadline = performance.now() + CALL_TIMEOUT_MS * 2;
    await Promise.all(opened.map((session) => repeat(session, warmUp, warmDeadline, [], tally)));
    const cpuBefore = cpu();
    const ownBefore = process.cpuUsage();
    const started = performance.now();
    const end = started + seconds * 1000;
    const perSession = await Promise.all(
      opened.map(async (session) => {
        let calls = 0;
        while (performance.now() < end) {
          if ((await session.call().catch(() => Number.NaN)) >= 0) calls += 1;
          else tally.failures += 1;
        }
        return calls;
      }),
    );
    const elapsed = (performance.now() - started) / 1000;
    const cpuMicros = cpu() - cpuBefore;
    const own = process.cpuUsage(ownBefore);
    const calls = perSession.reduce((sum, n) => sum + n, 0);
    assertFew(tally.failures, calls + tally.failures, 'tools/call (throughput)');
    return { calls, seconds: elapsed, failures: tally.failures, cpuMicros, clientCorePercent: ((own.user + own.system) / (elapsed * 1_000_000)) * 100 };
  } finally {
    await Promise.all(opened.map((session) => session.close().catch(() => undefined)));
  }
}

async function repeat(session: Session, count: number, deadline: number, into: number[], tally: { failures: number }): Promise<void> {
  for (let i = 0; i < count; i += 1) {
    if (performance.now() > deadline) throw new Error('stdio part: tools/call loop overran its time bound');
    try {
      into.push(await session.call());
    } catch {
      tally.failures += 1;
    }
  }
}

async function timedCall(client: Client): Promise<number> {
  const started = performance.now();
  const result = await client.callTool({ name: 'echo', arguments: { message: MESSAGE } }, undefined, { timeout: CALL_TIMEOUT_MS });
  const elapsed = performance.now() - started;
  const content = (result as { content?: Array<{ text?: string }> }).content;
  if (content?.[0]?.text !== MESSAGE) throw new Error(`echo answered ${JSON.stringify(result).slice(0, 200)}`);
  return elapsed;
}

function assertFew(failures: number, total: number, what: string): void {
  if (failures > MAX_FAILURE_SHARE * total) throw new Error(`stdio part: ${failures} of ${total} ${what} failed: aborting, such a run measures nothing`);
}
