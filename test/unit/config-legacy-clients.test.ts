import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.ts';
import { problemsOf } from '../helpers/config-problems.ts';

const BASE = `
resource: { url: https://mcp.example.com/mcp }
upstream: { url: http://127.0.0.1:3000 }
`;
const ONE_ISSUER = `${BASE}authorization_servers: [{ issuer: https://idp.example.com }]\n`;
const BROKER = `${BASE}broker:
  identity_provider: { issuer: https://login.example.com/tenant/v2.0, client_id: mcp-warden, client_secret: "\${env:IDP_SECRET}" }
`;

describe('config: legacy_clients', () => {
  it('is off by default', () => {
    expect(parseConfigText(ONE_ISSUER).legacy_clients).toBe(false);
  });

  it('is accepted with exactly one authorization server', () => {
    expect(parseConfigText(`${ONE_ISSUER}legacy_clients: true\n`).legacy_clients).toBe(true);
  });

  it('refuses two authorization servers: the origin can stand for one issuer only', () => {
    const text = `${BASE}authorization_servers: [{ issuer: https://idp.example.com }, { issuer: https://other.example.com }]\nlegacy_clients: true\n`;
    expect(problemsOf(text)).toEqual([{ path: 'legacy_clients', message: expect.stringContaining('exactly one authorization server (found 2)') }]);
  });

  it('refuses zero authorization servers, besides the missing issuer itself', () => {
    expect(problemsOf(`${BASE}legacy_clients: true\n`)).toEqual([
      { path: 'authorization_servers', message: 'at least one authorization server is required, unless broker is configured' },
      { path: 'legacy_clients', message: expect.stringContaining('exactly one authorization server (found 0)') },
    ]);
  });

  it('refuses broker mode, whose broker already serves its metadata at the origin', () => {
    expect(problemsOf(`${BROKER}legacy_clients: true\n`)).toEqual([{ path: 'legacy_clients', message: expect.stringMatching(/^not with broker: .*remove legacy_clients$/) }]);
    expect(problemsOf(`${BROKER}authorization_servers: [{ issuer: https://idp.example.com }]\nlegacy_clients: true\n`)).toEqual([
      { path: 'legacy_clients', message: expect.stringMatching(/^not with broker/) },
    ]);
  });

  it.each(['/token', '/authorize', '/register', '/.well-known/oauth-authorization-server'])('refuses a resource served at %s, a path it would take over', (path) => {
    const text = ONE_ISSUER.replace('https://mcp.example.com/mcp', `https://mcp.example.com${path}`);
    expect(problemsOf(`${text}legacy_clients: true\n`)).toEqual([{ path: 'legacy_clients', message: expect.stringContaining(`path ${path} is one of the paths`) }]);
  });

  it('takes only a boolean', () => {
    expect(problemsOf(`${ONE_ISSUER}legacy_clients: yes-please\n`)).toEqual([{ path: 'legacy_clients', message: expect.stringContaining('boolean') }]);
  });

  it('stops the command line with exit 2 and the YAML path before it listens', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warden-legacy-'));
    const path = join(dir, 'two-issuers.yaml');
    writeFileSync(path, `${BASE}authorization_servers: [{ issuer: https://idp.example.com }, { issuer: https://other.example.com }]\nlegacy_clients: true\n`);
    const child = spawn(process.execPath, [new URL('../../src/cli.ts', import.meta.url).pathname, '--config', path], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.stdout.on('data', (chunk) => (stdout += chunk));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(2);
    expect(stderr).toContain('legacy_clients: needs exactly one authorization server (found 2)');
    expect(stdout).not.toContain('listening');
  });
});
