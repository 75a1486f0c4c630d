import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { deserializeMessage, serializeMessage } from '@modelcontextprotocol/sdk/shared/stdio.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { StdioSettings } from '../../config/upstream-schema.ts';
import type { Logger } from '../../observability/logger.ts';
import type { StdioMetrics } from '../../observability/stdio-metrics.ts';
import { LineSplitter } from './line-splitter.ts';

/** A stderr line is logged up to this long; the rest is cut. */
const STDERR_LINE_BYTES = 1024;
/** stderr lines logged per child and second; more are counted and summed up in one line. */
const STDERR_LINES_PER_SECOND = 20;

/** How the child's life ended: `spawn_failed` when it never ran. */
export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly spawnError: string | undefined;
}

export interface ChildHooks {
  readonly onMessage: (message: JSONRPCMessage) => void;
  readonly onExit: (exit: ChildExit) => void;
}

/**
 * One stdio MCP server process: JSON-RPC lines in on stdin, out on stdout (each line checked by the
 * SDK's own deserializer), stderr to the log. It runs in a process group of its own, so that ending it
 * also ends whatever it started (`npx` starts the real server as a grandchild).
 */
export class McpChild {
  readonly #process: ChildProcessByStdio<Writable, Readable, Readable>;
  readonly #logger: Logger;
  readonly #metrics: StdioMetrics;
  readonly #exited: Promise<void>;
  #alive = true;
  #stderrWindow = 0;
  #stderrLines = 0;
  #stderrDropped = 0;

  constructor(settings: StdioSettings, env: Record<string, string>, logger: Logger, metrics: StdioMetrics, hooks: ChildHooks) {
    this.#logger = logger;
    this.#metrics = metrics;
    const [program, ...args] = settings.command as [string, ...string[]];
    this.#process = spawn(program, args, { env, cwd: settings.cwd, stdio: ['pipe', 'pipe', 'pipe'], shell: false, detached: true });
    let spawnError: string | undefined;
    this.#process.on('error', (error: NodeJS.ErrnoException) => (spawnError ??= error.code ?? error.message));
    this.#exited = new Promise((resolve) => {
      this.#process.once('close', (code, signal) => {
        this.#alive = false;
        resolve();
        hooks.onExit({ code, signal, spawnError });
      });
    });
    const stdout = new LineSplitter(settings.max_message_bytes, (line, truncated, bytes) => this.#stdoutLine(line, truncated, bytes, hooks));
    this.#process.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    this.#process.stdout.on('end', () => stdout.end());
    const stderr = new LineSplitter(STDERR_LINE_BYTES, (line, truncated) => this.#stderrLine(line, truncated));
    this.#process.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    this.#process.stderr.on('end', () => stderr.end());
    // A child that exits while we write gets EPIPE: its exit is what tells the session, not this.
    this.#process.stdin.on('error', () => undefined);
  }

  get pid(): number | undefined {
    return this.#process.pid;
  }

  get alive(): boolean {
    return this.#alive;
  }

  send(message: JSONRPCMessage): void {
    if (this.#alive && this.#process.stdin.writable) this.#process.stdin.write(serializeMessage(message));
  }

  /** SIGTERM to the group, SIGKILL after `graceMs`; resolves once the child has exited. */
  async end(graceMs: number): Promise<void> {
    if (!this.#alive) return this.#exited;
    this.#process.stdin.end();
    this.#signal('SIGTERM');
    const kill = setTimeout(() => this.#signal('SIGKILL'), graceMs);
    await this.#exited;
    clearTimeout(kill);
  }

  #signal(signal: NodeJS.Signals): void {
    const pid = this.#process.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, signal);
    } catch {
      // The group is gone already (or was never made): the child itself is the last resort.
      this.#process.kill(signal);
    }
  }

  #stdoutLine(line: string, truncated: boolean, bytes: number, hooks: ChildHooks): void {
    if (line.trim() === '') return;
    let message: JSONRPCMessage | undefined;
    if (!truncated) {
      try {
        message = deserializeMessage(line);
      } catch {
        message = undefined;
      }
    }
    if (message) return hooks.onMessage(message);
    // Never the line itself: it is not ours to log, and it may be anything.
    this.#metrics.dropped(truncated ? 'too_long' : 'not_json_rpc');
    this.#logger.warn({ pid: this.pid, bytes, problem: truncated ? 'longer than upstream.max_message_bytes' : 'not a JSON-RPC message' }, 'stdio server wrote a line that was dropped');
  }

  #stderrLine(line: string, truncated: boolean): void {
    const window = Math.floor(Date.now() / 1000);
    if (window !== this.#stderrWindow) {
      if (this.#stderrDropped > 0) this.#logger.warn({ pid: this.pid, dropped_lines: this.#stderrDropped }, 'stdio server stderr lines over the log rate were dropped');
      this.#stderrWindow = window;
      this.#stderrLines = 0;
      this.#stderrDropped = 0;
    }
    if (++this.#stderrLines > STDERR_LINES_PER_SECOND) {
      this.#stderrDropped += 1;
      this.#metrics.dropped('stderr_rate');
      return;
    }
    this.#logger.info({ pid: this.pid, line, truncated: truncated || undefined }, 'stdio server stderr');
  }
}
