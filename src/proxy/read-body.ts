import type { IncomingMessage } from 'node:http';

export type BodyResult = { ok: true; body: Buffer } | { ok: false; problem: 'too_large' | 'client_gone' };

/** Reads a request body up to `maxBytes`, refusing early on a declared length over the cap. */
export async function readBody(req: IncomingMessage, maxBytes: number): Promise<BodyResult> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) return { ok: false, problem: 'too_large' };
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > maxBytes) return { ok: false, problem: 'too_large' };
      chunks.push(chunk as Buffer);
    }
  } catch {
    // The client went away mid-body: nothing to answer, and nothing wrong with the proxy.
    return { ok: false, problem: 'client_gone' };
  }
  return { ok: true, body: Buffer.concat(chunks) };
}
