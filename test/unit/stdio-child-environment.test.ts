import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Principal } from '../../src/auth/principal.ts';
import { parseConfigText } from '../../src/config/load.ts';
import { ChildEnvironments } from '../../src/upstream/stdio/child-environment.ts';

const principal = (claims: Record<string, unknown>): Principal => ({ issuer: 'https://idp.example.com', subject: 'u1', clientId: 'c1', scopes: new Set(), expiresAt: undefined, claims });

function environments(upstream: string): ChildEnvironments {
  const config = parseConfigText(`
resource: { url: https://mcp.example.com/mcp }
authorization_servers: [{ issuer: https://idp.example.com }]
upstream: ${upstream}
`);
  return new ChildEnvironments(config.upstream.stdio!, config.upstream.credential);
}

const opened: ChildEnvironments[] = [];
afterEach(() => opened.splice(0).forEach((environment) => environment.close()));
const open = (upstream: string) => {
  const environment = environments(upstream);
  opened.push(environment);
  return environment;
};

describe('a stdio child environment', () => {
  it('is exactly the configured variables, the credential, the claims and the allowlisted names, nothing inherited besides', () => {
    process.env.WARDEN_TEST_STDIO_KEY = 'stdio-key-value';
    process.env.WARDEN_TEST_NOT_PASSED = 'secret-of-the-proxy';
    const environment = open(`{ command: [server], env: { LOG_LEVEL: debug }, env_passthrough: [PATH, WARDEN_UNSET_NAME], credential: { type: env, name: API_KEY, value: "\${env:WARDEN_TEST_STDIO_KEY}" }, identity_env: { MCP_SUBJECT: sub, MCP_EMAIL: email } }`);
    const built = environment.for(principal({ sub: 'alice', email: 'alice@example.com' }));
    expect(built).toEqual({ ok: true, env: { PATH: process.env.PATH, LOG_LEVEL: 'debug', MCP_SUBJECT: 'alice', MCP_EMAIL: 'alice@example.com', API_KEY: 'stdio-key-value' } });
  });

  it('passes PATH, HOME, LANG and TZ by default, and never SHELL, USER or TERM', () => {
    const saved = { SHELL: process.env.SHELL, USER: process.env.USER, TERM: process.env.TERM, LANG: process.env.LANG };
    Object.assign(process.env, { SHELL: '/bin/bash', USER: 'root', TERM: 'xterm', LANG: 'C.UTF-8' });
    try {
      const built = open('{ command: [server] }').for(principal({}));
      expect(built.ok && Object.keys(built.env).sort()).toEqual(['HOME', 'LANG', 'PATH', ...(process.env.TZ ? ['TZ'] : [])].filter((name) => process.env[name] !== undefined).sort());
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });

  it('leaves an absent claim out, and refuses one that is not a printable string', () => {
    const environment = open('{ command: [server], identity_env: { MCP_SUBJECT: sub, MCP_GROUPS: groups } }');
    expect(environment.for(principal({ sub: 'bob' }))).toEqual({ ok: true, env: expect.objectContaining({ MCP_SUBJECT: 'bob' }) });
    for (const bad of ['bob\nLD_PRELOAD=/tmp/x.so', 'a\u0000b', 'x\u202ey', 'x\u2028y', '', 'z'.repeat(1025), 42, ['a'], { a: 1 }, true]) {
      expect(environment.for(principal({ sub: bad }))).toMatchObject({ ok: false, kind: 'claim' });
    }
  });

  it('reads a file secret at each spawn, so a rotated one reaches the next child', () => {
    const dir = mkdtempSync(join(tmpdir(), 'stdio-env-'));
    const file = join(dir, 'token');
    writeFileSync(file, 'first-value\n');
    const environment = open(`{ command: [server], env: { TOKEN: "\${file:${file}}" } }`);
    expect(environment.for(principal({}))).toMatchObject({ ok: true, env: { TOKEN: 'first-value' } });
    expect(environment.missing()).toEqual([]);
  });

  it('says which secret it cannot read, by its config path', () => {
    delete process.env.WARDEN_TEST_STDIO_UNSET;
    const environment = open(`{ command: [server], env: { TOKEN: "\${env:WARDEN_TEST_STDIO_UNSET}" }, credential: { type: env, name: K, value: "\${env:WARDEN_TEST_STDIO_UNSET}" } }`);
    expect(environment.missing().map((problem) => problem.path)).toEqual(['upstream.env.TOKEN', 'upstream.credential.value']);
    expect(environment.for(principal({}))).toMatchObject({ ok: false, kind: 'secret' });
  });
});
