import { describe, expect, it } from 'vitest';
import { legacyEndpointWatcher } from '../../src/mcp/legacy-endpoint.ts';

/** Chunks go to the watcher as the forwarder gives them: until it says it has seen enough. */
function feed(chunks: string[]): string[] {
  const found: string[] = [];
  const watch = legacyEndpointWatcher((id) => found.push(id));
  for (const chunk of chunks) if (!watch(Buffer.from(chunk))) break;
  return found;
}

describe('legacy endpoint event', () => {
  it('reads the sessionId from the endpoint event, even split across chunks', () => {
    expect(feed(['event: endpoint\ndata: /messages?sess', 'ionId=abc-123\n\n'])).toEqual(['abc-123']);
  });

  it('takes only the first endpoint event', () => {
    expect(feed(['event: endpoint\ndata: /messages?sessionId=one\n\nevent: endpoint\ndata: /messages?sessionId=two\n\n'])).toEqual(['one']);
  });

  it('ignores streams that are not legacy ones, and gives up after a few kilobytes', () => {
    expect(feed(['id: 1\ndata: {"jsonrpc":"2.0"}\n\n'])).toEqual([]);
    expect(feed([`data: ${'x'.repeat(9000)}\n\n`, 'event: endpoint\ndata: /messages?sessionId=late\n\n'])).toEqual([]);
  });
});
