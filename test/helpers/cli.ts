// The mcp-warden command line as the CLI tests run it: a child process of this Node on src/cli.ts, with
// config files written into a temporary directory of the test file's own.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CLI = new URL('../../src/cli.ts', import.meta.url).pathname;

export interface CliRun {
  readonly code: number | null;
  readonly stderr: string;
  readonly stdout: string;
}

/** Runs the CLI with `args` (and `env` over this process's environment) to its exit; its output is collected. */
export async function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stderr, stdout };
}

/** A fresh temporary directory named from `prefix`, and `writeConfig`, which writes a file there and returns its path. */
export function configDir(prefix: string): { dir: string; writeConfig(name: string, text: string): string } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dir,
    writeConfig(name, text) {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    },
  };
}
