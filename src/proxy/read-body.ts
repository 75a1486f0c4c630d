import type { IncomingMessage } from 'node:http';

export type BodyResult = { ok: true; body: Buffer } | { ok: false; problem: 'too_large' | 'client_gone' };

/**
 * Reads a request body up to `maxBytes`, refusing early on a declared length over the cap. Listens for
 * the stream's events rather than iterating it: an async iterator costs a promise per chunk, and a
 * JSON-RPC body is usually one chunk.
 */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<BodyResult> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) return Promise.resolve({ ok: false, problem: 'too_large' });
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (result: BodyResult) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onGone);
      req.off('close', onGone);
      // Unread bytes of a refused body stay unread; the caller closes the connection.
      if (!result.ok) req.pause();
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) finish({ ok: false, problem: 'too_large' });
      else chunks.push(chunk);
    };
    const onEnd = () => finish({ ok: true, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size) });
    // The client went away mid-body: nothing to answer, and nothing wrong with the proxy.
    const onGone = () => finish({ ok: false, problem: 'client_gone' });
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onGone);
    req.on('close', onGone);
  });
}
