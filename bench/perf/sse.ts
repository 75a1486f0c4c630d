// The SSE part: memory of mcp-warden holding many idle event streams, and the latency it adds to each
// event. Runs against a fresh mcp-warden whose connection and stream caps are raised for it, so the
// memory figure starts from an idle process rather than one that has just served the load windows.
import { Agent, request, type ClientRequest, type IncomingMessage } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import { median, percentile } from './measure.ts';
import { openFilesLimit, rssBytes } from './procfs.ts';
import { BASE_HEADERS, BODY, EXPECTED_RESPONSE, PER_PRINCIPAL_STREAMS, type Stack } from './targets.ts';

/** Streams opened at once; the next batch waits for these to connect, so the listen backlog never overflows. */
const OPEN_BATCH = 250;
const BATCH_CONNECT_TIMEOUT_MS = 10_000;
/** Waiting for response headers stops when none came for this long... */
const NO_PROGRESS_MS = 3_000;
/** ...or after this, whichever is first. */
const HEADERS_DEADLINE_MS = 30_000;
const SETTLE_MS = 1_000;
const CLOSE_TIMEOUT_MS = 15_000;
/**
 * File descriptors kept free besides the stream sockets. The proxy is the process that needs most: one
 * socket from the client and one to the upstream per stream (its agent allows limits.max_connections).
 */
const FD_RESERVE = 200;
const FDS_PER_PROXIED_STREAM = 2;
const TICK_MS = 100;

export interface SseResult {
  readonly requested: number;
  readonly fdLimit: number | undefined;
  /** Streams attempted: the requested number, or fewer when the open-files limit cannot hold them. */
  readonly attempted: number;
  readonly fdLimited: boolean;
  /** Streams whose 200 and event-stream headers arrived through the proxy. */
  readonly opened: number;
  /** Requests still waiting for response headers when the wait ended. */
  readonly waiting: number;
  /** Non-200 answers and socket errors, by status or error code. */
  readonly refused: Record<string, number>;
  /** Streams the upstream saw open at the time of the memory reading. */
  readonly upstreamOpen: number;
  readonly secondsToOpen: number;
  readonly rssIdleBytes: number;
  readonly rssWithStreamsBytes: number;
  /** (rss with streams − idle rss) / client connections held, in bytes. */
  readonly bytesPerConnection: number;
  readonly latency: EventLatency;
}

export interface EventLatency {
  readonly events: number;
  readonly directMedianMs: number;
  readonly proxiedMedianMs: number;
  readonly directP99Ms: number;
  readonly proxiedP99Ms: number;
  /** Median through the proxy minus median direct; the clock offset between the processes cancels out. */
  readonly addedMedianMs: number;
}

export async function runSse(stack: Stack, requested: number, events: number, log: (line: string) => void): Promise<SseResult> {
  const fdLimit = openFilesLimit();
  const fitting = fdLimit === undefined ? requested : Math.floor((fdLimit - FD_RESERVE) / FDS_PER_PROXIED_STREAM);
  const attempted = Math.max(1, Math.min(requested, fitting));
  if (attempted < requested) {
    log(`SSE: open-files limit (ulimit -n) is ${fdLimit}; the proxy needs 2 sockets per stream plus ${FD_RESERVE} spare: opening ${attempted} streams instead of ${requested}`);
  }
  const warden = await stack.startSseWarden(attempted);
  const streamUrl = warden.url;
  await assertPostWorks(streamUrl, warden.tokens[0]!);
  await delay(SETTLE_MS);
  const rssIdleBytes = rssBytes(warden.child.pid);

  log(`SSE: opening ${attempted} idle streams through mcp-warden (${warden.tokens.length} principals, ≤${PER_PRINCIPAL_STREAMS} streams each)`);
  const agent = new Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY });
  const started = performance.now();
  const streams = await openStreams(streamUrl, warden.tokens, attempted, agent);
  await waitForHeaders(streams, attempted);
  const secondsToOpen = (performance.now() - started) / 1000;
  await delay(SETTLE_MS);
  const rssWithStreamsBytes = rssBytes(warden.child.pid);
  const upstreamOpen = await upstreamStreams(stack.upstreamOrigin);
  // Counted now: closing the streams below turns every waiting request into an error.
  const { opened, failed, connected } = streams;
  const refused = { ...streams.refused };
  log(`SSE: ${opened} streams open, ${attempted - opened - failed} waiting for headers, upstream sees ${upstreamOpen}; RSS ${mib(rssWithStreamsBytes)} MiB`);

  streams.closing = true;
  for (const req of streams.requests) req.destroy();
  agent.destroy();
  await waitForUpstreamIdle(stack.upstreamOrigin);

  log(`SSE: timing ${events} events, one every ${TICK_MS} ms, direct and through mcp-warden`);
  const query = `?tick=${TICK_MS}&count=${events}`;
  const [direct, proxied] = await Promise.all([
    eventDelays(`${stack.upstreamOrigin}/mcp${query}`, undefined, events),
    eventDelays(`${streamUrl}${query}`, warden.tokens[0], events),
  ]);
  await warden.child.stop();

  const sortedDirect = [...direct].sort((x, y) => x - y);
  const sortedProxied = [...proxied].sort((x, y) => x - y);
  return {
    requested,
    fdLimit,
    attempted,
    fdLimited: attempted < requested,
    opened,
    waiting: attempted - opened - failed,
    refused,
    upstreamOpen,
    secondsToOpen,
    rssIdleBytes,
    rssWithStreamsBytes,
    bytesPerConnection: connected > 0 ? (rssWithStreamsBytes - rssIdleBytes) / connected : Number.NaN,
    latency: {
      events: Math.min(direct.length, proxied.length),
      directMedianMs: median(direct),
      proxiedMedianMs: median(proxied),
      directP99Ms: percentile(sortedDirect, 0.99),
      proxiedP99Ms: percentile(sortedProxied, 0.99),
      addedMedianMs: median(proxied) - median(direct),
    },
  };
}

interface OpenStreams {
  readonly requests: ClientRequest[];
  opened: number;
  failed: number;
  /** Sockets that connected to the proxy (whether or not their response came). */
  connected: number;
  readonly refused: Record<string, number>;
  /** Set when the bench closes the streams: errors from then on are its own doing. */
  closing: boolean;
}

/** Sends `count` GET streams in batches; resolves once all are sent (not answered). */
async function openStreams(url: string, tokens: readonly string[], count: number, agent: Agent): Promise<OpenStreams> {
  const state: OpenStreams = { requests: [], opened: 0, failed: 0, connected: 0, refused: {}, closing: false };
  const refuse = (why: string) => {
    if (state.closing) return;
    state.failed += 1;
    state.refused[why] = (state.refused[why] ?? 0) + 1;
  };
  for (let first = 0; first < count; first += OPEN_BATCH) {
    const batch: Promise<void>[] = [];
    for (let i = first; i < Math.min(count, first + OPEN_BATCH); i += 1) {
      const req = request(url, { agent, method: 'GET', headers: { accept: 'text/event-stream', authorization: `Bearer ${tokens[i % tokens.length]}` } });
      state.requests.push(req);
      let answered = false;
      req.on('response', (res: IncomingMessage) => {
        answered = true;
        res.on('error', () => undefined); // the bench cutting the stream later is expected
        res.resume(); // nothing is expected on an idle stream; whatever comes is drained
        if (res.statusCode === 200 && String(res.headers['content-type']).startsWith('text/event-stream')) state.opened += 1;
        else refuse(String(res.statusCode));
      });
      // Errors after the response (the bench closing streams) are no refusal.
      req.on('error', (error: NodeJS.ErrnoException) => (answered ? undefined : refuse(error.code ?? 'error')));
      batch.push(
        new Promise<void>((resolve) => {
          req.once('socket', (socket) => {
            socket.once('connect', () => {
              state.connected += 1;
              resolve();
            });
            socket.once('close', () => resolve());
          });
        }),
      );
      req.end();
    }
    await Promise.race([Promise.all(batch), delay(BATCH_CONNECT_TIMEOUT_MS)]);
  }
  return state;
}

/** Until every stream is answered, none was for a while, or the deadline: each loop is bounded. */
async function waitForHeaders(streams: OpenStreams, count: number): Promise<void> {
  const deadline = Date.now() + HEADERS_DEADLINE_MS;
  let last = -1;
  let lastChange = Date.now();
  while (Date.now() < deadline && streams.opened + streams.failed < count) {
    const answered = streams.opened + streams.failed;
    if (answered !== last) [last, lastChange] = [answered, Date.now()];
    else if (Date.now() - lastChange > NO_PROGRESS_MS) return;
    await delay(100);
  }
}

/**
 * Delays of `count` events on one stream: receive time minus the send time the upstream wrote into each.
 * Both are wall-clock readings of different processes; only differences between two such series mean much.
 */
async function eventDelays(url: string, token: string | undefined, count: number): Promise<number[]> {
  const delays: number[] = [];
  const timeoutMs = count * TICK_MS + 10_000;
  await new Promise<void>((resolve, reject) => {
    const headers: Record<string, string> = { accept: 'text/event-stream', ...(token ? { authorization: `Bearer ${token}` } : {}) };
    const req = request(url, { method: 'GET', headers, agent: false });
    const timer = setTimeout(() => req.destroy(new Error(`no ${count} events within ${timeoutMs} ms`)), timeoutMs);
    req.on('response', (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`SSE stream ${url} answered ${res.statusCode}`));
        return;
      }
      let buffered = '';
      res.on('error', (error) => (clearTimeout(timer), reject(error)));
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        const receivedAt = performance.timeOrigin + performance.now();
        buffered += chunk;
        let end: number;
        while ((end = buffered.indexOf('\n\n')) !== -1) {
          const match = /^data: \{"sentAt":([\d.]+)\}$/m.exec(buffered.slice(0, end));
          buffered = buffered.slice(end + 2);
          if (match) delays.push(receivedAt - Number(match[1]));
        }
      });
      res.on('end', () => (clearTimeout(timer), resolve()));
    });
    req.on('error', (error) => (clearTimeout(timer), reject(error)));
    req.end();
  });
  if (delays.length < count) throw new Error(`SSE stream ${url}: ${delays.length} of ${count} events arrived`);
  return delays;
}

async function assertPostWorks(url: string, token: string): Promise<void> {
  const response = await fetch(url, { method: 'POST', headers: { ...BASE_HEADERS, authorization: `Bearer ${token}` }, body: BODY, signal: AbortSignal.timeout(5_000) });
  const text = await response.text();
  if (response.status !== 200 || text !== EXPECTED_RESPONSE) throw new Error(`SSE mcp-warden answered ${response.status} ${text.slice(0, 200)}`);
}

async function upstreamStreams(origin: string): Promise<number> {
  const response = await fetch(`${origin}/_stats`, { signal: AbortSignal.timeout(5_000) });
  return ((await response.json()) as { openStreams: number }).openStreams;
}

/** The streams just closed must be gone upstream before timing events, or they would hold upstream sockets. */
async function waitForUpstreamIdle(origin: string): Promise<void> {
  const deadline = Date.now() + CLOSE_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if ((await upstreamStreams(origin)) === 0) return;
    await delay(100);
  }
  throw new Error(`the upstream still holds streams ${CLOSE_TIMEOUT_MS} ms after they were closed`);
}

export function mib(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}
