import { pino, type DestinationStream } from 'pino';

/** Every destination's flush, run once by a single exit listener (a process may build many loggers, as tests do). */
const atExit = new Set<() => void>();

/**
 * Where the JSON lines go: written synchronously by pino's own sonic-boom, as pino's default for stdout
 * is, but the lines of one event-loop turn joined into one write: each further line of a request cost a
 * write system call of its own, 1.4 µs (issue 24). sonic-boom's own buffering (minLength) saves nothing,
 * as it re-measures its whole growing buffer on every line. Nothing waits longer than the turn that
 * logged it: the write follows in the same loop iteration, a fatal line is written at once (pino calls
 * flushSync for it), and an exiting process writes what it holds.
 * The asynchronous destination is no alternative: it too re-measured its buffer on every line, handed
 * each write to the thread pool, and grew without bound when the reader of stdout fell behind, where a
 * synchronous write makes the proxy wait for it.
 */
export function turnBufferedDestination(dest: number | string = 1): DestinationStream & { flushSync(): void } {
  const boom = pino.destination({ dest, sync: true });
  let held: string[] = [];
  const flush = () => {
    if (held.length === 0) return;
    const lines = held;
    held = [];
    boom.write(lines.length === 1 ? lines[0]! : lines.join(''));
  };
  if (atExit.size === 0) process.once('exit', () => atExit.forEach((flushHeld) => flushHeld()));
  atExit.add(flush);
  return {
    write(line: string) {
      if (held.push(line) === 1) setImmediate(flush);
    },
    flushSync: flush,
  };
}
