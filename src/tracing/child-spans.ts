import { AsyncLocalStorage } from 'node:async_hooks';
import { SpanKind, SpanStatusCode, type Attributes, type Span } from '@opentelemetry/api';

/** The traced request a fetch runs for: it hands out spans under its own while it is in progress. */
export interface SpanParent {
  /** False once the request has settled: a refresh it scheduled must not land in its finished trace. */
  readonly open: boolean;
  child(name: string, kind: SpanKind, attributes?: Attributes): Span;
}

/**
 * The request a piece of work runs for. Key sets, introspection and token endpoints are shared by all
 * requests and take no request argument; carrying the request here spares every one of their callers
 * a parameter. Entered only when tracing is on, so with tracing off nothing is ever stored.
 */
const current = new AsyncLocalStorage<SpanParent>();

/** Runs `step` with `parent` as the request that everything it starts (and awaits) works for. */
export function runForRequest<A extends unknown[], R>(parent: SpanParent, step: (...args: A) => R, ...args: A): R {
  return current.run(parent, step, ...args);
}

/**
 * Runs `work` (an outbound call) inside a CLIENT span under the request that caused it, if a traced
 * request did; a call shared by several requests (one key fetch, one introspection) belongs to the first.
 * The span ends when the call settles; a failure is named by its `kind` (our FetchFailure's) or name.
 */
export async function traced<T>(name: string, work: () => Promise<T>, attributes?: Attributes): Promise<T> {
  const parent = current.getStore();
  if (!parent?.open) return work();
  const span = parent.child(name, SpanKind.CLIENT, attributes);
  try {
    const result = await work();
    span.end();
    return result;
  } catch (error) {
    const kind = (error as { kind?: unknown } | null)?.kind;
    span.setAttribute('error.type', typeof kind === 'string' ? kind : ((error as Error | null)?.name ?? 'error'));
    span.setStatus({ code: SpanStatusCode.ERROR });
    span.end();
    throw error;
  }
}
