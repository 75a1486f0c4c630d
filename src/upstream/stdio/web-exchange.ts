import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Writable } from 'node:stream';
import type { AnswerWatch } from '../upstream.ts';

/**
 * The SDK's web-standard transport speaks Request and Response. The request it needs is only the head
 * (the body was read and parsed already); the response is written straight to Node, headers first and
 * each chunk as it comes. The SDK's Node wrapper (@hono/node-server) held a chunk for a 1 ms timer
 * whenever the next one was not ready (to compute a content length), which put a millisecond on every
 * answer behind the SSE priming event.
 */
export function webRequestOf(req: IncomingMessage): Request {
  const headers = new Headers();
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i]!, raw[i + 1]!);
  // Only the path matters to the transport; the host is the proxy's own, never taken from the client.
  return new Request(new URL(req.url ?? '/', 'http://mcp-warden.invalid'), { method: req.method, headers });
}

/**
 * Writes a web Response to `res`, through the answer watch when there is one; a client that goes away
 * cancels the body, which releases the stream.
 */
export async function writeWebResponse(response: Response, res: ServerResponse, answers?: AnswerWatch): Promise<void> {
  const headers: IncomingHttpHeaders = {};
  response.headers.forEach((value, name) => (headers[name] = value));
  const body = response.body;
  const handling = body ? answers?.(headers) : undefined;
  const through = handling?.rewrite;
  const tap = handling?.tap;
  if (through) delete headers['content-length'];
  res.writeHead(response.status, headers);
  if (!body) {
    res.end();
    return;
  }
  res.flushHeaders();
  const out: Writable = through ? through.once('error', () => res.destroy()) : res;
  through?.pipe(res);
  const reader = body.getReader();
  const cancel = () => void reader.cancel().catch(() => undefined);
  res.once('close', cancel);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!res.destroyed) out.write(value);
      tap?.write(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
    }
    tap?.end();
    out.end();
  } catch {
    res.destroy();
  } finally {
    res.off('close', cancel);
  }
}
