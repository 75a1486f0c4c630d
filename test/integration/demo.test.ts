import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { freePort } from '../helpers/stack.ts';

const root = new URL('../../', import.meta.url).pathname;

describe('the quick-start demo', () => {
  it.each([
    ['', []],
    [' in broker mode', ['--broker']],
  ] as const)('starts%s, lets `npm run demo:client` through the OAuth flow to a tool, and stops on SIGTERM', async (_mode, args) => {
    const env = {
      ...process.env,
      DEMO_WARDEN_PORT: String(await freePort()),
      DEMO_ADMIN_PORT: String(await freePort()),
      DEMO_AS_PORT: String(await freePort()),
      DEMO_IDP_PORT: String(await freePort()),
      DEMO_MCP_PORT: String(await freePort()),
    };
    const demo = spawn(process.execPath, ['demo/run.ts', ...args], { cwd: root, env, stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      const banner = await bannerOf(demo);
      expect(banner).toContain(`MCP endpoint, protected     http://127.0.0.1:${env.DEMO_WARDEN_PORT}/mcp`);
      // The broker demo's identity provider has a port of its own, never the plain demo's authorization server's.
      if (args.length > 0) expect(banner).toContain(`Identity provider           http://127.0.0.1:${env.DEMO_IDP_PORT}`);
      else expect(banner).toContain(`Authorization server        http://127.0.0.1:${env.DEMO_AS_PORT}`);
      const { stdout } = await promisify(execFile)(process.execPath, ['demo/client.ts'], { cwd: root, env, timeout: 15_000 });
      expect(stdout).toContain('authorized: sub=demo-user');
      expect(stdout).toContain('tools: echo, countdown, read_file, delete_file, broadcast, slow');
      expect(stdout).toContain('progress 3/3');
      expect(stdout).toContain('countdown -> [{"type":"text","text":"done"}]');
    } finally {
      await stopped(demo);
    }
  });

  it('starts in front of server-everything over stdio (--stdio), lets `npm run demo:client` through to its tools, and leaves no child on SIGTERM', async () => {
    const env = { ...process.env, DEMO_WARDEN_PORT: String(await freePort()), DEMO_ADMIN_PORT: String(await freePort()), DEMO_AS_PORT: String(await freePort()) };
    const demo = spawn(process.execPath, ['demo/run.ts', '--stdio'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let logs = '';
    demo.stdout!.on('data', (chunk) => (logs += chunk));
    try {
      const banner = await bannerOf(demo);
      expect(banner).toContain('server-everything/dist/index.js stdio   (over stdio, one process per MCP session)');
      const { stdout } = await promisify(execFile)(process.execPath, ['demo/client.ts'], { cwd: root, env, timeout: 15_000 });
      expect(stdout).toContain('authorized: sub=demo-user');
      expect(stdout).toMatch(/tools: .*echo.*trigger-long-running-operation/);
      expect(stdout).toContain('echo -> [{"type":"text","text":"Echo: hello through mcp-warden"}]');
      expect(stdout).toContain('progress 3/3');
    } finally {
      await stopped(demo);
    }
    const lines = logs.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { msg: string; pid?: number });
    const pids = lines.filter((line) => line.msg === 'stdio server started').map((line) => line.pid!);
    expect(pids.length).toBeGreaterThan(0);
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
  });
});

/** Waits for the demo's banner on stderr; rejects if it exits first. */
function bannerOf(demo: ChildProcess): Promise<string> {
  let banner = '';
  return new Promise((resolve, reject) => {
    demo.once('exit', (code) => reject(new Error(`demo exited with ${code}: ${banner}`)));
    demo.stderr!.on('data', (chunk) => {
      banner += chunk;
      if (banner.includes('JSON access logs follow')) resolve(banner);
    });
  });
}

/** SIGTERM, and the demo must exit 0. */
async function stopped(demo: ChildProcess): Promise<void> {
  const exited = once(demo, 'exit');
  demo.kill('SIGTERM');
  const [code] = (await exited) as [number | null];
  expect(code).toBe(0);
}

