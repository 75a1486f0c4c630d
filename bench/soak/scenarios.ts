// The traffic mix. Each worker runs one scenario at a time, chosen by weight, until the deadline. A
// scenario sends a few requests and records each one with what it should have got.
import { randomUUID } from 'node:crypto';
import { Client, drain, MCP_PROTOCOL_VERSION, POST_HEADERS, readEvents, toolText, type Opened, type RequestSpec } from './http.ts';
import type { Category, Outcome, Stats } from './stats.ts';
import type { InvalidKind, TokenPool } from './tokens.ts';

/** Share of iterations per category. SSE and disconnect iterations last longer, so they get fewer. */
const WEIGHTS: ReadonlyArray<readonly [Category, number]> = [
  ['valid', 40],
  ['invalid', 25],
  ['opaque', 15],
  ['sse', 10],
  ['disconnect', 10],
];
/** A session serves this many echo calls (random in the range), then is deleted… */
const SESSION_USES = [3, 20] as const;
/** …except this share, left open as careless clients do, so the proxy's session bindings see churn too. */
const ABANDON_SHARE = 0.05;
/** How long a standalone GET stream is held before we close it. */
const STREAM_HOLD_MS = [1_000, 3_000] as const;
const BROADCAST_WAIT_MS = 3_000;
const COUNTDOWN = { steps: 5, interval_ms: 100 } as const;
/** The slow tool outlives every abort delay, so the abort always cuts a call in progress. */
const SLOW_MS = 5_000;
const ABORT_AFTER_MS = [0, 1_000] as const;

export interface Worker {
  readonly client: Client;
  readonly tokens: TokenPool;
  readonly stats: Stats;
  /** The invalid token kinds in the mix. */
  readonly invalidKinds: readonly InvalidKind[];
  /** Checked before each iteration: true once the run's time is up (or it was interrupted). */
  readonly stopped: () => boolean;
  /** A JWT session reused across iterations (valid, invalid hijack attempts, countdowns, disconnects). */
  session?: Session;
  /** The same for an opaque token. */
  opaqueSession?: Session;
}

interface Session {
  readonly id: string;
  readonly token: string;
  uses: number;
  readonly limit: number;
  /**
   * JSON-RPC ids must be unique within a session: an aborted call keeps running on the server, and its
   * late answer would be routed by id to whichever open stream reuses that id, ending it early.
   */
  nextRequestId: number;
}

const ITERATIONS: Record<Category, (worker: Worker) => Promise<void>> = {
  valid: validIteration,
  invalid: invalidIteration,
  opaque: opaqueIteration,
  sse: (worker) => (Math.random() < 0.5 ? standaloneStream(worker) : countdown(worker, 'sse')),
  disconnect: (worker) => (Math.random() < 0.5 ? abortSlowCall(worker) : abortCountdown(worker)),
};

/** One worker's loop: bounded by the run's time and by an iteration count, whichever ends it first. */
export async function runWorker(worker: Worker, maxIterations: number): Promise<void> {
  for (let iteration = 0; iteration < maxIterations && !worker.stopped(); iteration += 1) {
    const category = pickCategory();
    try {
      await ITERATIONS[category](worker);
    } catch (error) {
      // A bug in this script must not pass for a healthy proxy: it is counted as a client error.
      worker.stats.record(category, 'harness', 'allow', { kind: 'client-error', code: `harness: ${(error as Error).message}` });
    }
  }
  // Leave the upstream clean: end the sessions this worker still holds.
  if (worker.session) await endSession(worker, 'valid', worker.session);
  if (worker.opaqueSession) await endSession(worker, 'opaque', worker.opaqueSession);
  worker.session = worker.opaqueSession = undefined;
}

function pickCategory(): Category {
  const total = WEIGHTS.reduce((sum, [, weight]) => sum + weight, 0);
  let roll = Math.random() * total;
  for (const [category, weight] of WEIGHTS) {
    roll -= weight;
    if (roll < 0) return category;
  }
  return 'valid';
}

// ---- valid and opaque: initialize, initialized, tools/list, tools/call echo, DELETE now and then ----

async function validIteration(worker: Worker): Promise<void> {
  const session = (worker.session ??= await openSession(worker, 'valid', worker.tokens.jwt, true));
  if (!session) return;
  await echo(worker, 'valid', session, 'echo');
  worker.session = await maybeEndSession(worker, 'valid', session);
}

async function opaqueIteration(worker: Worker): Promise<void> {
  const session = (worker.opaqueSession ??= await openSession(worker, 'opaque', worker.tokens.opaque, true));
  if (!session) return;
  await echo(worker, 'opaque', session, 'echo');
  worker.opaqueSession = await maybeEndSession(worker, 'opaque', session);
}

async function openSession(worker: Worker, category: Category, token: string, listTools: boolean): Promise<Session | undefined> {
  const init = await worker.client.send(post(token, undefined, { jsonrpc: '2.0', id: 1, method: 'initialize', params: initializeParams() }));
  if (!worker.stats.record(category, 'initialize', 'allow', init.outcome)) return undefined;
  const id = init.headers?.['mcp-session-id'];
  if (typeof id !== 'string') {
    worker.stats.badAnswer(category, 'initialize', 'no Mcp-Session-Id in the answer');
    return undefined;
  }
  worker.stats.note('sessions opened');
  const session: Session = { id, token, uses: 0, limit: randomInt(SESSION_USES), nextRequestId: 2 };
  const initialized = await worker.client.send(post(token, id, { jsonrpc: '2.0', method: 'notifications/initialized' }));
  worker.stats.record(category, 'notifications/initialized', 'allow', initialized.outcome);
  if (listTools) {
    const list = await worker.client.send(post(token, id, { jsonrpc: '2.0', id: session.nextRequestId++, method: 'tools/list' }));
    if (worker.stats.record(category, 'tools/list', 'allow', list.outcome) && !list.text?.includes('"echo"')) {
      worker.stats.badAnswer(category, 'tools/list', 'echo is not listed');
    }
  }
  return session;
}

async function echo(worker: Worker, category: Category, session: Session, label: string): Promise<void> {
  const text = `soak-${randomUUID()}`;
  const reply = await worker.client.send(post(session.token, session.id, toolCall(session, 'echo', { text })));
  if (worker.stats.record(category, label, 'allow', reply.outcome) && toolText(reply.headers?.['content-type'], reply.text ?? '') !== text) {
    worker.stats.badAnswer(category, label, 'echo did not return its text');
  }
  session.uses += 1;
}

/** Returns the session if it lives on, undefined once it is deleted or abandoned. */
async function maybeEndSession(worker: Worker, category: Category, session: Session): Promise<Session | undefined> {
  if (session.uses < session.limit) return session;
  if (Math.random() < ABANDON_SHARE) worker.stats.note('sessions abandoned');
  else await endSession(worker, category, session);
  return undefined;
}

async function endSession(worker: Worker, category: Category, session: Session): Promise<void> {
  const reply = await worker.client.send({ method: 'DELETE', headers: sessionHeaders(session.token, session.id) });
  if (worker.stats.record(category, 'DELETE', 'allow', reply.outcome)) worker.stats.note('sessions deleted');
}

// ---- invalid: every kind of bad token, on a new session, on a live session, on a GET stream ----

const INVALID_TARGETS = ['initialize', 'live-session', 'get-stream'] as const;

async function invalidIteration(worker: Worker): Promise<void> {
  // One in every invalidKinds.length + 1 is a valid token asking for a tool the policy keeps from it.
  const kind = worker.invalidKinds[Math.floor(Math.random() * (worker.invalidKinds.length + 1))];
  const session = (worker.session ??= await openSession(worker, 'valid', worker.tokens.jwt, true));
  if (kind === undefined) {
    if (session) await expectDenied(worker, 'policy-deny', post(session.token, session.id, toolCall(session, 'delete_file', { path: '/etc/passwd' })));
    return;
  }
  const token = worker.tokens.invalid(kind);
  const target = INVALID_TARGETS[Math.floor(Math.random() * INVALID_TARGETS.length)]!;
  // Trying a live session with a bad token is the hijack attempt a session-stealing client would make.
  const sessionId = target === 'initialize' ? undefined : session?.id;
  const spec =
    target === 'get-stream'
      ? { method: 'GET' as const, headers: { ...sessionHeaders(token, sessionId), accept: 'text/event-stream' } }
      : post(token, sessionId, target === 'initialize' ? { jsonrpc: '2.0', id: 1, method: 'initialize', params: initializeParams() } : toolCall(session, 'echo', { text: 'must not pass' }));
  await expectDenied(worker, kind, spec);
}

/**
 * Judges a request that must be refused on its status alone: a wrong allow may be an endless event
 * stream, so its body is never waited for (a 2xx is cut at once; a refusal's small body is read).
 */
async function expectDenied(worker: Worker, label: string, spec: RequestSpec): Promise<void> {
  const opened = await worker.client.open(spec);
  if (opened.kind !== 'opened') {
    worker.stats.record('invalid', label, 'deny', opened);
    return;
  }
  if (opened.status >= 200 && opened.status < 300) {
    opened.abort();
    await drain(opened);
    worker.stats.record('invalid', label, 'deny', { kind: 'status', status: opened.status });
    return;
  }
  const body = await opened.body.text().catch(() => '');
  worker.stats.record('invalid', label, 'deny', { kind: 'status', status: opened.status, body });
}

// ---- SSE: a standalone GET stream held a few seconds, and a tool call answered as a stream ----

async function standaloneStream(worker: Worker): Promise<void> {
  // A session of its own: the SDK allows one GET stream per session, and the server may not have seen
  // the close of the previous one yet when the next GET comes.
  const session = await openSession(worker, 'sse', worker.tokens.jwt, false);
  if (!session) return;
  const opened = await worker.client.open({ method: 'GET', headers: { ...sessionHeaders(session.token, session.id), accept: 'text/event-stream' } });
  const status: Outcome = opened.kind === 'opened' ? { kind: 'status', status: opened.status } : opened;
  if (worker.stats.record('sse', 'GET stream', 'allow', status) && opened.kind === 'opened') {
    await holdStream(worker, session, opened);
  } else if (opened.kind === 'opened') {
    await drain(opened);
  }
  await endSession(worker, 'sse', session);
}

/** Proves events flow (a broadcast arrives on the stream), keeps the stream open, then closes it. */
async function holdStream(worker: Worker, session: Session, opened: Opened): Promise<void> {
  const openedAt = Date.now();
  const marker = `broadcast-${randomUUID()}`;
  let received: () => void = () => undefined;
  const arrived = new Promise<void>((resolve) => (received = resolve));
  const reading = readEvents(opened, (event) => event.data.includes(marker) && received());
  const reply = await worker.client.send(post(session.token, session.id, toolCall(session, 'broadcast', { text: marker })));
  worker.stats.record('sse', 'tools/call broadcast', 'allow', reply.outcome);
  const got = await Promise.race([arrived.then(() => true), sleep(BROADCAST_WAIT_MS).then(() => false), reading.then(() => false)]);
  if (got) worker.stats.note('broadcasts received on GET stream');
  else worker.stats.badAnswer('sse', 'GET stream', 'broadcast not received on the standalone stream');
  await sleep(Math.max(0, randomInt(STREAM_HOLD_MS) - (Date.now() - openedAt)));
  opened.abort();
  const ended = await reading;
  if (ended.kind === 'aborted-by-us') worker.stats.note('GET streams closed by us');
  else worker.stats.streamFailure('sse', 'GET stream', ended.kind === 'client-error' ? ended.code : 'ended by the server');
}

/** tools/call countdown with a progress token: every progress event, then the result, on one stream. */
async function countdown(worker: Worker, category: Category): Promise<void> {
  const session = (worker.session ??= await openSession(worker, category, worker.tokens.jwt, true));
  if (!session) return;
  const progressToken = `p-${randomUUID()}`;
  const opened = await worker.client.open(post(session.token, session.id, toolCall(session, 'countdown', COUNTDOWN, progressToken)));
  if (opened.kind !== 'opened') {
    worker.stats.record(category, 'tools/call countdown', 'allow', opened);
    return;
  }
  if (!worker.stats.record(category, 'tools/call countdown', 'allow', { kind: 'status', status: opened.status })) {
    await drain(opened);
    return;
  }
  let progress = 0;
  let done = false;
  const ended = await readEvents(opened, (event) => {
    if (event.data.includes(progressToken)) progress += 1;
    if (event.data.includes('"result"') && event.data.includes('"done"')) done = true;
  });
  if (ended.kind === 'client-error') worker.stats.streamFailure(category, 'tools/call countdown', ended.code);
  else if (progress !== COUNTDOWN.steps || !done) worker.stats.badAnswer(category, 'tools/call countdown', `${progress}/${COUNTDOWN.steps} progress events, result ${done ? 'seen' : 'missing'}`);
  else worker.stats.note('countdown streams complete');
  session.uses += 1;
}

// ---- disconnects: the client goes away mid-call; the session must still work afterwards ----

async function abortSlowCall(worker: Worker): Promise<void> {
  const session = (worker.session ??= await openSession(worker, 'disconnect', worker.tokens.jwt, true));
  if (!session) return;
  const ours = new AbortController();
  // Anywhere from before the response headers to well into the (silent) stream.
  const timer = setTimeout(() => ours.abort(), randomInt(ABORT_AFTER_MS));
  const opened = await worker.client.open(post(session.token, session.id, toolCall(session, 'slow', { ms: SLOW_MS })), ours);
  if (opened.kind === 'opened') {
    worker.stats.record('disconnect', 'tools/call slow', 'allow', { kind: 'status', status: opened.status });
    const ended = await readEvents(opened, () => undefined);
    if (ended.kind === 'client-error') worker.stats.streamFailure('disconnect', 'tools/call slow', ended.code);
    else if (ended.kind !== 'aborted-by-us') worker.stats.badAnswer('disconnect', 'tools/call slow', 'answered before the abort');
    else worker.stats.note('slow calls aborted mid-stream');
  } else {
    worker.stats.record('disconnect', 'tools/call slow', 'allow', opened);
    if (opened.kind === 'aborted-by-us') worker.stats.note('slow calls aborted before headers');
  }
  clearTimeout(timer);
  await echo(worker, 'disconnect', session, 'echo after abort');
}

async function abortCountdown(worker: Worker): Promise<void> {
  const session = (worker.session ??= await openSession(worker, 'disconnect', worker.tokens.jwt, true));
  if (!session) return;
  const progressToken = `p-${randomUUID()}`;
  const opened = await worker.client.open(post(session.token, session.id, toolCall(session, 'countdown', { steps: 20, interval_ms: 100 }, progressToken)));
  const status: Outcome = opened.kind === 'opened' ? { kind: 'status', status: opened.status } : opened;
  if (!worker.stats.record('disconnect', 'tools/call countdown', 'allow', status) || opened.kind !== 'opened') {
    if (opened.kind === 'opened') await drain(opened);
    return;
  }
  // Cut the stream as soon as the first progress event shows the call is under way.
  const ended = await readEvents(opened, (event) => event.data.includes(progressToken) && opened.abort());
  if (ended.kind === 'client-error') worker.stats.streamFailure('disconnect', 'tools/call countdown', ended.code);
  else if (ended.kind !== 'aborted-by-us') worker.stats.badAnswer('disconnect', 'tools/call countdown', 'stream ended before any progress event');
  else worker.stats.note('countdown streams aborted');
  await echo(worker, 'disconnect', session, 'echo after abort');
}

// ---- request building ----

function initializeParams() {
  return { protocolVersion: MCP_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'mcp-warden-soak', version: '1' } };
}

function toolCall(session: Session | undefined, name: string, args: Record<string, unknown>, progressToken?: string) {
  const id = session ? session.nextRequestId++ : 1;
  return { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args, ...(progressToken ? { _meta: { progressToken } } : {}) } };
}

function sessionHeaders(token: string, sessionId: string | undefined): Record<string, string> {
  return {
    authorization: `Bearer ${token}`,
    ...(sessionId ? { 'mcp-session-id': sessionId, 'mcp-protocol-version': MCP_PROTOCOL_VERSION } : {}),
  };
}

function post(token: string, sessionId: string | undefined, message: unknown): RequestSpec {
  return { method: 'POST', headers: { ...POST_HEADERS, ...sessionHeaders(token, sessionId) }, body: JSON.stringify(message) };
}

function randomInt([min, max]: readonly [number, number]): number {
  return min + Math.floor(Math.random() * (max - min + 1));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

