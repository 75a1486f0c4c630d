import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.ts';
import { problemsOf } from '../helpers/config-problems.ts';

const head = `
resource: { url: https://mcp.example.com/mcp }
authorization_servers: [{ issuer: https://idp.example.com }]
`;


describe('stdio upstream config', () => {
  it('fills the process bounds and the environment allowlist for a command', () => {
    const config = parseConfigText(`${head}upstream: { command: [node, server.js, --stdio] }`);
    expect(config.upstream.url).toBeUndefined();
    expect(config.upstream.stdio).toEqual({
      command: ['node', 'server.js', '--stdio'],
      cwd: undefined,
      env: {},
      env_passthrough: ['PATH', 'HOME', 'LANG', 'TZ'],
      identity_env: {},
      max_processes: 64,
      max_processes_per_principal: 4,
      idle_timeout: 900_000,
      startup_timeout: 10_000,
      kill_grace: 5_000,
      max_message_bytes: 4 * 1024 * 1024,
    });
  });

  it('keeps env values literal unless a whole value is a secret reference, read at spawn', () => {
    const config = parseConfigText(`${head}upstream:
  command: [server]
  env: { LOG_LEVEL: info, TOKEN: "\${env:UPSTREAM_TOKEN}", KEY: "\${file:/run/key}" }
  credential: { type: env, name: API_KEY, value: "\${env:API_KEY}" }
  identity_env: { MCP_SUBJECT: sub }`);
    expect(config.upstream.stdio?.env).toEqual({
      LOG_LEVEL: { kind: 'literal', value: 'info' },
      TOKEN: { kind: 'secret', ref: { kind: 'env', name: 'UPSTREAM_TOKEN' } },
      KEY: { kind: 'secret', ref: { kind: 'file', path: '/run/key' } },
    });
    expect(config.upstream.credential).toEqual({ type: 'env', name: 'API_KEY', value: { kind: 'env', name: 'API_KEY' } });
  });

  it('wants exactly one of url and command', () => {
    expect(problemsOf(`${head}upstream: {}`)).toContainEqual({ path: 'upstream.url', message: expect.stringContaining('exactly one of url') });
    expect(problemsOf(`${head}upstream: { url: "http://127.0.0.1:3000", command: [server] }`)).toContainEqual({ path: 'upstream.url', message: expect.stringContaining('exactly one of url') });
  });

  it('refuses a shell string, an empty command and stdio keys beside a url, each by its path', () => {
    expect(problemsOf(`${head}upstream: { command: "node server.js" }`).map((problem) => problem.path)).toContain('upstream.command');
    expect(problemsOf(`${head}upstream: { command: [] }`).map((problem) => problem.path)).toContain('upstream.command');
    const problems = problemsOf(`${head}upstream: { url: "http://127.0.0.1:3000", env: { A: b }, max_processes: 3, idle_timeout: 1m }`);
    expect(problems).toEqual(
      expect.arrayContaining([
        { path: 'upstream.env', message: 'only for a stdio upstream (command), not with url' },
        { path: 'upstream.max_processes', message: 'only for a stdio upstream (command), not with url' },
        { path: 'upstream.idle_timeout', message: 'only for a stdio upstream (command), not with url' },
      ]),
    );
  });

  it('refuses header credentials and identity headers for a stdio upstream, and env credentials for an HTTP one', () => {
    expect(problemsOf(`${head}upstream: { command: [server], credential: { type: bearer, value: "\${env:X}" } }`)).toContainEqual({
      path: 'upstream.credential.type',
      message: 'a stdio upstream (command) takes its credential as environment: expected none, env or client_credentials, got bearer',
    });
    expect(problemsOf(`${head}upstream: { command: [server], identity_headers: { X-Sub: sub } }`)).toContainEqual({ path: 'upstream.identity_headers', message: 'a stdio upstream gets no headers: use identity_env' });
    expect(problemsOf(`${head}upstream: { url: "http://127.0.0.1:3000", credential: { type: env, name: K, value: "\${env:X}" } }`)).toContainEqual({
      path: 'upstream.credential.type',
      message: 'env is for a stdio upstream (command); an HTTP upstream takes header, bearer, client_credentials or token_exchange',
    });
  });

  it('refuses a variable named twice, a bad variable name, a plain secret for the credential and a bad duration', () => {
    expect(problemsOf(`${head}upstream: { command: [server], env: { API_KEY: x }, credential: { type: env, name: API_KEY, value: "\${env:X}" } }`)).toContainEqual({
      path: 'upstream.env.API_KEY',
      message: 'API_KEY is already set by upstream.credential.name',
    });
    expect(problemsOf(`${head}upstream: { command: [server], identity_env: { PATH: sub } }`)).toContainEqual({ path: 'upstream.env_passthrough', message: 'PATH is already set by upstream.identity_env.PATH' });
    expect(problemsOf(`${head}upstream: { command: [server], env: { "1BAD": x } }`).map((problem) => problem.path)).toContain('upstream.env.1BAD');
    expect(problemsOf(`${head}upstream: { command: [server], credential: { type: env, name: K, value: plain-secret } }`).map((problem) => problem.path)).toContain('upstream.credential.value');
    expect(problemsOf(`${head}upstream: { command: [server], kill_grace: soon }`)).toContainEqual({ path: 'upstream.kill_grace', message: 'expected a duration such as 250ms, 30s, 5m or 1h, got "soon"' });
  });
});
