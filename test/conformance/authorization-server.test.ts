// The official MCP conformance suite's authorization server scenarios (0.2.0-alpha.12) against the
// broker: its RFC 8414 metadata, then a whole authorization code grant with PKCE and a resource.
//
// The suite's code grant prints an authorization URL for a person to open and waits for the browser
// to reach its callback server. A scripted browser plays that person here: it reads the URL from the
// suite's output, approves the broker's consent page, logs in at the identity provider and delivers
// the final redirect to the suite's callback. Everything stays on 127.0.0.1.
//
// The suite authenticates at the token endpoint with `none` whenever the metadata lists it, which the
// broker's does, so it never sends a confidential client's secret: only a public client can pass.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerConsent, walkAuthorizationRedirects } from '../../demo/oauth-client.ts';
import { startBrokerStack, type BrokerStack } from '../helpers/broker-stack.ts';
import { freePort } from '../helpers/stack.ts';
import { root } from './suite-runner.ts';

const BIN = join(root, 'node_modules/conformance-0.2/dist/index.js');
const PUBLIC_CLIENT = 'conformance-public';
const CONFIDENTIAL_CLIENT = 'conformance-confidential';
const SECRET_ENV = 'WARDEN_TEST_CONFORMANCE_CLIENT_SECRET';
/** The suite waits five minutes for its callback; a run that takes longer than this has gone wrong. */
const RUN_TIMEOUT_MS = 20_000;
/** Each request of the scripted browser, and its delivery of the callback. */
const HOP_TIMEOUT_MS = 5_000;

interface Check {
  readonly scenario: string;
  readonly id: string;
  readonly status: string;
  readonly errorMessage?: string;
}

describe('conformance 0.2.0-alpha.12 authorization server scenarios against the broker', () => {
  let stack: BrokerStack;
  let callbackPort: number;

  beforeAll(async () => {
    callbackPort = await freePort();
    process.env[SECRET_ENV] = randomBytes(24).toString('base64url');
    stack = await startBrokerStack({
      clients: [
        { client_id: PUBLIC_CLIENT, redirect_uris: [callbackUrl()] },
        { client_id: CONFIDENTIAL_CLIENT, redirect_uris: [callbackUrl()], client_secret: `\${env:${SECRET_ENV}}` },
      ],
    });
  });
  afterAll(async () => {
    await stack?.close();
    delete process.env[SECRET_ENV];
  });

  const callbackUrl = () => `http://127.0.0.1:${callbackPort}/callback`;
  const clientArgs = (clientId: string) => ['--url', stack.issuer, '--client-id', clientId, '--resource', stack.mcpUrl, '--port', String(callbackPort)];

  it('passes every check of the metadata and authorization code grant scenarios for a pre-registered public client', { timeout: RUN_TIMEOUT_MS + 5_000 }, async () => {
    const checks = await runSuite(clientArgs(PUBLIC_CLIENT), (url) => completeAuthorization(url, callbackUrl()));
    console.log(checks.map((check) => `  ${check.scenario}/${check.id}: ${check.status}${check.errorMessage ? ` (${check.errorMessage})` : ''}`).join('\n'));
    expect(checks.map((check) => `${check.scenario}/${check.id}`).sort()).toEqual([
      'authorization-code-grant/authorization-code-grant',
      'authorization-server-metadata-endpoint/authorization-server-metadata',
      'authorization-server-metadata-endpoint/authorization-server-metadata-cimd',
    ]);
    expect(checks.filter((check) => check.status !== 'SUCCESS')).toEqual([]);
  });

  it("answers 401 when the suite redeems a confidential client's code without its secret, as it does whenever the metadata lists none", { timeout: RUN_TIMEOUT_MS + 5_000 }, async () => {
    const checks = await runSuite([...clientArgs(CONFIDENTIAL_CLIENT), '--client-secret', process.env[SECRET_ENV]!], (url) => completeAuthorization(url, callbackUrl()));
    expect(checks.find((check) => check.id === 'authorization-code-grant')).toMatchObject({ status: 'FAILURE', errorMessage: 'Invalid status code: 401' });
    expect(checks.filter((check) => check.scenario === 'authorization-server-metadata-endpoint' && check.status !== 'SUCCESS')).toEqual([]);
  });

  /**
   * Runs every authorization server scenario in one process: the code grant reads the endpoints from
   * the metadata scenario's result, which the suite passes on only within a run. `authorize` gets the
   * authorization URL the suite prints.
   */
  async function runSuite(args: readonly string[], authorize: (url: URL) => Promise<void>): Promise<Check[]> {
    const out = mkdtempSync(join(tmpdir(), 'conformance-as-'));
    const child = spawn(process.execPath, [BIN, 'authorization', '-o', out, ...args], { cwd: out, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = once(child, 'exit');
    const killer = setTimeout(() => child.kill(), RUN_TIMEOUT_MS);
    let output = '';
    child.stderr.on('data', (chunk: Buffer) => (output += chunk));
    try {
      const url = await authorizationUrlIn(child.stdout, (chunk) => (output += chunk));
      await authorize(url);
      await exited;
      if (child.signalCode) throw new Error(`the suite did not finish within ${RUN_TIMEOUT_MS} ms:\n${output}`);
      return checksIn(out);
    } catch (error) {
      child.kill();
      throw new Error(`${(error as Error).message}\nsuite output:\n${output}`, { cause: error });
    } finally {
      clearTimeout(killer);
      rmSync(out, { recursive: true, force: true });
    }
  }

  /** The line the suite asks a person to open in a browser: it starts with the broker's authorization endpoint. */
  function authorizationUrlIn(stdout: NodeJS.ReadableStream, record: (chunk: string) => void): Promise<URL> {
    const prefix = `${stack.issuer}/oauth/authorize?`;
    return new Promise((resolve, reject) => {
      let text = '';
      stdout.on('data', (chunk: Buffer) => {
        record(chunk.toString());
        text += chunk;
        const line = text.split('\n').find((candidate) => candidate.startsWith(prefix));
        if (line !== undefined) resolve(new URL(line.trim()));
      });
      stdout.on('end', () => reject(new Error('the suite printed no authorization URL')));
    });
  }
});

/** The user approves the broker's consent page and logs in; the browser then lands on the suite's callback. */
async function completeAuthorization(authorizationUrl: URL, redirectUri: string): Promise<void> {
  const redirect = await walkAuthorizationRedirects(authorizationUrl, redirectUri, { cookies: new Map(), onPage: answerConsent('approve') }, HOP_TIMEOUT_MS);
  const delivered = await fetch(redirect, { signal: AbortSignal.timeout(HOP_TIMEOUT_MS) });
  await delivered.body?.cancel();
  if (!delivered.ok) throw new Error(`the suite's callback answered ${delivered.status}`);
}

/** Every check the suite saved under `out`, one folder per scenario named `authorization-server-<scenario>-<time>`. */
function checksIn(out: string): Check[] {
  return readdirSync(out)
    .sort()
    .flatMap((dir) => {
      const scenario = /^authorization-server-(.+?)-\d{4}-\d{2}-\d{2}T/.exec(dir)?.[1] ?? dir;
      const checks = JSON.parse(readFileSync(join(out, dir, 'checks.json'), 'utf8')) as Array<Omit<Check, 'scenario'>>;
      return checks.map(({ id, status, errorMessage }) => ({ scenario, id, status, ...(errorMessage ? { errorMessage } : {}) }));
    });
}
