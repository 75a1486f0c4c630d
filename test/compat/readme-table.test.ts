import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SCRIPT = fileURLToPath(new URL('../../scripts/compat-table.mjs', import.meta.url));
const README = fileURLToPath(new URL('../../README.md', import.meta.url));
const START = '<!-- compat-table:start -->';
const END = '<!-- compat-table:end -->';

/** What the script would put between the markers, from the committed test/compat/results.json. */
const rendered = (): string => execFileSync(process.execPath, [SCRIPT], { encoding: 'utf8' });

function sectionOf(text: string): string | undefined {
  const start = text.indexOf(START);
  const end = text.indexOf(END);
  return start < 0 || end < start ? undefined : text.slice(start + START.length, end);
}

const readmeSection = sectionOf(readFileSync(README, 'utf8'));

describe('the compatibility table in README.md', () => {
  it.skipIf(readmeSection === undefined)(
    readmeSection === undefined
      ? `matches test/compat/results.json — skipped: README.md has no ${START} … ${END} markers yet`
      : 'matches test/compat/results.json (regenerate with `npm run compat-table -- --write`)',
    () => {
      expect(readmeSection).toBe(rendered());
    },
  );

  it('is rewritten between the markers by the script, the text around them untouched, and then checks clean', () => {
    const dir = mkdtempSync(join(tmpdir(), 'compat-table-'));
    try {
      const file = join(dir, 'README.md');
      writeFileSync(file, `# Title\n\nbefore\n\n${START}\nstale table\n${END}\n\nafter\n`);
      const stale = spawnSync(process.execPath, [SCRIPT, '--check', file], { encoding: 'utf8' });
      expect(stale.status).toBe(1);
      execFileSync(process.execPath, [SCRIPT, '--write', file]);
      const written = readFileSync(file, 'utf8');
      expect(written.startsWith(`# Title\n\nbefore\n\n${START}\n\n| Client |`)).toBe(true);
      expect(written.endsWith(`${END}\n\nafter\n`)).toBe(true);
      expect(sectionOf(written)).toBe(rendered());
      expect(spawnSync(process.execPath, [SCRIPT, '--check', file]).status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is not written into a file without the markers', () => {
    const dir = mkdtempSync(join(tmpdir(), 'compat-table-'));
    try {
      const file = join(dir, 'README.md');
      writeFileSync(file, '# no markers\n');
      const result = spawnSync(process.execPath, [SCRIPT, '--write', file], { encoding: 'utf8' });
      expect(result.status).toBe(2);
      expect(result.stderr).toContain('has no <!-- compat-table:start -->');
      expect(readFileSync(file, 'utf8')).toBe('# no markers\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
