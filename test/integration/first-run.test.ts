// What a new user meets first (issue 20): the packed tarball's bin, and the one-line refusal an old
// Node.js gets from every npm script of the quick start instead of a stack trace.
import { execFile, execFileSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = new URL('../../', import.meta.url).pathname;
const run = promisify(execFile);
/**
 * The environment of a user's shell with `node` at `nodeDir` first on PATH: npm and npx are scripts run by
 * the first `node` on PATH. The npm_* variables of an enclosing `npm test` are left out.
 */
function shellWith(nodeDir: string): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.toLowerCase().startsWith('npm_')));
  return { ...env, PATH: [nodeDir, process.env.PATH].join(delimiter) };
}
const thisNodeFirst = shellWith(dirname(process.execPath));

describe('the packed tarball', () => {
  it('holds a built dist/cli.js, installs with its production dependencies only, and its bin answers --help and --version', { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-warden-pack-'));
    try {
      // prepack cleans dist/ and builds it, so the tarball's bin is never missing or stale.
      await run('npm', ['pack', '--pack-destination', dir], { cwd: root, env: thisNodeFirst, timeout: 30_000 });
      const tarball = readdirSync(dir).find((name) => /^mcp-warden-.*\.tgz$/.test(name));
      expect(tarball).toBeDefined();
      const app = join(dir, 'app');
      await run('npm', ['install', '--prefix', app, '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund', join(dir, tarball!)], { cwd: dir, env: thisNodeFirst, timeout: 30_000 });
      expect(existsSync(join(app, 'node_modules/mcp-warden/dist/cli.js'))).toBe(true);
      expect(existsSync(join(app, 'node_modules/mcp-warden/src'))).toBe(false);
      const { stdout } = await run('npx', ['--no-install', 'mcp-warden', '--help'], { cwd: app, env: thisNodeFirst, timeout: 15_000 });
      expect(stdout).toMatch(/^usage: mcp-warden /);
      // dist/cli.js finds the package.json beside dist/ in the installed package too.
      const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
      const printed = await run('npx', ['--no-install', 'mcp-warden', '--version'], { cwd: app, env: thisNodeFirst, timeout: 15_000 });
      expect(printed.stdout.trim()).toBe(`mcp-warden ${version}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const oldNode = findOldNode();

describe.skipIf(!oldNode)(`the quick start on an older Node.js (${oldNode?.version ?? 'none on this machine'})`, () => {
  it.each([
    ['npm start -- --config mcp-warden.yaml', ['start', '--', '--config', 'mcp-warden.yaml']],
    ['npm run demo', ['run', 'demo']],
    ['npm run demo:client', ['run', 'demo:client']],
    ['npm test', ['test']],
  ])('`%s` says which Node.js it needs, in one line without a stack, and exits 1', async (_command, args) => {
    const env = shellWith(dirname(oldNode!.path));
    const failure = await run('npm', args, { cwd: root, env, timeout: 30_000 }).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    );
    expect(failure.code).toBe(1);
    expect(failure.stderr).toContain(`mcp-warden needs Node.js >= 22.19 (this is ${oldNode!.version}).`);
    expect(failure.stderr).not.toMatch(/ERR_|\n\s+at /);
  });
});

/**
 * A `node` on PATH (or in /usr/bin, /usr/local/bin) older than the engines range but new enough for npm
 * itself to run (>= 20.17): development machines have one, as the system Node.js beside .tools/.
 */
function findOldNode(): { path: string; version: string } | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/bin', '/usr/bin'].filter(Boolean);
  for (const dir of new Set(dirs)) {
    const path = join(dir, 'node');
    try {
      accessSync(path, constants.X_OK);
      const version = execFileSync(path, ['--version'], { encoding: 'utf8', timeout: 5_000 }).trim();
      const [major, minor] = version.slice(1).split('.').map(Number) as [number, number];
      const old = major < 22 || (major === 22 && minor < 19);
      if (old && (major > 20 || (major === 20 && minor >= 17))) return { path, version };
    } catch {
      // Not there, or not runnable.
    }
  }
  return undefined;
}
