import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './stack.ts';

/** Whether this machine has a redis-server binary (CI installs one; see .ci/run). */
export function redisServerInstalled(): boolean {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Tests that need Redis run where it is installed, and always in CI: there a missing server is a
 * failure, not a reason to skip.
 */
export const skipWithoutRedis = !redisServerInstalled() && !process.env.CI;

export const REDIS_SKIP_NOTICE =
  'redis-server not found on PATH: skipping the broker Redis store tests (test/integration/redis-store.test.ts, broker-replicas.test.ts); install redis-server (CI does, and so does .ci/run) to run them';

if (skipWithoutRedis) noticeOncePerRun(REDIS_SKIP_NOTICE);

/**
 * Writes `line` to stderr once per vitest run, however many test files import this helper: each file runs
 * in its own worker process, so the guard is a marker file named after the run's main process (every
 * worker's parent), created exclusively by the first worker to get there.
 */
function noticeOncePerRun(line: string): void {
  const prefix = 'mcp-warden-test-notice-';
  const marker = join(tmpdir(), `${prefix}${process.ppid}-${startTimeOf(process.ppid)}`);
  try {
    closeSync(openSync(marker, 'wx'));
  } catch {
    return; // Another worker of this run has said it.
  }
  process.stderr.write(`${line}\n`);
  // Markers of runs that have ended would otherwise pile up in the temporary directory.
  for (const name of readdirSync(tmpdir())) {
    const pid = Number(name.slice(prefix.length).split('-')[0]);
    if (name.startsWith(prefix) && pid !== process.ppid && !alive(pid)) rmSync(join(tmpdir(), name), { force: true });
  }
}

/** The process's start time on Linux (so a reused pid is another run), or '' where /proc is absent. */
function startTimeOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19]!;
  } catch {
    return '';
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface StartedRedis {
  readonly url: string;
  close(): Promise<void>;
}

/** A real redis-server on 127.0.0.1, in memory only, stopped by `close`. */
export async function startRedis(): Promise<StartedRedis> {
  const port = await freePort();
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${output}`)), 10_000);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`redis-server could not be started (is it installed? .ci/run installs it): ${error.message}`));
    });
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return {
    url: `redis://127.0.0.1:${port}`,
    async close() {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
  };
}
