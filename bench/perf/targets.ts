// The systems under test and how to reach them. Each target is one process (none for the direct ones)
// loaded with one request: a tools/call POST for (a)–(h) and (l), a tools/list POST for (i)–(k). Only the
// port, the body and, for mcp-warden, the Authorization header (and for (l) a DPoP proof per request) differ. Starting an mcp-warden is in wardens.ts.
import { join } from 'node:path';
import type { Authority } from './authority.ts';
import { assertBound, createDpopKey, ProofPool } from './dpop.ts';
import { freePort } from '../processes.ts';
import { spawnNode, waitUntil, type Child } from './children.ts';
import { FILTERED_TOOL_NAMES, LIST_BODY, TOOL_NAMES, toolNames } from './tool-list.ts';
import { PER_PRINCIPAL_STREAMS, REPO, START_TIMEOUT_MS, startWarden, type StdioUpstream, type WardenMode } from './wardens.ts';

export { PER_PRINCIPAL_STREAMS, REPO, type StdioUpstream } from './wardens.ts';

export const BODY = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}';
export const BASE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
};
/** What the upstream answers a tools/call with; every target must pass it through unchanged. */
export const EXPECTED_RESPONSE = '{"jsonrpc":"2.0","id":1,"result":{}}';

export const TARGET_IDS = ['a', 'b', 'o', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n'] as const;
export type TargetId = (typeof TARGET_IDS)[number];

/** The MCP request a target is loaded with. */
export type RequestKind = 'tools/call' | 'tools/list';

export interface Target {
  readonly id: TargetId;
  readonly label: string;
  readonly request: RequestKind;
  /** The POST body sent, every request the same. */
  readonly body: string;
  /** For tools/list: the tool names the answer must carry, in order (all 200, or the 190 left by the filter). */
  readonly expectedTools?: readonly string[];
  /** The MCP endpoint to load, e.g. http://127.0.0.1:40001/mcp */
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  /** The process whose CPU and memory are measured; none for (a) and (i), which have no proxy. */
  readonly proxy: Child | undefined;
  /** mcp-warden's admin listener (its /metrics); none for (a), (b) and (i). */
  readonly adminOrigin?: string;
  /** (l): a new DPoP proof for every request (header `dpop`), pre-signed before each window. */
  readonly proofs?: ProofPool;
  /** (l)'s access token, for the check that it is refused as a bearer token. */
  readonly boundToken?: string;
}

export interface Stack {
  readonly upstream: Child;
  readonly upstreamOrigin: string;
  /** (n)'s collector stand-in: its /_stats counts the exports it received. */
  readonly otlpSinkOrigin: string;
  readonly targets: readonly Target[];
  /** Starts one more mcp-warden, with stream and connection limits raised, for the SSE part. */
  startSseWarden(limit: number): Promise<{ child: Child; url: string; tokens: string[] }>;
  /** Starts one more mcp-warden whose upstream is the stdio command, for the stdio part. */
  startStdioWarden(upstream: StdioUpstream): Promise<StdioWarden>;
  close(): Promise<void>;
}

export interface StdioWarden {
  readonly child: Child;
  readonly url: string;
  /** The admin listener, for /metrics. */
  readonly adminOrigin: string;
  /** A valid RS256 access token for this mcp-warden; one subject is one principal. */
  mintToken(subject: string): Promise<string>;
}

interface WardenSpec {
  readonly id: TargetId;
  readonly label: string;
  readonly mode: WardenMode;
  readonly token: (resourceUrl: string) => Promise<string>;
  readonly request?: RequestKind;
  /** The policy rule `tools/call` `delete_*` needs `mcp:admin`. */
  readonly rule?: boolean;
  /** `audit.tool_calls`; the default (on) when left out. */
  readonly audit?: boolean;
  /** The token is bound to a DPoP key (`cnf.jkt`) and sent as `Authorization: DPoP` with a new proof per request. */
  readonly dpop?: boolean;
  /** Tracing on, every trace sampled, spans exported over OTLP/HTTP to the local sink. */
  readonly tracing?: boolean;
  /** `limits.requests` per principal, client and IP, too high to refuse anything (memory store). */
  readonly requestLimits?: boolean;
}

/**
 * Every mcp-warden target. (c)–(g) run with the defaults, so with the tool-call audit on: every POST body
 * is read and a tools/call's answer is read for its outcome. (h) is (c) with the audit off, the figure
 * (c) gave before the audit existed. (j) and (k) are the tools/list pair: (j) with nothing that reads
 * bodies or answers, (k) with the rule, so the list is read, filtered and re-serialized. (l) is (c) with
 * the token bound to a key and a DPoP proof of that key on every request (`tokens.dpop.mode` at its default).
 */
function wardenSpecs(authority: Authority): WardenSpec[] {
  const rs256 = (aud: string) => authority.mintJwt('RS256', aud);
  return [
    { id: 'c', label: 'mcp-warden JWT RS256', mode: 'jwt', token: rs256 },
    { id: 'd', label: 'mcp-warden JWT ES256', mode: 'jwt', token: (aud) => authority.mintJwt('ES256', aud) },
    { id: 'e', label: 'mcp-warden introspection (warm cache)', mode: 'introspection', token: async (aud) => authority.mintOpaque(aud) },
    { id: 'f', label: 'mcp-warden JWT RS256 + policy rules', mode: 'jwt', token: rs256, rule: true },
    // One token, so after the check below (its first request makes the one exchange) the cache always hits.
    { id: 'g', label: 'mcp-warden JWT RS256 + token exchange (warm cache)', mode: 'exchange', token: rs256 },
    { id: 'h', label: 'mcp-warden JWT RS256, tool-call audit off', mode: 'jwt', token: rs256, audit: false },
    { id: 'j', label: 'tools/list, mcp-warden, no rules, audit off', mode: 'jwt', token: rs256, audit: false, request: 'tools/list' },
    { id: 'k', label: 'tools/list, mcp-warden + delete_* rule (filtered)', mode: 'jwt', token: rs256, rule: true, request: 'tools/list' },
    { id: 'l', label: 'mcp-warden JWT RS256 + DPoP (new proof per request)', mode: 'jwt', token: rs256, dpop: true },
    { id: 'n', label: 'mcp-warden JWT RS256 + tracing (sampling 1.0, OTLP/HTTP to a local receiver)', mode: 'jwt', token: rs256, tracing: true },
    { id: 'm', label: 'mcp-warden JWT RS256 + rate limits (memory)', mode: 'jwt', token: rs256, requestLimits: true },
  ];
}

export async function startStack(dir: string, authority: Authority): Promise<Stack> {
  const children: Child[] = [];
  const close = async () => {
    await Promise.all(children.map((child) => child.stop()));
  };
  try {
    const upstreamPort = await freePort();
    const upstreamOrigin = `http://127.0.0.1:${upstreamPort}`;
    const upstream = spawnNode('upstream', join(REPO, 'bench/perf/upstream.ts'), ['--port', String(upstreamPort)], { cwd: REPO, stderrPath: join(dir, 'upstream.stderr') });
    children.push(upstream);
    await waitUntil(upstream, 'listening', START_TIMEOUT_MS, () => answers200(`${upstreamOrigin}/mcp`, BASE_HEADERS));

    const sinkPort = await freePort();
    const otlpSinkOrigin = `http://127.0.0.1:${sinkPort}`;
    const sink = spawnNode('otlp-sink', join(REPO, 'bench/perf/otlp-sink.ts'), ['--port', String(sinkPort)], { cwd: REPO, stderrPath: join(dir, 'otlp-sink.stderr') });
    children.push(sink);
    await waitUntil(sink, 'listening', START_TIMEOUT_MS, async () => (await fetch(`${otlpSinkOrigin}/_stats`, { signal: AbortSignal.timeout(1_000) })).ok);

    const floorPort = await freePort();
    const floor = spawnNode('floor', join(REPO, 'bench/perf/floor.ts'), ['--port', String(floorPort), '--upstream', upstreamOrigin], { cwd: REPO, stderrPath: join(dir, 'floor.stderr') });
    children.push(floor);
    const undiciFloorPort = await freePort();
    const undiciFloor = spawnNode('undici floor', join(REPO, 'bench/perf/floor-undici.ts'), ['--port', String(undiciFloorPort), '--upstream', upstreamOrigin], { cwd: REPO, stderrPath: join(dir, 'floor-undici.stderr') });
    children.push(undiciFloor);

    const specs = wardenSpecs(authority);
    // Started together: start-up is mostly module loading, and the machine has two cores to spend on it.
    // allSettled, not all: on a failure every sibling must have spawned before close() runs, or it would be left behind.
    const settled = await Promise.allSettled(
      specs.map(async (spec): Promise<Target> => {
        const started = await startWarden(dir, spec.id, { mode: spec.mode, authority, upstreamOrigin, rule: spec.rule, audit: spec.audit, requestLimits: spec.requestLimits, tracing: spec.tracing ? `${otlpSinkOrigin}/v1/traces` : undefined }, children);
        const request = requestOf(spec.request ?? 'tools/call', spec.rule === true);
        const common = { id: spec.id, label: spec.label, ...request, url: started.url, proxy: started.child, adminOrigin: started.adminOrigin };
        if (!spec.dpop) return { ...common, headers: { ...BASE_HEADERS, authorization: `Bearer ${await spec.token(started.resourceUrl)}` } };
        const key = await createDpopKey();
        const token = await authority.mintBoundJwt('RS256', started.resourceUrl, key.jkt);
        const headers = { ...BASE_HEADERS, authorization: `DPoP ${token}` };
        return { ...common, headers, proofs: new ProofPool(key, started.resourceUrl, token), boundToken: token };
      }),
    );
    const wardens = settled.map((result) => {
      if (result.status === 'rejected') throw result.reason;
      return result.value;
    });
    const floorUrl = `http://127.0.0.1:${floorPort}/mcp`;
    await waitUntil(floor, 'listening', START_TIMEOUT_MS, () => answers200(floorUrl, BASE_HEADERS));
    const undiciFloorUrl = `http://127.0.0.1:${undiciFloorPort}/mcp`;
    await waitUntil(undiciFloor, 'listening', START_TIMEOUT_MS, () => answers200(undiciFloorUrl, BASE_HEADERS));

    const direct = `${upstreamOrigin}/mcp`;
    const listed: Target[] = [
      { id: 'a', label: 'direct to upstream', ...requestOf('tools/call', false), url: direct, headers: BASE_HEADERS, proxy: undefined },
      { id: 'b', label: 'Node floor (http-proxy-3, no auth)', ...requestOf('tools/call', false), url: floorUrl, headers: BASE_HEADERS, proxy: floor },
      { id: 'o', label: 'undici floor (mcp-warden\'s forwarder, no auth)', ...requestOf('tools/call', false), url: undiciFloorUrl, headers: BASE_HEADERS, proxy: undiciFloor },
      { id: 'i', label: 'tools/list, direct to upstream', ...requestOf('tools/list', false), url: direct, headers: BASE_HEADERS, proxy: undefined },
      ...wardens,
    ];
    const targets = listed.sort((x, y) => TARGET_IDS.indexOf(x.id) - TARGET_IDS.indexOf(y.id));
    // A benchmark of 401s or 502s, or of a filter that filters nothing, would measure nothing: every target
    // must answer its real request as expected first.
    for (const target of targets) await assertAnswers(target);
    for (const target of targets) if (target.proofs) await assertBound(target.url, target.headers, target.body, target.boundToken!, target.proofs);

    const startSseWarden = async (limit: number) => {
      const started = await startWarden(dir, 'sse', { mode: 'jwt', authority, upstreamOrigin, limit }, children);
      // Several principals share the streams, as real clients would; each stays under the per-principal cap.
      const principals = Math.max(1, Math.ceil(limit / PER_PRINCIPAL_STREAMS));
      const tokens = await Promise.all(Array.from({ length: principals }, (_, i) => authority.mintJwt('RS256', started.resourceUrl, `bench-sse-${i}`)));
      return { child: started.child, url: started.url, tokens };
    };
    const startStdioWarden = async (stdio: StdioUpstream) => {
      const started = await startWarden(dir, 'stdio', { mode: 'jwt', authority, upstreamOrigin, stdio }, children);
      const mintToken = (subject: string) => authority.mintJwt('RS256', started.resourceUrl, subject);
      return { child: started.child, url: started.url, adminOrigin: started.adminOrigin, mintToken };
    };
    return { upstream, upstreamOrigin, otlpSinkOrigin, targets, startSseWarden, startStdioWarden, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** The body a target is loaded with, and for a tools/list the names its answer must carry. */
function requestOf(request: RequestKind, filtered: boolean): Pick<Target, 'request' | 'body' | 'expectedTools'> {
  if (request === 'tools/call') return { request, body: BODY };
  return { request, body: LIST_BODY, expectedTools: filtered ? FILTERED_TOOL_NAMES : TOOL_NAMES };
}

/** One request as the load generator sends it; true on a 200. */
async function answers200(url: string, headers: Readonly<Record<string, string>>): Promise<boolean> {
  const response = await fetch(url, { method: 'POST', headers, body: BODY, signal: AbortSignal.timeout(2_000) });
  await response.arrayBuffer();
  return response.status === 200;
}

/** Throws unless the target answers its request as it must: the exact tools/call result, or the right tool names. */
async function assertAnswers(target: Target): Promise<void> {
  const headers = target.proofs ? { ...target.headers, dpop: target.proofs.take() } : target.headers;
  const response = await fetch(target.url, { method: 'POST', headers, body: target.body, signal: AbortSignal.timeout(5_000) });
  const text = await response.text();
  const refuse = (why: string) => new Error(`(${target.id}) ${target.label} answered ${response.status} ${why}: refusing to benchmark it`);
  if (response.status !== 200) throw refuse(text.slice(0, 300));
  // (m) measured without its limits would be (c) again.
  if (target.id === 'm' && !response.headers.get('ratelimit')) throw refuse('without a RateLimit field (are limits.requests in src/ yet?)');
  const expected = target.expectedTools;
  if (!expected) {
    if (text !== EXPECTED_RESPONSE) throw refuse(text.slice(0, 300));
    return;
  }
  const names = toolNames(text);
  if (!names) throw refuse(`something other than a tools/list result: ${text.slice(0, 300)}`);
  if (names.length !== expected.length || names.some((name, i) => name !== expected[i])) {
    const deletes = names.filter((name) => name.startsWith('delete_')).length;
    const hint = expected.length < TOOL_NAMES.length && names.length === TOOL_NAMES.length ? ' (the list was not filtered: is tools/list filtering in src/ yet?)' : '';
    throw refuse(`${names.length} tools, ${deletes} of them delete_…, where ${expected.length} were expected${hint}`);
  }
}
