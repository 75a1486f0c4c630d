// What the compatibility tests share: the outcome record they write to test/compat/results.json, the
// stacks they run each client against, and an OAuthClientProvider (the same shape in SDK 1.x and 2.x)
// whose user agent is the scripted browser.
import { once } from 'node:events';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { InMemoryOAuthProvider, REDIRECT_URI } from '../../demo/oauth-client.ts';
import { walkToCallback } from './compat-browser.ts';
import { startBrokerStack, type BrokerStack } from './broker-stack.ts';
import { startStack, type Stack } from './stack.ts';
import { makeTestCertificates } from './test-ca.ts';

export const RESULTS_FILE = new URL('../compat/results.json', import.meta.url);

/**
 * `oidc-provider`: oidc-provider is the authorization server (dynamic registration, resource indicators);
 * `broker`: mcp-warden's broker in front of an identity provider MCP clients cannot use;
 * `broker-cimd`: the broker again, the client identified by a client ID metadata document (https, on
 * 127.0.0.1, its certificate from a throwaway CA the broker is told to trust).
 */
export type CompatMode = 'oidc-provider' | 'broker' | 'broker-cimd';
export const MODES: readonly CompatMode[] = ['oidc-provider', 'broker', 'broker-cimd'];

/** How a client came to have a client_id at the authorization server. */
export type RegistrationKind = 'DCR' | 'CIMD' | 'pre-registered' | 'none';

/** One client in one mode: what worked, as the README table shows it. */
export interface CompatResult {
  readonly client: string;
  readonly version: string;
  readonly mode: CompatMode;
  /** From the 401 alone: RFC 9728 metadata fetched from mcp-warden, then the authorization server found. */
  readonly discovery: boolean;
  readonly registration: RegistrationKind;
  /** An authorization code with PKCE S256 and the RFC 8707 `resource`, redeemed for a token mcp-warden accepted. */
  readonly token: boolean;
  readonly toolsList: boolean;
  readonly toolsCall: boolean;
  readonly notes: string;
}

/** The stack a mode runs: where the MCP endpoint is, what mcp-warden logged, and how to stop it. */
export interface CompatStack {
  readonly mode: CompatMode;
  readonly mcpUrl: string;
  /** mcp-warden's log lines (one per request among them). */
  readonly logs: ReadonlyArray<Record<string, unknown>>;
  /** broker-cimd only: the CA file that the documents' certificate chains to. */
  readonly caFile: string | undefined;
  /**
   * broker-cimd only: serves a client ID metadata document for a public client with these redirect
   * URIs, and returns its URL (the client_id).
   */
  clientMetadataDocument(clientName: string, redirectUris: readonly string[]): string;
  close(): Promise<void>;
}

export async function startCompatStack(mode: CompatMode): Promise<CompatStack> {
  if (mode === 'oidc-provider') return wrap(mode, await startStack());
  if (mode === 'broker') return wrap(mode, await startBrokerStack());
  const certs = makeTestCertificates();
  const documents = new Map<string, string>();
  const server = createHttpsServer({ key: certs.key, cert: certs.cert }, (req, res) => {
    const body = documents.get(req.url ?? '');
    res.writeHead(body ? 200 : 404, { 'content-type': 'application/json', 'cache-control': 'max-age=300' });
    res.end(body ?? '{}');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const stack = await startBrokerStack({ client_metadata: { allow_private_addresses: true, extra_ca_file: certs.caFile } });
  return {
    ...wrap(mode, stack, certs.caFile),
    clientMetadataDocument(clientName, redirectUris) {
      const path = `/clients/${documents.size + 1}.json`;
      const clientId = `${origin}${path}`;
      documents.set(path, JSON.stringify({ client_id: clientId, client_name: clientName, redirect_uris: redirectUris, grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'none' }));
      return clientId;
    },
    async close() {
      await stack.close();
      server.closeAllConnections();
      server.close();
      certs.remove();
    },
  };
}

function wrap(mode: CompatMode, stack: Stack | BrokerStack, caFile?: string): CompatStack {
  return {
    mode,
    mcpUrl: stack.mcpUrl,
    logs: stack.logs,
    caFile,
    clientMetadataDocument() {
      throw new TypeError(`mode ${mode} serves no client ID metadata documents`);
    },
    close: () => stack.close(),
  };
}

/**
 * What mcp-warden saw of the flow: a 401 on the MCP endpoint, then its protected-resource metadata
 * fetched; (broker modes, where mcp-warden is the authorization server) how many registrations; and
 * the JSON-RPC methods it let through with a token issued to `clientId`.
 */
export function observedFlow(stack: CompatStack, clientId: string): { discovered: boolean; registrations: number; authorizedMethods: string[] } {
  const requests = stack.logs.filter((log) => typeof log.path === 'string');
  const mcpPath = new URL(stack.mcpUrl).pathname;
  const challenged = requests.findIndex((log) => log.path === mcpPath && log.status === 401);
  const metadata = requests.findIndex((log) => String(log.path).startsWith('/.well-known/oauth-protected-resource') && log.status === 200);
  return {
    discovered: challenged >= 0 && metadata > challenged,
    registrations: requests.filter((log) => log.path === '/oauth/register' && log.status === 201).length,
    authorizedMethods: requests.filter((log) => log.path === mcpPath && log.status === 200 && log.client_id === clientId && typeof log.rpc_method === 'string').map((log) => log.rpc_method as string),
  };
}

/**
 * What the authorization request shows: the registration kind (a URL client_id is a client ID metadata
 * document) and whether PKCE S256 and the resource were sent.
 */
export function inspectAuthorization(authorizationUrl: URL, mcpUrl: string): { clientId: string; registration: RegistrationKind; pkce: boolean; resource: boolean } {
  const clientId = authorizationUrl.searchParams.get('client_id') ?? '';
  return {
    clientId,
    registration: clientId === '' ? 'none' : /^https?:\/\//.test(clientId) ? 'CIMD' : 'DCR',
    pkce: authorizationUrl.searchParams.get('code_challenge_method') === 'S256' && (authorizationUrl.searchParams.get('code_challenge') ?? '').length >= 43,
    resource: authorizationUrl.searchParams.get('resource') === mcpUrl,
  };
}

/**
 * Merges `results` into the results file by client and mode, in the order of `order` (client names),
 * modes in MODES order; writes (atomically) only when something changed, so a run that finds what was
 * committed leaves the file alone.
 */
export function recordResults(results: readonly CompatResult[], order: readonly string[]): void {
  let previous: CompatResult[] = [];
  try {
    previous = (JSON.parse(readFileSync(RESULTS_FILE, 'utf8')) as { results: CompatResult[] }).results;
  } catch {
    // no file yet
  }
  const key = (result: CompatResult) => `${result.client}\u0000${result.mode}`;
  const merged = new Map(previous.map((result) => [key(result), result]));
  for (const result of results) merged.set(key(result), result);
  const rank = (result: CompatResult) => {
    const at = order.indexOf(result.client);
    return (at < 0 ? order.length : at) * MODES.length + MODES.indexOf(result.mode);
  };
  const sorted = [...merged.values()].sort((a, b) => rank(a) - rank(b));
  const text = `${JSON.stringify({ generatedBy: 'test/compat/clients.test.ts; rendered by scripts/compat-table.mjs', results: sorted }, null, 2)}\n`;
  let current = '';
  try {
    current = readFileSync(RESULTS_FILE, 'utf8');
  } catch {
    // no file yet
  }
  if (current === text) return;
  const temporary = new URL(`results.json.${process.pid}.tmp`, RESULTS_FILE);
  writeFileSync(temporary, text);
  renameSync(temporary, RESULTS_FILE);
}

/**
 * An in-memory OAuthClientProvider for the SDK clients (SDK 1.x and 2.x share the shape), registering
 * dynamically as a public client with a loopback redirect URI that is never served: the scripted browser
 * stops at it, and the test hands the callback to the transport's `finishAuth`.
 */
export class ScriptedOAuthProvider<ClientInformation, Tokens> extends InMemoryOAuthProvider<ClientInformation, Tokens> {
  static readonly REDIRECT_URI = REDIRECT_URI;
  #discovery: unknown;
  /** The authorization request the SDK started, and the callback the browser came back with. */
  authorizationUrl: URL | undefined;
  callback: Promise<URL> | undefined;

  constructor(clientName: string, clientMetadataUrl?: string) {
    super(clientName, { clientMetadataUrl });
  }

  redirectToAuthorization(authorizationUrl: URL): void {
    this.authorizationUrl = authorizationUrl;
    this.callback = walkToCallback(authorizationUrl);
    this.callback.catch(() => undefined);
  }

  /** SDK 2.x binds the callback leg to the authorization server it discovered (SEP-2352). */
  saveDiscoveryState(state: unknown): void {
    this.#discovery = state;
  }

  discoveryState<State>(): State | undefined {
    return this.#discovery as State | undefined;
  }
}
