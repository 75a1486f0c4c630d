// The official MCP SDK client doing the real OAuth flow, scripted: the "browser" is a redirect walker
// that carries cookies and stops at the redirect URI. Used by `npm run demo:client` and the tests.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { UnauthorizedError, type OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import type { ClientCapabilities } from '@modelcontextprotocol/sdk/types.js';

/** Never served: the walker stops when a redirect points here and reads the code from it. */
export const REDIRECT_URI = 'http://127.0.0.1:1/callback';
const MAX_HOPS = 20;

export interface OAuthConnection<T extends StreamableHTTPClientTransport | SSEClientTransport = StreamableHTTPClientTransport> {
  readonly client: Client;
  readonly transport: T;
  /** The token now in use (it changes after a step-up). */
  accessToken(): string;
  /** Everything the token endpoint last returned (refresh token included). */
  tokens(): OAuthTokens;
  /** What the client registered as. */
  clientInformation(): OAuthClientInformationMixed;
  /**
   * Completes a re-authorization the SDK started on its own: after a 403 insufficient_scope it asks for
   * the challenged scopes and throws UnauthorizedError; this hands it the new code.
   */
  reauthorize(): Promise<void>;
  close(): Promise<void>;
}

/** What an in-memory provider registers as: a public client with the never-served REDIRECT_URI. */
export interface ScriptedClientOptions {
  readonly scope?: string | undefined;
  /** Whether to register with the refresh_token grant (default true). */
  readonly refreshTokens?: boolean;
  /** A client ID metadata document URL: used as the client id where the server supports them (no registration). */
  readonly clientMetadataUrl?: string | undefined;
}

/**
 * The in-memory half of an OAuthClientProvider: the client metadata it registers with, and the client
 * information, tokens and PKCE verifier the SDK hands it to keep. Generic over the SDK's own types, so
 * SDK 1.x and 2.x clients share it; a subclass says what the user agent does (`redirectToAuthorization`).
 */
export class InMemoryOAuthProvider<ClientInformation = OAuthClientInformationMixed, Tokens = OAuthTokens> {
  #client: ClientInformation | undefined;
  #tokens: Tokens | undefined;
  #verifier = '';
  readonly #metadata: OAuthClientMetadata;

  readonly clientName: string;
  /** A client ID metadata document URL: used as the client id where the server supports them (no registration). */
  readonly clientMetadataUrl: string | undefined;

  constructor(clientName: string, { scope, refreshTokens = true, clientMetadataUrl }: ScriptedClientOptions = {}) {
    this.clientName = clientName;
    this.clientMetadataUrl = clientMetadataUrl;
    this.#metadata = {
      client_name: clientName,
      redirect_uris: [REDIRECT_URI],
      grant_types: refreshTokens ? ['authorization_code', 'refresh_token'] : ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      ...(scope ? { scope } : {}),
    };
  }

  get redirectUrl(): string {
    return REDIRECT_URI;
  }

  get clientMetadata(): OAuthClientMetadata {
    return this.#metadata;
  }

  clientInformation(): ClientInformation | undefined {
    return this.#client;
  }

  saveClientInformation(information: ClientInformation): void {
    this.#client = information;
  }

  tokens(): Tokens | undefined {
    return this.#tokens;
  }

  saveTokens(tokens: Tokens): void {
    this.#tokens = tokens;
  }

  saveCodeVerifier(verifier: string): void {
    this.#verifier = verifier;
  }

  codeVerifier(): string {
    return this.#verifier;
  }
}

/** An in-memory OAuthClientProvider whose user agent is `followAuthorizationRedirects`. */
class ScriptedProvider extends InMemoryOAuthProvider implements OAuthClientProvider {
  code: Promise<string> | undefined;
  browser: ScriptedBrowser = { cookies: new Map() };

  redirectToAuthorization(authorizationUrl: URL): void {
    this.code = followAuthorizationRedirects(authorizationUrl, REDIRECT_URI, this.browser);
  }
}

/** A step the scripted browser takes when a page (not a redirect) comes back, e.g. submitting a form. */
export type PageHandler = (page: { url: URL; status: number; html: string }) => { url: URL; form: URLSearchParams } | undefined;

/** What the scripted browser keeps between walks: cookies by name (one browser, one user). */
export interface ScriptedBrowser {
  readonly cookies: Map<string, string>;
  readonly onPage?: PageHandler;
}

/**
 * Walks an authorization request the way a browser would, keeping cookies by name, until a redirect
 * targets `redirectUri`, and returns that redirect (its `code` or `error`, `state`, `iss`). A page on
 * the way is handed to `browser.onPage`, which may submit a form (a scripted user at a consent page).
 * `hopTimeoutMs` bounds each request (none by default).
 */
export async function walkAuthorizationRedirects(authorizationUrl: URL, redirectUri: string, browser: ScriptedBrowser = { cookies: new Map() }, hopTimeoutMs?: number): Promise<URL> {
  const { cookies } = browser;
  let url = authorizationUrl;
  let form: URLSearchParams | undefined;
  for (let hop = 0; hop < MAX_HOPS; hop += 1) {
    const headers: Record<string, string> = cookies.size ? { cookie: [...cookies].map(([name, value]) => `${name}=${value}`).join('; ') } : {};
    if (form) Object.assign(headers, { 'content-type': 'application/x-www-form-urlencoded', origin: url.origin });
    const response = await fetch(url, { redirect: 'manual', method: form ? 'POST' : 'GET', headers, ...(hopTimeoutMs ? { signal: AbortSignal.timeout(hopTimeoutMs) } : {}), ...(form ? { body: form } : {}) });
    form = undefined;
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const at = pair!.indexOf('=');
      if (at <= 0) continue;
      const name = pair!.slice(0, at).trim();
      const value = pair!.slice(at + 1).trim();
      if (value === '' || /max-age=0/i.test(line)) cookies.delete(name);
      else cookies.set(name, value);
    }
    const location = response.headers.get('location');
    if (!location) {
      const html = await response.text();
      const next = browser.onPage?.({ url, status: response.status, html });
      if (!next) throw new Error(`authorization stopped at ${url.origin}${url.pathname} with status ${response.status}`);
      ({ url, form } = next);
      continue;
    }
    await response.body?.cancel();
    const next = new URL(location, url);
    if (next.href.startsWith(redirectUri)) return next;
    url = next;
  }
  throw new Error(`authorization did not reach ${redirectUri} within ${MAX_HOPS} redirects`);
}

/**
 * `walkAuthorizationRedirects`, for the code: returns the redirect's `code`, or throws with the `error`
 * it carries.
 */
export async function followAuthorizationRedirects(authorizationUrl: URL, redirectUri: string, browser: ScriptedBrowser = { cookies: new Map() }): Promise<string> {
  const redirect = await walkAuthorizationRedirects(authorizationUrl, redirectUri, browser);
  const code = redirect.searchParams.get('code');
  if (code) return code;
  throw new Error(`authorization refused: ${redirect.searchParams.get('error')} ${redirect.searchParams.get('error_description') ?? ''}`);
}

/**
 * A user who answers a consent form with `decision` (the broker's page): the form's own action and
 * hidden fields, as a browser would post them.
 */
export function answerConsent(decision: 'approve' | 'deny'): PageHandler {
  return ({ url, status, html }) => {
    const action = /<form method="post" action="([^"]+)">/.exec(html)?.[1];
    if (status !== 200 || !action) return undefined;
    const form = new URLSearchParams();
    for (const [, name, value] of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) form.set(name!, unescapeHtml(value!));
    form.set('decision', decision);
    return { url: new URL(unescapeHtml(action), url), form };
  };
}

function unescapeHtml(text: string): string {
  return text.replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code)));
}

/**
 * `refreshTokens: false` registers without the refresh_token grant. The SDK (1.32) answers a 403
 * insufficient_scope by refreshing when it holds a refresh token, and a refresh cannot widen the grant,
 * so step-up to new scopes needs a client without one.
 *
 * Connects the SDK client to `mcpUrl`: the first attempt meets the 401, the SDK discovers the metadata,
 * registers and starts the authorization; the walker gets the code, the SDK exchanges it, and the
 * second attempt connects with the token.
 */
interface ConnectOptions {
  readonly clientName?: string;
  /** The user's browser: its cookies and how it answers pages such as a consent form. */
  readonly browser?: ScriptedBrowser;
  /** Where this client's metadata document is served, for servers that take client ID metadata documents. */
  readonly clientMetadataUrl?: string;
  readonly scope?: string;
  readonly refreshTokens?: boolean;
  /** What the client offers the server (sampling, elicitation, roots), with its handlers set up by `prepare`. */
  readonly capabilities?: ClientCapabilities;
  readonly prepare?: (client: Client) => void;
}

export function connectWithOAuth(mcpUrl: string, options?: ConnectOptions & { legacySse?: false }): Promise<OAuthConnection>;
export function connectWithOAuth(mcpUrl: string, options: ConnectOptions & { legacySse: true }): Promise<OAuthConnection<SSEClientTransport>>;
export async function connectWithOAuth(
  mcpUrl: string,
  options: ConnectOptions & { legacySse?: boolean } = {},
): Promise<OAuthConnection<StreamableHTTPClientTransport | SSEClientTransport>> {
  const provider = new ScriptedProvider(options.clientName ?? 'mcp-warden scripted client', options);
  if (options.browser) provider.browser = options.browser;
  // `legacySse`: mcpUrl is a 2024-11-05 `/sse` endpoint, spoken with the SDK's SSEClientTransport.
  const open = () =>
    options.legacySse
      ? new SSEClientTransport(new URL(mcpUrl), { authProvider: provider })
      : new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
  await authorizeFirstAttempt(mcpUrl, open(), provider, { Client, UnauthorizedError });
  const transport = open();
  const client = new Client({ name: options.clientName ?? 'mcp-warden scripted client', version: '1.0.0' }, { capabilities: options.capabilities ?? {} });
  options.prepare?.(client);
  await client.connect(transport);
  return {
    client,
    transport,
    accessToken: () => provider.tokens()!.access_token,
    tokens: () => provider.tokens()!,
    clientInformation: () => provider.clientInformation()!,
    async reauthorize() {
      if (!provider.code) throw new Error('no authorization was started');
      await transport.finishAuth(await provider.code);
    },
    close: () => client.close(),
  };
}

/** What `authorizeFirstAttempt` needs of an SDK version: its Client, to probe with, and its UnauthorizedError. */
export interface SdkClasses<T> {
  readonly Client: new (clientInfo: { name: string; version: string }) => { connect(transport: T): Promise<void> };
  readonly UnauthorizedError: abstract new (...args: never[]) => Error;
}

/**
 * The first attempt at `mcpUrl` over `transport`: it meets the 401, the SDK discovers the metadata,
 * registers and starts the authorization, whose code (`provider.code`, from the walker) is then handed
 * to the transport's `finishAuth`. Any SDK version whose client works that way, given its classes.
 */
export async function authorizeFirstAttempt<T extends { finishAuth(authorizationCode: string): Promise<void> }>(
  mcpUrl: string,
  transport: T,
  provider: { readonly code: Promise<string> | undefined },
  sdk: SdkClasses<NoInfer<T>>,
): Promise<void> {
  try {
    await new sdk.Client({ name: 'probe', version: '1.0.0' }).connect(transport);
    throw new Error(`${mcpUrl} did not ask for authorization`);
  } catch (error) {
    if (!(error instanceof sdk.UnauthorizedError) || !provider.code) throw error;
  }
  await transport.finishAuth(await provider.code);
}
