import type { ConfigProblem } from './errors.ts';
import type { Config } from './schema.ts';

/**
 * What a running process cannot take without a restart, and why: what its listeners, connections,
 * process-wide parts or live state were built from. Anything else applies to the next request.
 */
const FIXED: ReadonlyArray<{ readonly path: string; readonly of: (config: Config) => unknown; readonly why: string; readonly when?: (config: Config) => boolean }> = [
  { path: 'listen', of: (config) => config.listen, why: 'the listener keeps its address, port and TLS files (a certificate change is picked up by itself)' },
  { path: 'admin', of: (config) => config.admin, why: 'the admin listener keeps its address and port' },
  { path: 'broker', of: (config) => config.broker, why: 'the broker keeps its store, signing key, clients and identity provider' },
  { path: 'resource.url', of: (config) => config.resource.url, why: "the broker's issuer and its tokens' audience are built from it", when: (config) => config.broker !== undefined },
  { path: 'logging', of: (config) => config.logging, why: 'the logger is made once' },
  { path: 'tracing', of: (config) => config.tracing, why: 'the tracer and its exporter are made once' },
  { path: 'sessions', of: (config) => config.sessions, why: 'the session table holds the live sessions' },
  { path: 'upstream', of: (config) => config.upstream, why: 'a stdio upstream runs the live sessions as child processes', when: (config) => config.upstream.stdio !== undefined },
  {
    path: 'limits',
    of: ({ limits }) => [limits.max_header_bytes, limits.max_headers, limits.headers_timeout, limits.request_timeout, limits.idle_timeout, limits.max_connections, limits.max_connections_per_ip, limits.max_streams, limits.max_streams_per_principal],
    why: 'the listener and the stream slots keep their connection, header, timeout and stream limits (limits.requests, limits.store and limits.on_store_error do reload)',
  },
];

/** Whether two parts of a config say the same: they are plain data (durations as numbers, secrets as references). */
export function sameSettings(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Every change from `current` to `next` a running process refuses, each with its path and reason. */
export function reloadRefusals(current: Config, next: Config): ConfigProblem[] {
  return FIXED.filter((rule) => (rule.when?.(current) || rule.when?.(next) || !rule.when) && !sameSettings(rule.of(current), rule.of(next))).map((rule) => ({
    path: rule.path,
    message: `cannot change without a restart: ${rule.why}`,
  }));
}

/** The top-level sections that differ, for the log line of an applied reload. */
export function changedSections(current: Config, next: Config): string[] {
  const keys = new Set([...Object.keys(current), ...Object.keys(next)]) as Set<keyof Config>;
  return [...keys].filter((key) => !sameSettings(current[key], next[key])).sort();
}
