// One measured window: autocannon loads a target for a fixed time while /proc tells what the proxy
// process (and the upstream) spent. Latencies are collected here, not read from autocannon's histogram:
// that one records whole milliseconds, far too coarse for sub-millisecond differences between proxies.
import autocannon from 'autocannon';
import type { ProofUse } from './dpop.ts';
import { cpuMicros, machineBusyMicros, rssBytes } from './procfs.ts';
import type { Target } from './targets.ts';
import type { Child } from './children.ts';

/** A request not answered within this is a timeout (counted as an error), not a stall of the run. */
const REQUEST_TIMEOUT_S = 10;
/** More than this share of failed requests makes the window, and the run, worthless. */
const MAX_FAILURE_SHARE = 0.01;

export interface Window {
  readonly target: Target['id'];
  readonly connections: number;
  /** Seconds the window actually lasted. */
  readonly seconds: number;
  /** Responses of any status. */
  readonly responses: number;
  readonly ok: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly requestsPerSecond: number;
  /** Latency percentiles of 2xx responses, in milliseconds. */
  readonly p50: number;
  readonly p99: number;
  /** Proxy CPU time (user + system) per response, in microseconds; undefined for (a) and (i), which have no proxy. */
  readonly proxyCpuUsPerRequest: number | undefined;
  /** Proxy VmRSS right after the window, in bytes. */
  readonly proxyRssBytes: number | undefined;
  readonly upstreamCpuUsPerRequest: number;
  /** CPU used by this process (autocannon) as a share of one core: near 100 % would mean the load generator limits. */
  readonly loadGeneratorCorePercent: number;
  /**
   * CPU the rest of the machine used meanwhile (all CPU time minus the proxy's, the upstream's and this
   * process's), as a share of one core. More than a few percent means other load skewed the window.
   */
  readonly otherLoadCorePercent: number;
  /** The raw CPU readings behind the figures above, in microseconds. */
  readonly cpu: { readonly machine: number; readonly proxy: number | undefined; readonly upstream: number; readonly loadGenerator: number };
  /** (l): the window's DPoP proofs, signed before it (not in the CPU figures) and, if the pool ran dry, during it. */
  readonly proofs?: ProofUse;
}

export async function measureWindow(target: Target, upstream: Child, connections: number, seconds: number): Promise<Window> {
  const latencies: number[] = [];
  let responses = 0;
  // Signed before the readings below: the load generator's CPU in the window is only sending and receiving.
  target.proofs?.prepare(connections, seconds);
  const proxyCpuBefore = target.proxy ? cpuMicros(target.proxy.pid) : 0;
  const upstreamCpuBefore = cpuMicros(upstream.pid);
  const ownCpuBefore = process.cpuUsage();
  const machineBefore = machineBusyMicros();
  const result = await load(target, connections, seconds, (status, ms) => {
    responses += 1;
    if (status >= 200 && status < 300) latencies.push(ms);
  });
  const proxyCpu = target.proxy ? cpuMicros(target.proxy.pid) - proxyCpuBefore : undefined;
  const upstreamCpu = cpuMicros(upstream.pid) - upstreamCpuBefore;
  const ownCpu = process.cpuUsage(ownCpuBefore);
  const machine = machineBusyMicros() - machineBefore;
  const proxyRss = target.proxy ? rssBytes(target.proxy.pid) : undefined;
  const proofs = target.proofs?.finish(connections, latencies.length / result.duration);

  const ok = latencies.length;
  const failed = responses - ok + result.errors;
  if (responses === 0 || failed > MAX_FAILURE_SHARE * (responses + result.errors)) {
    throw new Error(`(${target.id}) ${target.label} @${connections}: ${ok} ok, ${responses - ok} non-2xx, ${result.errors} errors (${result.timeouts} timeouts): aborting, such a run measures nothing`);
  }
  latencies.sort((x, y) => x - y);
  return {
    target: target.id,
    connections,
    seconds: result.duration,
    responses,
    ok,
    non2xx: responses - ok,
    errors: result.errors,
    requestsPerSecond: ok / result.duration,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    proxyCpuUsPerRequest: proxyCpu === undefined ? undefined : proxyCpu / responses,
    proxyRssBytes: proxyRss,
    upstreamCpuUsPerRequest: upstreamCpu / responses,
    loadGeneratorCorePercent: ((ownCpu.user + ownCpu.system) / (result.duration * 1_000_000)) * 100,
    cpu: { machine, proxy: proxyCpu, upstream: upstreamCpu, loadGenerator: ownCpu.user + ownCpu.system },
    otherLoadCorePercent: (Math.max(0, machine - (proxyCpu ?? 0) - upstreamCpu - ownCpu.user - ownCpu.system) / (result.duration * 1_000_000)) * 100,
    ...(proofs ? { proofs } : {}),
  };
}

/** Loads without measuring anything: the first requests pay for JIT, caches and connection pools. */
export async function warmUp(target: Target, connections: number, seconds: number): Promise<void> {
  target.proofs?.prepare(connections, seconds);
  const result = await load(target, connections, seconds, () => undefined);
  target.proofs?.finish(connections, result['2xx'] / result.duration);
}

function load(target: Target, connections: number, seconds: number, onResponse: (status: number, ms: number) => void): Promise<autocannon.Result> {
  const proofs = target.proofs;
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: target.url,
        method: 'POST',
        headers: { ...target.headers },
        body: target.body,
        // (l): each request takes a proof of its own; setupRequest gets a fresh copy of the headers every time.
        ...(proofs ? { requests: [{ setupRequest: (request: autocannon.Request) => ({ ...request, headers: { ...request.headers, dpop: proofs.take() } }) }] } : {}),
        connections,
        pipelining: 1,
        duration: seconds,
        timeout: REQUEST_TIMEOUT_S,
      },
      (error: unknown, result: autocannon.Result) => (error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve(result)),
    );
    // responseTime is a float in ms (process.hrtime), one event per response.
    instance.on('response', (_client, status, _bytes, responseTime) => onResponse(status, responseTime));
  });
}

/** Nearest-rank percentile of sorted values; NaN when there are none. */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export function median(values: readonly number[]): number {
  const sorted = values.filter((value) => Number.isFinite(value)).sort((x, y) => x - y);
  if (sorted.length === 0) return Number.NaN;
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
