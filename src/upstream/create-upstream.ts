import type { ServerResponse } from 'node:http';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { StdioMetrics } from '../observability/stdio-metrics.ts';
import { Forwarder } from '../proxy/forward.ts';
import { StdioBridge } from './stdio/stdio-bridge.ts';
import type { UpstreamCredential } from './credential.ts';
import type { Upstream } from './upstream.ts';

export interface UpstreamParts {
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Header names the proxy injects: an HTTP upstream that echoes them must not hand them to clients. */
  readonly injectedHeaders: readonly string[];
  /** The upstream credential: a stdio child may get its token at spawn. */
  readonly credential: UpstreamCredential;
  /** A stdio session ended: its binding to a principal goes with it. */
  readonly onSessionEnd: (sessionId: string) => void;
}

/** The one upstream of this process, chosen by the config: an HTTP MCP server (url) or a stdio one (command). */
export function createUpstream(config: Config, parts: UpstreamParts): Upstream {
  const { upstream, limits } = config;
  const { metrics } = parts;
  const countStream = (res: ServerResponse) => {
    metrics.streamOpened();
    // `close` comes once; `once` would wrap the listener in a closure of its own that an open stream keeps.
    res.on('close', () => metrics.streamClosed());
  };
  if (upstream.stdio) {
    const bridge: StdioBridge = new StdioBridge({
      settings: upstream.stdio,
      credential: upstream.credential,
      childToken: () => parts.credential.current?.(),
      logger: parts.logger,
      metrics: new StdioMetrics(parts.metrics.registry, () => bridge.processes),
      onStandaloneStream: countStream,
      onSessionEnd: parts.onSessionEnd,
    });
    return bridge;
  }
  // The schema gives exactly one of the two.
  if (upstream.url === undefined) throw new TypeError('upstream.url or upstream.command is required');
  return new Forwarder({
    target: upstream.url,
    maxSockets: limits.max_connections,
    dropResponseHeaders: new Set([...parts.injectedHeaders, ...upstream.strip_response_headers].map((name) => name.toLowerCase())),
    connectTimeoutMs: upstream.connect_timeout,
    responseTimeoutMs: upstream.response_timeout,
    onStreamStart: (_req, res) => countStream(res),
  });
}
