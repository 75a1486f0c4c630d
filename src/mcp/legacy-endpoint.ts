import type { EventWatcher } from '../upstream/upstream.ts';

/** The `endpoint` event comes first on a legacy stream; a stream that has not named one by then never will. */
const MAX_PEEK_BYTES = 8 * 1024;

/**
 * Watches a legacy HTTP+SSE (2024-11-05) stream for its first `endpoint` event, whose URL carries the
 * `sessionId` that every later `POST /messages?sessionId=…` presents. Reads alongside the pipe to the
 * client, without consuming or pausing the stream, and says when it has seen enough.
 */
export function legacyEndpointWatcher(onSessionId: (sessionId: string) => void): EventWatcher {
  let seen = '';
  return (chunk) => {
    seen += chunk.toString('utf8');
    for (const block of seen.split(/\r?\n\r?\n/).slice(0, -1)) {
      if (!/^event: ?endpoint$/m.test(block)) continue;
      const data = /^data: ?(.*)$/m.exec(block)?.[1];
      const sessionId = data ? new URL(data, 'http://placeholder').searchParams.get('sessionId') : null;
      if (sessionId) onSessionId(sessionId);
      return false;
    }
    return seen.length <= MAX_PEEK_BYTES;
  };
}
