import type { Server } from 'node:http';
import type { Socket } from 'node:net';

export type ConnectionDrop = 'max_connections' | 'max_connections_per_ip';

/**
 * Caps open connections in all (Node's own maxConnections, which closes the extra socket) and per client
 * IP, so one client cannot hold every socket the proxy can serve. A refused connection is closed before
 * a byte is read from it.
 */
export function limitConnections(server: Server, limits: { total: number; perIp: number }, onDrop: (why: ConnectionDrop) => void): void {
  server.maxConnections = limits.total;
  server.on('drop', () => onDrop('max_connections'));
  const open = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const ip = socket.remoteAddress ?? '';
    const count = (open.get(ip) ?? 0) + 1;
    if (count > limits.perIp) {
      onDrop('max_connections_per_ip');
      socket.destroy();
      return;
    }
    open.set(ip, count);
    socket.once('close', () => {
      const left = open.get(ip)! - 1;
      if (left === 0) open.delete(ip);
      else open.set(ip, left);
    });
  });
}
