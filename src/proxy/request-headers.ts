import type { IncomingHttpHeaders } from 'node:http';
import { normalizeHeaderName } from '../config/load.ts';
import { connectionListed, HOP_BY_HOP } from './hop-by-hop.ts';

/** Headers a client could use to claim a different origin, path or client address. */
const SPOOFABLE = [
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-forwarded-port',
  'x-forwarded-prefix',
  'x-forwarded-uri',
  'x-real-ip',
  'x-original-url',
  'x-original-uri',
  'x-rewrite-url',
];

export interface RequestHeaderPolicy {
  /** Names the proxy sets itself (credential, identity headers): every inbound variant is removed first. */
  readonly injectedNames: readonly string[];
}

/**
 * Removes from the inbound headers everything that must not reach the upstream: the client's token,
 * hop-by-hop headers and those the client lists in `Connection`, forwarding headers it could spoof, and
 * every case and `_`/`-` variant of a header the proxy injects. Runs before injection, so nothing a
 * client sends can remove or shadow what the proxy adds.
 */
export function createRequestHeaderScrubber(policy: RequestHeaderPolicy): (headers: IncomingHttpHeaders) => void {
  // `expect` too: the proxy answers 100-continue itself, once the request is authorized; `dpop`: the
  // proof is the client's, for this hop, like its token.
  const always = new Set(['authorization', 'dpop', 'expect', ...HOP_BY_HOP, ...SPOOFABLE, ...policy.injectedNames].map(normalizeHeaderName));
  return (headers) => {
    const listed = headers.connection === undefined ? undefined : new Set(connectionListed(headers.connection).map(normalizeHeaderName));
    for (const name in headers) {
      const normalized = normalizeHeaderName(name);
      if (always.has(normalized) || listed?.has(normalized)) delete headers[name];
    }
  };
}
