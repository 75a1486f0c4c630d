import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A hand-written JWKS endpoint for fault injection only (timeouts, errors, garbage), never as an AS. */
export async function startFaultyServer(handler: (req: IncomingMessage, res: ServerResponse) => void) {
  let hits = 0;
  let current = handler;
  const server = createServer((req, res) => {
    hits += 1;
    current(req, res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get hits() {
      return hits;
    },
    respondWith(next: (req: IncomingMessage, res: ServerResponse) => void) {
      current = next;
    },
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}
