import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { KeyedCounts } from '../lifecycle/counts.ts';

export type ConnectionDrop = 'max_connections' | 'max_connections_per_ip';

/**
 * Caps open connections in all (Node's own maxConnections, which closes the extra socket) and per client
 * IP, so one client cannot hold every socket the proxy can serve. A refused connection is closed before
 * a byte is read from it.
 */
export function limitConnections(server: Server, limits: { total: number; perIp: number }, onDrop: (why: ConnectionDrop) => void): void {
  server.maxConnections = limits.total;
  server.on('drop', () => onDrop('max_connections'));
  const open = new KeyedCounts();
  server.on('connection', (socket: Socket) => {
    const ip = socket.remoteAddress ?? '';
    if (open.get(ip) >= limits.perIp) {
      onDrop('max_connections_per_ip');
      socket.destroy();
      return;
    }
    open.add(ip);
    // `close` comes once; `once` would wrap the listener in a closure of its own that an open stream's socket keeps.
    socket.on('close', () => open.remove(ip));
  });
}
