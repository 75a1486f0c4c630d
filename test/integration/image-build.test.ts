import { execFile } from 'node:child_process';
import { copyFileSync, cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = new URL('../../', import.meta.url).pathname;

/**
 * No Docker engine runs on these machines, so the Dockerfile's steps are replayed on a clean copy:
 * compile src/ as the build stage does, install production dependencies only into a fresh folder as
 * the runtime stage does, then run the image's entry point. A runtime import that lives only in
 * devDependencies would fail here.
 */
describe('the container image build, replayed', () => {
  it('runs `mcp-warden check` on the example config with production dependencies only', { timeout: 180_000 }, async () => {
    const image = mkdtempSync(join(tmpdir(), 'warden-image-'));
    for (const file of ['package.json', 'package-lock.json', 'config.example.yaml']) copyFileSync(join(root, file), join(image, file));
    cpSync(join(root, 'schema'), join(image, 'schema'), { recursive: true });
    await run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json'), '--outDir', join(image, 'dist')]);
    await run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: image, timeout: 150_000 });

    const env = { ...process.env, UPSTREAM_API_KEY: 'image-test-key', INTROSPECTION_CLIENT_SECRET: 'image-test-secret', NODE_ENV: 'production' };
    const result = await run(process.execPath, ['dist/cli.js', 'check', '--config', 'config.example.yaml'], { cwd: image, env, timeout: 120_000 }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }),
    );
    // The example names example.com hosts, which this machine cannot reach: the report must say so
    // (exit 1), and nothing may fail to load.
    expect(result.stderr).not.toMatch(/ERR_MODULE_NOT_FOUND|Cannot find (package|module)/);
    expect(result.stdout).toContain('resource (token audience)  https://mcp.example.com/mcp');
    expect(result.stdout).toMatch(/FAIL {2}issuer https:\/\/idp\.example\.com\/realms\/mcp/);
    expect(result.code).toBe(1);
  });
});
