// The stdio part: mcp-warden with `upstream.command` (one child process per MCP session, src/upstream/stdio/)
// against the same stdio MCP server reached directly. It answers the two questions: what a new
// session costs (spawn to the initialize answer), and what the bridge adds to one tools/call. The direct
// side gets the environment mcp-warden would give the child, so both run the same process the same way.
// Phases: new sessions (stdio-spawns.ts), then tools/call at 1 in flight and with 10 sessions (stdio-calls.ts).
import { percentile } from './measure.ts';
import { cpuMicros, machineBusyMicros, treeCpuMicros } from './procfs.ts';
import { callLatencies, openDirect, openProxied, throughput, type ChildRegistry } from './stdio-calls.ts';
import { childEnv, directSpawn, measureSpawns, processesGone, proxiedSpawn, SERVER_COMMAND, wardenMetrics } from './stdio-spawns.ts';
import { REPO, type Stack, type StdioWarden } from './targets.ts';

const THROUGHPUT_SESSIONS = 10;
/** Blocks the tools/call series is cut into, direct and proxied taking turns. */
const CALL_BLOCKS = 10;
/** Time bound per phase, on top of what its counts should take. */
const PHASE_SLACK_MS = 60_000;

export interface StdioPlan {
  readonly spawns: number;
  readonly calls: number;
  readonly seconds: number;
}

export interface Spread {
  readonly n: number;
  readonly p50: number;
  readonly p95: number;
  readonly max: number;
}

export interface StdioResult {
  readonly spawns: { readonly direct: Spread; readonly proxied: Spread; readonly wardenMeanMs: number | undefined };
  readonly calls: { readonly n: number; readonly direct: Spread & { p99: number }; readonly proxied: Spread & { p99: number }; readonly wardenCpuUsPerCall: number; readonly failures: number };
  readonly throughput: {
    readonly sessions: number;
    readonly directPerSecond: number;
    readonly proxiedPerSecond: number;
    readonly wardenCpuUsPerCall: number;
    /** The bench process (all clients, one thread) as a share of one core, direct and proxied. */
    readonly clientCorePercent: { readonly direct: number; readonly proxied: number };
    readonly failures: number;
  };
  /** mcp-warden's mcp_warden_stdio_* series at the end (spawns, exits by reason, dropped lines). */
  readonly counters: Record<string, number>;
  /** CPU that neither the bench, mcp-warden nor their children used, per phase, as a share of one core. */
  readonly otherLoadCorePercent: { readonly spawns: number; readonly calls: number; readonly throughput: number };
  readonly raw: { readonly spawnsDirect: number[]; readonly spawnsProxied: number[] };
}

export async function runStdio(stack: Stack, plan: StdioPlan, log: (line: string) => void): Promise<StdioResult> {
  // Defaults for every process bound: a bench within them shows they do not get in the way.
  const warden = await stack.startStdioWarden({ command: SERVER_COMMAND });
  const children = childRegistry();
  try {
    const token = await warden.mintToken('bench-stdio');
    // Unmeasured: the first spawn each way reads the modules from disk, and the proxy's first session is not JIT-compiled yet.
    await directSpawn(children);
    await proxiedSpawn(warden, token);

    log(`stdio: ${plan.spawns} new sessions each way, from initialize to its answer`);
    const marks = [cpuMark(warden)];
    const before = await wardenMetrics(warden);
    const spawned = await measureSpawns(warden, token, plan.spawns, children, deadline(plan.spawns * 2 * 1_000));
    const after = await wardenMetrics(warden);
    marks.push(cpuMark(warden));
    const startups = (after.get('mcp_warden_stdio_startup_seconds_count') ?? 0) - (before.get('mcp_warden_stdio_startup_seconds_count') ?? 0);
    const startupSeconds = (after.get('mcp_warden_stdio_startup_seconds_sum') ?? 0) - (before.get('mcp_warden_stdio_startup_seconds_sum') ?? 0);

    log(`stdio: ${plan.calls} sequential tools/call each way on one session`);
    const direct = await openDirect(SERVER_COMMAND, childEnv(), REPO, children);
    const proxied = await openProxied(warden, token).catch(async (error: unknown) => {
      await direct.close();
      throw error;
    });
    const probe = () => cpuMicros(warden.child.pid);
    const counts = { calls: plan.calls, warmUp: Math.min(200, plan.calls), blocks: CALL_BLOCKS };
    const latencies = await callLatencies(direct, proxied, counts, probe, deadline(plan.calls * 2 * 10)).finally(() => Promise.all([direct.close(), proxied.close()]));
    await processesGone(warden);
    marks.push(cpuMark(warden));

    log(`stdio: ${THROUGHPUT_SESSIONS} sessions × ${plan.seconds} s each way, calling as fast as answers come`);
    const shape = { sessions: THROUGHPUT_SESSIONS, seconds: plan.seconds, warmUp: 20 };
    const directTp = await throughput(() => openDirect(SERVER_COMMAND, childEnv(), REPO, children), shape, probe);
    // One principal per session, as separate users would be; each stays within max_processes_per_principal.
    const tokens = await Promise.all(Array.from({ length: THROUGHPUT_SESSIONS }, (_, i) => warden.mintToken(`bench-stdio-${i}`)));
    const proxiedTp = await throughput((i) => openProxied(warden, tokens[i]!), shape, probe);
    await processesGone(warden);
    marks.push(cpuMark(warden));
    const counters = Object.fromEntries([...(await wardenMetrics(warden))].filter(([name]) => /_total\b/.test(name)));

    const spread = (values: number[]) => ({ ...spreadOf(values), p99: percentile([...values].sort((x, y) => x - y), 0.99) });
    return {
      spawns: { direct: spreadOf(spawned.direct), proxied: spreadOf(spawned.proxied), wardenMeanMs: startups > 0 ? (startupSeconds / startups) * 1000 : undefined },
      calls: { n: plan.calls, direct: spread(latencies.direct), proxied: spread(latencies.proxied), wardenCpuUsPerCall: latencies.cpuMicros / latencies.proxied.length, failures: latencies.failures },
      throughput: {
        sessions: THROUGHPUT_SESSIONS,
        directPerSecond: directTp.calls / directTp.seconds,
        proxiedPerSecond: proxiedTp.calls / proxiedTp.seconds,
        wardenCpuUsPerCall: proxiedTp.cpuMicros / proxiedTp.calls,
        clientCorePercent: { direct: directTp.clientCorePercent, proxied: proxiedTp.clientCorePercent },
        failures: directTp.failures + proxiedTp.failures,
      },
      counters,
      otherLoadCorePercent: { spawns: otherLoad(marks[0]!, marks[1]!), calls: otherLoad(marks[1]!, marks[2]!), throughput: otherLoad(marks[2]!, marks[3]!) },
      raw: { spawnsDirect: spawned.direct, spawnsProxied: spawned.proxied },
    };
  } finally {
    children.killAll(); // only what a failure left behind; every path above closes its own
    await warden.child.stop();
  }
}

interface CpuMark {
  readonly at: number;
  readonly machine: number;
  /** This process, mcp-warden, and every child either has reaped (all of them, at each mark). */
  readonly ours: number;
}

function cpuMark(warden: StdioWarden): CpuMark {
  return { at: performance.now(), machine: machineBusyMicros(), ours: treeCpuMicros('self') + treeCpuMicros(warden.child.pid) };
}

function otherLoad(from: CpuMark, to: CpuMark): number {
  const other = Math.max(0, to.machine - from.machine - (to.ours - from.ours));
  return (other / ((to.at - from.at) * 1000)) * 100;
}

function spreadOf(values: readonly number[]): Spread {
  const sorted = [...values].sort((x, y) => x - y);
  return { n: sorted.length, p50: percentile(sorted, 0.5), p95: percentile(sorted, 0.95), max: sorted.at(-1) ?? Number.NaN };
}

function deadline(expectedMs: number): number {
  return performance.now() + expectedMs + PHASE_SLACK_MS;
}

type Registry = ChildRegistry & { killAll(): void };

/** Direct children by pid; SIGKILLed if anything is left, even when the bench exits abruptly (watchdog). */
function childRegistry(): Registry {
  const pids = new Set<number>();
  const killAll = () => {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    pids.clear();
  };
  process.once('exit', killAll);
  return { add: (pid) => pids.add(pid), delete: (pid) => pids.delete(pid), killAll };
}
