import type { EventStore } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

/** What one session keeps for resumption: the newest events within both bounds. */
const MAX_EVENTS = 1000;
const MAX_BYTES = 1024 * 1024;

interface LoggedEvent {
  readonly id: string;
  readonly streamId: string;
  readonly message: JSONRPCMessage;
  readonly bytes: number;
}

/**
 * The SSE events of one session, kept so that a client whose stream broke can resume it with
 * Last-Event-ID (Streamable HTTP resumability): the child cannot replay what it said, so the proxy
 * keeps it. Bounded in count and bytes; an event resumed from beyond the bounds replays nothing after it.
 */
export class SessionEventLog implements EventStore {
  readonly #events: LoggedEvent[] = [];
  #bytes = 0;
  #sequence = 0;

  async storeEvent(streamId: string, message: JSONRPCMessage): Promise<string> {
    const id = `${streamId}|${++this.#sequence}`;
    const bytes = JSON.stringify(message).length;
    if (bytes > MAX_BYTES) return id;
    this.#events.push({ id, streamId, message, bytes });
    this.#bytes += bytes;
    while (this.#events.length > MAX_EVENTS || this.#bytes > MAX_BYTES) this.#bytes -= this.#events.shift()!.bytes;
    return id;
  }

  async getStreamIdForEventId(eventId: string): Promise<string | undefined> {
    const bar = eventId.lastIndexOf('|');
    return bar > 0 ? eventId.slice(0, bar) : undefined;
  }

  async replayEventsAfter(lastEventId: string, { send }: { send: (eventId: string, message: JSONRPCMessage) => Promise<void> }): Promise<string> {
    const streamId = (await this.getStreamIdForEventId(lastEventId)) ?? '';
    const after = Number(lastEventId.slice(streamId.length + 1));
    for (const event of this.#events) {
      if (event.streamId === streamId && Number(event.id.slice(streamId.length + 1)) > after) await send(event.id, event.message);
    }
    return streamId;
  }
}
