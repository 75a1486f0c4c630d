import type { ServerResponse } from 'node:http';
import type { Access } from './access.ts';

/** Tells a client that sent `Expect: 100-continue` to send its body: only once it is authorized. */
export function sendContinue(res: ServerResponse, access: Access): void {
  if (!access.awaitingContinue) return;
  access.awaitingContinue = false;
  res.writeContinue();
}
