import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { turnBufferedDestination } from '../../src/observability/log-destination.ts';
import { createLogger } from '../../src/observability/logger.ts';

const tempFile = () => join(mkdtempSync(join(tmpdir(), 'warden-log-')), 'out.log');
const lines = (path: string) => readFileSync(path, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>);

describe('the log destination', () => {
  it('writes the lines of one turn together, in order, before the next turn', async () => {
    const path = tempFile();
    const logger = createLogger('info', { destination: turnBufferedDestination(path) });
    for (let n = 0; n < 50; n += 1) logger.info({ n }, 'request');
    expect(readFileSync(path, 'utf8')).toBe('');
    await nextTurn();
    expect(lines(path).map((line) => line.n)).toEqual([...Array(50).keys()]);
    logger.info({ n: 50 }, 'request');
    await nextTurn();
    expect(lines(path)).toHaveLength(51);
  });

  it('writes what it holds when the process exits within the turn that logged it', () => {
    const path = tempFile();
    const script = `
      import { createLogger } from ${JSON.stringify(new URL('../../src/observability/logger.ts', import.meta.url).pathname)};
      import { turnBufferedDestination } from ${JSON.stringify(new URL('../../src/observability/log-destination.ts', import.meta.url).pathname)};
      const logger = createLogger('info', { destination: turnBufferedDestination(${JSON.stringify(path)}) });
      logger.info({ n: 1 }, 'request');
      logger.info({ n: 2 }, 'request');
      process.exit(1);
    `;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(run.status).toBe(1);
    expect(lines(path).map((line) => line.n)).toEqual([1, 2]);
  });

  it('writes a fatal line, and what came before it, at once: pino flushes for it', () => {
    const path = tempFile();
    const logger = createLogger('info', { destination: turnBufferedDestination(path) });
    logger.info('request');
    logger.fatal('failed to start');
    expect(lines(path).map((line) => line.msg)).toEqual(['request', 'failed to start']);
  });
});
