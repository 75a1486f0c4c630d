import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { freePort } from '../helpers/stack.ts';

const root = new URL('../../', import.meta.url).pathname;

describe('the quick-start demo', () => {
  it.each([
    ['', []],
    [' in broker mode', ['--broker']],
  ])('starts%s, lets `npm run demo:client` through the OAuth flow to a tool, and stops on SIGTERM', async (_mode, args) => {
    const env = {
      ...process.env,
      DEMO_WARDEN_PORT: String(await freePort()),
      DEMO_ADMIN_PORT: String(await freePort()),
      DEMO_AS_PORT: String(await freePort()),
      DEMO_MCP_PORT: String(await freePort()),
    };
    const demo = spawn(process.execPath, ['demo/run.ts', ...args], { cwd: root, env, stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      let banner = '';
      await new Promise<void>((resolve, reject) => {
        demo.once('exit', (code) => reject(new Error(`demo exited with ${code}: ${banner}`)));
        demo.stderr!.on('data', (chunk) => {
          banner += chunk;
          if (banner.includes('JSON access logs follow')) resolve();
        });
      });
      expect(banner).toContain(`MCP endpoint, protected     http://127.0.0.1:${env.DEMO_WARDEN_PORT}/mcp`);
      const { stdout } = await promisify(execFile)(process.execPath, ['demo/client.ts'], { cwd: root, env, timeout: 15_000 });
      expect(stdout).toContain('authorized: sub=demo-user');
      expect(stdout).toContain('tools: echo, countdown, read_file, delete_file, broadcast, slow');
      expect(stdout).toContain('progress 3/3');
      expect(stdout).toContain('countdown -> [{"type":"text","text":"done"}]');
    } finally {
      const exited = once(demo, 'exit');
      demo.kill('SIGTERM');
      const [code] = (await exited) as [number | null];
      expect(code).toBe(0);
    }
  });
});
