// Process and port helpers shared by the performance bench (bench/perf) and the soak run (bench/soak).
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';

/** SIGTERM, then SIGKILL if it is still there after `timeoutMs`. */
export async function stopProcess(proc: ChildProcess, timeoutMs: number): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = once(proc, 'exit');
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(timer);
}

/**
 * `count` distinct ports free right now on 127.0.0.1. All are held open until every one is known, so two
 * of them can never be the same; another program may still take one before its child binds it, which
 * the caller handles by retrying (see isAddressInUse in bench/perf/children.ts).
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createServer().listen(0, '127.0.0.1'));
  await Promise.all(servers.map((server) => (server.listening ? undefined : once(server, 'listening'))));
  const ports = servers.map((server) => (server.address() as AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

export async function freePort(): Promise<number> {
  return (await freePorts(1))[0]!;
}
