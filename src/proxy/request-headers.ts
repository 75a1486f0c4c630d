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
 * The inbound headers without everything that must not reach the upstream: the client's token,
 * hop-by-hop headers and those the client lists in `Connection`, forwarding headers it could spoof, and
 * every case and `_`/`-` variant of a header the proxy injects; with `identityOnly`, `Accept-Encoding`
 * too, so that an answer the proxy reads comes uncompressed. Runs before injection, so nothing a client
 * sends can remove or shadow what the proxy adds. A new object rather than deletions: a deleted property
 * turns V8's object into a dictionary, and copying that one for the upstream cost 1.1 µs more per request.
 */
export function createRequestHeaderScrubber(policy: RequestHeaderPolicy): (headers: IncomingHttpHeaders, identityOnly: boolean) => IncomingHttpHeaders {
  // `expect` too: the proxy answers 100-continue itself, once the request is authorized; `dpop`: the
  // proof is the client's, for this hop, like its token.
  const always = new Set(['authorization', 'dpop', 'expect', ...HOP_BY_HOP, ...SPOOFABLE, ...policy.injectedNames].map(normalizeHeaderName));
  return (headers, identityOnly) => {
    const listed = headers.connection === undefined ? undefined : new Set(connectionListed(headers.connection).map(normalizeHeaderName));
    const kept: IncomingHttpHeaders = {};
    for (const name in headers) {
      const normalized = normalizeHeaderName(name);
      if (always.has(normalized) || listed?.has(normalized) || (identityOnly && normalized === 'accept-encoding')) continue;
      kept[name] = headers[name];
    }
    return kept;
  };
}
