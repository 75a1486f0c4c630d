import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOtlpReceiver, type OtlpReceiver } from '../helpers/otlp-receiver.ts';
import { freePort, INITIALIZE, MCP_HEADERS, startStack, type Stack } from '../helpers/stack.ts';
import { validToken } from '../security/helpers.ts';

const WARM_UP = 10;
const MEASURED = 50;
/** Generous: loopback requests take about a millisecond, and the machine is shared with other tests. */
const P50_BOUND_MS = 5;
const SLOWEST_BOUND_MS = 1000;

const median = (values: readonly number[]) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]!;

/**
 * Tracing must cost a request nothing it can notice when the collector is down (a closed port) or hangs
 * (accepts, never answers): the same requests through a warden without tracing set the baseline. The
 * three wardens are measured in turn, request by request, so a slow moment of the machine hits all alike.
 */
describe('a collector that is down or hangs', () => {
  let hanging: OtlpReceiver;
  const stacks: Partial<Record<'off' | 'down' | 'hang', Stack>> = {};
  beforeAll(async () => {
    hanging = await startOtlpReceiver('hang');
    const closedPort = await freePort();
    // Small queue and timeout: the queue fills and batches are tried (and time out) while requests are measured.
    const tracing = (endpoint: string) => (base: Record<string, unknown>) => ({ ...base, tracing: { endpoint, export_timeout: '1s', max_queue: 64 } });
    [stacks.off, stacks.down, stacks.hang] = await Promise.all([
      startStack(),
      startStack(tracing(`http://127.0.0.1:${closedPort}/v1/traces`)),
      startStack(tracing(hanging.url)),
    ]);
  });
  afterAll(async () => {
    await Promise.all(Object.values(stacks).map((stack) => stack.close()));
    await hanging?.close();
  });

  it('leaves request latency within noise of tracing off, and fails no request', async () => {
    const modes = ['off', 'down', 'hang'] as const;
    const tokens = Object.fromEntries(await Promise.all(modes.map(async (mode) => [mode, await validToken(stacks[mode]!)] as const)));
    const times: Record<(typeof modes)[number], number[]> = { off: [], down: [], hang: [] };
    for (let i = 0; i < WARM_UP + MEASURED; i += 1) {
      for (const mode of modes) {
        const started = performance.now();
        const response = await fetch(stacks[mode]!.mcpUrl, { method: 'POST', headers: { ...MCP_HEADERS, authorization: `Bearer ${tokens[mode]}` }, body: INITIALIZE });
        await response.arrayBuffer();
        const elapsed = performance.now() - started;
        expect(response.status).toBe(200);
        if (i >= WARM_UP) times[mode].push(elapsed);
      }
    }
    const baseline = median(times.off);
    for (const mode of ['down', 'hang'] as const) {
      expect(median(times[mode]) - baseline, `${mode}: p50 ${median(times[mode]).toFixed(2)} ms against ${baseline.toFixed(2)} ms`).toBeLessThan(P50_BOUND_MS);
      expect(Math.max(...times[mode])).toBeLessThan(SLOWEST_BOUND_MS);
    }
    // The hanging collector was asked while the requests ran: the measurement covers a stuck export.
    expect(hanging.arrived()).toBeGreaterThan(0);
  });

  it('with tracing off, passes the client’s traceparent and tracestate to the upstream as sent', async () => {
    const stack = stacks.off!;
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const response = await fetch(stack.mcpUrl, {
      method: 'POST',
      headers: { ...MCP_HEADERS, authorization: `Bearer ${await validToken(stack)}`, traceparent, tracestate: 'rojo=00f067aa0ba902b7', 'x-request-id': 'untraced' },
      body: INITIALIZE,
    });
    expect(response.status).toBe(200);
    const received = stack.mcp.requests.find((request) => request.headers['x-request-id'] === 'untraced')!;
    expect(received.headers).toMatchObject({ traceparent, tracestate: 'rojo=00f067aa0ba902b7' });
  });
});
