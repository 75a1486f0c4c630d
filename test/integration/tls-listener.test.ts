import { execFileSync, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { Agent, createServer as createHttpsServer, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { connect as connectTcp } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { connect as connectTls } from 'node:tls';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.ts';
import { validateConfig } from '../../src/config/load.ts';
import { readTlsPair, watchTlsFiles } from '../../src/lifecycle/tls-listener.ts';
import { startWarden } from '../../src/server.ts';
import { problemsOf } from '../helpers/config-problems.ts';
import { freePort, INITIALIZE, MCP_HEADERS, startStack, waitFor, type Stack } from '../helpers/stack.ts';
import { makeTestCertificates, type TestCertificates } from '../helpers/test-ca.ts';

// The listener re-reads its files every two seconds; a reload is awaited for at most this long.
const RELOAD_WAIT_MS = 8_000;
const REQUEST_TIMEOUT_MS = 5_000;
const CLI = new URL('../../src/cli.ts', import.meta.url).pathname;

interface Pair {
  readonly cert: string;
  readonly key: string;
}

/** Where the warden reads its certificate and key from: files a test rewrites, as cert-manager would. */
interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  write(pair: Pair): void;
}

let certs: TestCertificates;
let dir: string;
let files: TlsFiles;

beforeEach(() => {
  certs = makeTestCertificates();
  dir = mkdtempSync(join(tmpdir(), 'warden-tls-'));
  files = {
    certFile: join(dir, 'tls.crt'),
    keyFile: join(dir, 'tls.key'),
    write(pair) {
      // Both in the same turn: the warden never reads one new file beside the other's old content.
      writeFileSync(this.keyFile, pair.key);
      writeFileSync(this.certFile, pair.cert);
    },
  };
  files.write(certs);
});

afterEach(() => {
  certs?.remove();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * Another server certificate for 127.0.0.1 from the same test CA (its key sits beside ca.pem), with a
 * new key pair and so a new serial and fingerprint.
 */
function issueAnother(ca: TestCertificates): Pair {
  const caDir = dirname(ca.caFile);
  const at = (name: string) => join(caDir, name);
  if (!existsSync(at('ca.key'))) throw new Error('the test CA key is not beside ca.pem');
  const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', at('next.key'), '-out', at('next.csr'), '-subj', '/CN=127.0.0.1']);
  writeFileSync(at('next.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(['x509', '-req', '-in', at('next.csr'), '-CA', ca.caFile, '-CAkey', at('ca.key'), '-CAcreateserial', '-out', at('next.pem'), '-days', '1', '-extfile', at('next.ext')]);
  return { cert: readFileSync(at('next.pem'), 'utf8'), key: readFileSync(at('next.key'), 'utf8') };
}

const fingerprintOf = (pem: string) => new X509Certificate(pem).fingerprint256;

/** A stack whose main port serves HTTPS from `files`, with an https resource URL. */
function startTlsStack(): Promise<Stack> {
  return startStack((base) => {
    const listen = base.listen as Record<string, unknown>;
    const resource = base.resource as Record<string, unknown>;
    return {
      ...base,
      listen: { ...listen, tls: { cert_file: files.certFile, key_file: files.keyFile } },
      resource: { ...resource, url: String(resource.url).replace(/^http:/, 'https:') },
      // A kept-alive connection must outlive a reload or two.
      limits: { idle_timeout: '60s' },
    };
  });
}

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
  readonly reusedSocket: boolean;
  readonly fingerprint: string;
}

/** One HTTPS request trusting only the test CA (or nothing extra when `ca` is undefined). */
function httpsRequest(url: string, options: { ca?: string; agent?: Agent; method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers, ca: options.ca, agent: options.agent ?? false, timeout: REQUEST_TIMEOUT_MS }, (res) => {
      const fingerprint = (res.socket as import('node:tls').TLSSocket).getPeerCertificate().fingerprint256;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, reusedSocket: req.reusedSocket, fingerprint }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within ${REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** The certificate a new TLS connection to the warden is shown. */
async function servedFingerprint(url: string, ca: string): Promise<string> {
  const { port } = new URL(url);
  const socket = connectTls({ host: '127.0.0.1', port: Number(port), ca: readFileSync(ca, 'utf8'), timeout: REQUEST_TIMEOUT_MS });
  try {
    await Promise.race([once(socket, 'secureConnect'), once(socket, 'timeout').then(() => Promise.reject(new Error('TLS handshake timed out')))]);
    return socket.getPeerCertificate().fingerprint256;
  } finally {
    socket.destroy();
  }
}

const logged = (stack: Stack, msg: string) => stack.logs.filter((line) => line.msg === msg);

/** No certificate body and no key material in any log line. */
function expectNoPemLogged(stack: Stack, pairs: readonly Pair[]): void {
  const text = JSON.stringify(stack.logs);
  expect(text).not.toContain('PRIVATE KEY');
  expect(text).not.toContain('BEGIN CERTIFICATE');
  for (const pair of pairs) expect(text).not.toContain(pair.key.split('\n')[1]);
}

describe('listen.tls: the main port serves HTTPS', () => {
  let stack: Stack | undefined;
  afterEach(async () => {
    await stack?.close();
    stack = undefined;
  });

  it('a client trusting the test CA gets the 401 challenge and the metadata over https, with https URLs', async () => {
    stack = await startTlsStack();
    const ca = readFileSync(certs.caFile, 'utf8');
    expect(stack.warden.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const mcpUrl = `${stack.warden.url}/mcp`;

    const challenge = await httpsRequest(mcpUrl, { ca, method: 'POST', headers: MCP_HEADERS, body: INITIALIZE });
    expect(challenge.status).toBe(401);
    expect(challenge.fingerprint).toBe(fingerprintOf(certs.cert));
    const metadataUrl = `${stack.warden.url}/.well-known/oauth-protected-resource/mcp`;
    expect(challenge.headers['www-authenticate']).toContain(`resource_metadata="${metadataUrl}"`);

    const metadata = await httpsRequest(metadataUrl, { ca });
    expect(metadata.status).toBe(200);
    expect(JSON.parse(metadata.body)).toMatchObject({ resource: mcpUrl });
    expect(await servedFingerprint(stack.warden.url, certs.caFile)).toBe(fingerprintOf(certs.cert));
    expectNoPemLogged(stack, [certs]);
  });

  it('a client that does not trust the CA is refused, plain HTTP gets no answer, and the admin port stays plain HTTP', async () => {
    stack = await startTlsStack();
    await expect(httpsRequest(`${stack.warden.url}/mcp`)).rejects.toThrow(/certificate/i);
    await expect(fetch(`${stack.warden.url.replace(/^https:/, 'http:')}/.well-known/oauth-protected-resource/mcp`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })).rejects.toThrow();
    expect(stack.warden.adminUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await fetch(`${stack.warden.adminUrl}/healthz`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })).status).toBe(200);
  });

  it('a rotated certificate is shown to new connections without a restart, and a connection opened before keeps working', async () => {
    stack = await startTlsStack();
    const ca = readFileSync(certs.caFile, 'utf8');
    const metadataUrl = `${stack.warden.url}/.well-known/oauth-protected-resource/mcp`;
    const kept = new Agent({ keepAlive: true, maxSockets: 1, ca });
    try {
      const before = await httpsRequest(metadataUrl, { agent: kept });
      expect(before).toMatchObject({ status: 200, reusedSocket: false, fingerprint: fingerprintOf(certs.cert) });

      const next = issueAnother(certs);
      expect(new X509Certificate(next.cert).serialNumber).not.toBe(new X509Certificate(certs.cert).serialNumber);
      files.write(next);
      await waitFor(() => logged(stack!, 'TLS certificate reloaded').length > 0, 'the certificate reload', RELOAD_WAIT_MS);

      expect(await servedFingerprint(stack.warden.url, certs.caFile)).toBe(fingerprintOf(next.cert));
      const fresh = await httpsRequest(`${stack.warden.url}/mcp`, { ca, method: 'POST', headers: MCP_HEADERS, body: INITIALIZE });
      expect(fresh).toMatchObject({ status: 401, fingerprint: fingerprintOf(next.cert) });

      const after = await httpsRequest(metadataUrl, { agent: kept });
      expect(after).toMatchObject({ status: 200, reusedSocket: true, fingerprint: fingerprintOf(certs.cert) });

      const [reload] = logged(stack, 'TLS certificate reloaded');
      expect(reload).toMatchObject({ level: 30, serial: new X509Certificate(next.cert).serialNumber, fingerprint: fingerprintOf(next.cert) });
      expectNoPemLogged(stack, [certs, next]);
    } finally {
      kept.destroy();
    }
  });

  it('a broken replacement is logged as a warning and the previous certificate is kept; a good one later is taken', async () => {
    stack = await startTlsStack();
    const next = issueAnother(certs);
    // A new key beside the old certificate: they do not match.
    files.write({ cert: certs.cert, key: next.key });
    await waitFor(() => logged(stack!, 'TLS certificate not reloaded, keeping the previous one').length > 0, 'the mismatch warning', RELOAD_WAIT_MS);
    const [warning] = logged(stack, 'TLS certificate not reloaded, keeping the previous one');
    expect(warning).toMatchObject({ level: 40, problems: [{ path: 'listen.tls.key_file' }] });
    expect(await servedFingerprint(stack.warden.url, certs.caFile)).toBe(fingerprintOf(certs.cert));

    // An unreadable certificate file: still the old certificate.
    rmSync(files.certFile);
    await waitFor(() => logged(stack!, 'TLS certificate not reloaded, keeping the previous one').length > 1, 'the unreadable file warning', RELOAD_WAIT_MS);
    expect(logged(stack, 'TLS certificate not reloaded, keeping the previous one')[1]).toMatchObject({ level: 40, problems: [{ path: 'listen.tls.cert_file' }] });
    expect(await servedFingerprint(stack.warden.url, certs.caFile)).toBe(fingerprintOf(certs.cert));
    // The same broken state is warned about once, not every poll.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect(logged(stack, 'TLS certificate not reloaded, keeping the previous one')).toHaveLength(2);

    files.write(next);
    await waitFor(() => logged(stack!, 'TLS certificate reloaded').length > 0, 'the certificate reload', RELOAD_WAIT_MS);
    expect(await servedFingerprint(stack.warden.url, certs.caFile)).toBe(fingerprintOf(next.cert));
    expectNoPemLogged(stack, [certs, next]);
  }, 40_000);
});

describe('listen.tls: a pair that cannot be used stops the start', () => {
  const configWith = (tls: Record<string, string>, port: number) =>
    validateConfig({
      listen: { host: '127.0.0.1', port, tls },
      admin: { host: '127.0.0.1', port: 0 },
      resource: { url: `https://127.0.0.1:${port}/mcp` },
      authorization_servers: [{ issuer: 'http://127.0.0.1:2' }],
      upstream: { url: 'http://127.0.0.1:3' },
    });

  /** The problems startWarden refuses the config with; the port must not have been opened. */
  async function startProblems(tls: Record<string, string>): Promise<Array<{ path: string; message: string }>> {
    const port = await freePort();
    const error = await startWarden(configWith(tls, port), { logger: pino({ level: 'silent' }) }).then(
      async (warden) => {
        await warden.shutdown();
        throw new Error('the warden started');
      },
      (reason: unknown) => reason,
    );
    expect(error).toBeInstanceOf(ConfigError);
    const refused = connectTcp({ host: '127.0.0.1', port });
    const [connectError] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
    expect(connectError.code).toBe('ECONNREFUSED');
    return [...(error as ConfigError).problems];
  }

  it('a missing key file is a config error naming listen.tls.key_file', async () => {
    const problems = await startProblems({ cert_file: files.certFile, key_file: join(dir, 'absent.key') });
    expect(problems).toEqual([{ path: 'listen.tls.key_file', message: expect.stringContaining('ENOENT') }]);
  });

  it('a key that does not match the certificate is a config error naming listen.tls.key_file', async () => {
    const other = issueAnother(certs);
    writeFileSync(files.keyFile, other.key);
    const problems = await startProblems({ cert_file: files.certFile, key_file: files.keyFile });
    expect(problems).toEqual([{ path: 'listen.tls.key_file', message: expect.stringMatching(/does not match/) }]);
    expect(JSON.stringify(problems)).not.toContain('PRIVATE KEY');
  });

  it('a file that is not a PEM certificate is a config error naming listen.tls.cert_file', async () => {
    writeFileSync(files.certFile, 'not a certificate\n');
    const problems = await startProblems({ cert_file: files.certFile, key_file: files.keyFile });
    expect(problems).toEqual([{ path: 'listen.tls.cert_file', message: expect.stringMatching(/certificate/) }]);
  });

  it('cert_file and key_file are required together', () => {
    const base = 'resource: { url: "https://mcp.example.com/mcp" }\nauthorization_servers: [{ issuer: "https://idp.example.com" }]\nupstream: { url: "http://127.0.0.1:3000" }\n';
    expect(problemsOf(`listen: { tls: { cert_file: /tls/tls.crt } }\n${base}`)).toEqual([{ path: 'listen.tls.key_file', message: expect.stringContaining('required') }]);
    expect(problemsOf(`listen: { tls: { key_file: /tls/tls.key } }\n${base}`)).toEqual([{ path: 'listen.tls.cert_file', message: expect.stringContaining('required') }]);
    expect(problemsOf(`listen: { tls: { cert_file: /tls/tls.crt, key_file: /tls/tls.key, ca_file: /tls/ca.crt } }\n${base}`)).toEqual([{ path: 'listen.tls.ca_file', message: 'unknown key' }]);
  });

  it('the command line prints the problem with its YAML path and exits 2 before listening', async () => {
    const port = await freePort();
    const configFile = join(dir, 'warden.yaml');
    writeFileSync(
      configFile,
      `listen: { host: 127.0.0.1, port: ${port}, tls: { cert_file: ${files.certFile}, key_file: ${join(dir, 'absent.key')} } }
admin: { host: 127.0.0.1, port: 0 }
resource: { url: "https://127.0.0.1:${port}/mcp" }
authorization_servers: [{ issuer: "http://127.0.0.1:2" }]
upstream: { url: "http://127.0.0.1:3" }
`,
    );
    const child = spawn(process.execPath, [CLI, '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 15_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(2);
    expect(stderr).toContain('listen.tls.key_file: cannot read');
    expect(stdout).not.toContain('listening');
  });
});

describe('listen.tls: a cert-manager Secret volume', () => {
  it('follows an atomic ..data symlink swap of both files, as the kubelet updates a mounted Secret', async () => {
    // tls.crt and tls.key point through ..data at a timestamped directory; an update renames a new ..data over the old one.
    const volume = join(dir, 'volume');
    mkdirSync(volume);
    let generation = 0;
    const publish = (pair: Pair) => {
      generation += 1;
      const current = join(volume, `..gen_${generation}`);
      mkdirSync(current);
      writeFileSync(join(current, 'tls.crt'), pair.cert);
      writeFileSync(join(current, 'tls.key'), pair.key);
      symlinkSync(`..gen_${generation}`, join(volume, '..data_tmp'));
      renameSync(join(volume, '..data_tmp'), join(volume, '..data'));
    };
    publish(certs);
    symlinkSync(join('..data', 'tls.crt'), join(volume, 'tls.crt'));
    symlinkSync(join('..data', 'tls.key'), join(volume, 'tls.key'));
    const tlsFiles = { cert_file: join(volume, 'tls.crt'), key_file: join(volume, 'tls.key') };

    const first = readTlsPair(tlsFiles);
    if (!first.ok) throw new Error(JSON.stringify(first.problems));
    const server = createHttpsServer({ cert: first.pair.cert, key: first.pair.key }, (_req, res) => res.end('ok'));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const lines: Array<Record<string, unknown>> = [];
    const watcher = watchTlsFiles(server, tlsFiles, first.pair, pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) }), 50);
    try {
      expect(await servedFingerprint(url, certs.caFile)).toBe(fingerprintOf(certs.cert));
      const next = issueAnother(certs);
      publish(next);
      await waitFor(() => lines.some((line) => line.msg === 'TLS certificate reloaded'), 'the certificate reload', RELOAD_WAIT_MS);
      expect(await servedFingerprint(url, certs.caFile)).toBe(fingerprintOf(next.cert));
      expect(lines.filter((line) => line.level !== 30)).toEqual([]);
    } finally {
      watcher.close();
      server.close();
      server.closeAllConnections();
    }
  });
});
