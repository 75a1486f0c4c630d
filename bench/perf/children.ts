// The child processes of the bench: each system under test, and the upstream, runs in its own process so
// that /proc can tell its CPU time and memory apart from the load generator's (this process).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { stopProcess } from '../processes.ts';

const STOP_TIMEOUT_MS = 5_000;
const POLL_MS = 100;
const STDERR_TAIL_CHARS = 2_000;

export interface Child {
  readonly name: string;
  readonly pid: number;
  /** Set once the process has ended. */
  exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  /** The last of what it wrote to stderr (start-up errors), for error messages. */
  stderrTail(): string;
  stop(): Promise<void>;
}

export interface SpawnOptions {
  readonly cwd: string;
  readonly env?: Record<string, string>;
  /** Where stderr goes; stdout is discarded (/dev/null), so no pipe can fill up and stall the child. */
  readonly stderrPath: string;
}

/** Starts `node <script> ...args` with this process's Node binary. */
export function spawnNode(name: string, script: string, args: readonly string[], options: SpawnOptions): Child {
  const stderr = openSync(options.stderrPath, 'w');
  let proc: ChildProcess;
  try {
    proc = spawn(process.execPath, [script, ...args], {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'ignore', stderr],
    });
  } finally {
    closeSync(stderr); // the child holds its own copy
  }
  if (proc.pid === undefined) throw new Error(`could not start ${name}`);
  const child: Child = {
    name,
    pid: proc.pid,
    exited: undefined,
    stderrTail: () => (existsSync(options.stderrPath) ? readFileSync(options.stderrPath, 'utf8').slice(-STDERR_TAIL_CHARS) : ''),
    stop: () => stopProcess(proc, STOP_TIMEOUT_MS),
  };
  proc.on('exit', (code, signal) => (child.exited = { code, signal }));
  return child;
}

/**
 * Polls `probe` until it returns true, the child dies, or the time is up (then throws with the child's
 * stderr, so a start-up failure is explained rather than timed out on).
 */
export async function waitUntil(child: Child, what: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exited) throw new Error(`${child.name} exited (code ${child.exited.code}) before ${what}:\n${child.stderrTail()}`);
    if (await probe().catch(() => false)) return;
    await delay(POLL_MS);
  }
  throw new Error(`${child.name}: not ${what} within ${timeoutMs} ms:\n${child.stderrTail()}`);
}

/** The child died because its port was taken between freePorts() and its own listen(). */
export function isAddressInUse(child: Child): boolean {
  return child.exited !== undefined && child.stderrTail().includes('EADDRINUSE');
}
