import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REDIRECT_URI } from '../../demo/oauth-client.ts';
import { pkce, startBrokerStack, type BrokerStack } from '../helpers/broker-stack.ts';

const LOGO = 'data:image/png;base64,iVBORw0KGgo=';
const HOSTILE = '<script>globalThis.pwned=1</script>"\'&';

/**
 * The HTML the broker's pages are made of, fetched as a browser would: what each kind of client is
 * shown as, the operator's words (scope descriptions, provider name, title, logo), and the headers that
 * keep every page unframed, uncached and script-free.
 */
describe('broker pages: what the consent and error pages say, and the headers that protect them', () => {
  let stack: BrokerStack;
  let documents: Server;
  let documentUrl: string;

  beforeAll(async () => {
    documents = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ client_id: documentUrl, client_name: HOSTILE, redirect_uris: [REDIRECT_URI], token_endpoint_auth_method: 'none' }));
    });
    documents.listen(0, '127.0.0.1');
    await once(documents, 'listening');
    documentUrl = `http://127.0.0.1:${(documents.address() as AddressInfo).port}/client.json`;
    stack = await startBrokerStack(
      {
        clients: [{ client_id: 'desk', client_name: 'Operator <Desk>', redirect_uris: ['https://desk.example.com/cb'] }],
        client_metadata: { allow_private_addresses: true, insecure_allow_http_loopback: true },
        consent: { title: 'Allow access to Acme?', logo_url: LOGO },
      },
      {
        config: (raw) => {
          const broker = raw.broker as Record<string, unknown>;
          return {
            ...raw,
            resource: { ...(raw.resource as object), scope_descriptions: { 'mcp:read': 'Read your <notes>' } },
            broker: { ...broker, identity_provider: { ...(broker.identity_provider as object), display_name: 'Acme Login' } },
          };
        },
      },
    );
  });
  afterAll(async () => {
    await stack?.close();
    documents?.close();
  });

  const register = async (name: string): Promise<string> => {
    const response = await fetch(`${stack.issuer}/oauth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: name, redirect_uris: [REDIRECT_URI], token_endpoint_auth_method: 'none' }),
    });
    return ((await response.json()) as { client_id: string }).client_id;
  };

  const consentPage = async (clientId: string, redirectUri = REDIRECT_URI, scope = 'mcp:read mcp:write') => {
    const url = new URL(`${stack.issuer}/oauth/authorize`);
    const params = { response_type: 'code', client_id: clientId, redirect_uri: redirectUri, code_challenge_method: 'S256', code_challenge: pkce().challenge, state: 's', resource: stack.mcpUrl, scope };
    for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
    const response = await fetch(url, { redirect: 'manual' });
    return { response, html: await response.text() };
  };

  it('warns that a registered client name is unverified, escapes it, and shows its loopback redirect host as this device', async () => {
    const { response, html } = await consentPage(await register(HOSTILE));
    expect(response.status).toBe(200);
    expect(html).toContain('Unverified application.');
    expect(html).toContain('An unverified application');
    expect(html).toContain('&#60;script&#62;globalThis.pwned=1&#60;/script&#62;&#34;&#39;&#38;');
    expect(html).not.toContain('<script');
    expect(html).toContain('<strong class="prominent">127.0.0.1:1</strong> (an application on this device)');
    expect(html).not.toContain('Verified origin');
  });

  it('shows a metadata document client by its verified origin, its name only as provided by the application', async () => {
    const { html } = await consentPage(documentUrl);
    const host = new URL(documentUrl).host;
    expect(html).toContain(`Verified origin:</span> <strong class="prominent">${host}</strong>`);
    expect(html).toContain(`An application from ${host}`);
    expect(html).toContain('provided by the application');
    expect(html).not.toContain('<script');
    expect(html).not.toContain('Unverified application');
  });

  it('shows a pre-registered client as configured by the operator, with its https redirect host', async () => {
    const { html } = await consentPage('desk', 'https://desk.example.com/cb');
    expect(html).toContain('Operator &#60;Desk&#62;');
    expect(html).toContain('Configured by the operator of this server.');
    expect(html).toContain('<strong>desk.example.com</strong>.');
    expect(html).not.toContain('on this device');
  });

  it("names the resource (URL in small print), describes each scope, names the identity provider and uses the operator's title", async () => {
    const { html } = await consentPage(await register('plain'));
    expect(html).toContain('<strong>Broker test server</strong>');
    expect(html).toContain(`<p class="small">${stack.mcpUrl}</p>`);
    expect(html).toContain('<li>Read your &#60;notes&#62; <code>mcp:read</code></li>');
    expect(html).toContain('<li><code>mcp:write</code></li>');
    expect(html).toContain('you sign in at <strong>Acme Login</strong>');
    expect(html).toContain('<title>Allow access to Acme?</title>');
    expect(html).toContain('<h1>Allow access to Acme?</h1>');
  });

  it('puts Allow first as the primary button, and keeps the page accessible and responsive', async () => {
    const { html } = await consentPage(await register('plain'));
    expect(html).toMatch(/<html lang="en">/);
    expect(html).toContain('<meta name="viewport" content="width=device-width, initial-scale=1">');
    expect(html).toContain('prefers-color-scheme:dark');
    expect(html).toContain(':focus-visible');
    expect(html.indexOf('value="approve" class="primary">Allow</button>')).toBeGreaterThan(-1);
    expect(html.indexOf('value="approve"')).toBeLessThan(html.indexOf('value="deny"'));
  });

  it('allows the configured logo, and nothing else, besides the inline style; no framing, no caching', async () => {
    const { response, html } = await consentPage(await register('plain'));
    expect(html).toContain(`<img class="logo" src="${LOGO}" alt="">`);
    expect(response.headers.get('content-security-policy')).toBe("default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'");
    expect(response.headers.get('x-frame-options')).toBe('DENY');
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(response.headers.get('referrer-policy')).toBe('same-origin');
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it('says on an error page what happened, what to do next, and the request id, with the same protections', async () => {
    const { response, html } = await consentPage('nobody-registered-this');
    expect(response.status).toBe(400);
    expect(html).toContain('<h1>This sign-in cannot continue</h1>');
    expect(html).toContain('The application that sent you here is not registered with this server.');
    expect(html).toContain("Contact the application's developer");
    const requestId = response.headers.get('x-request-id')!;
    expect(requestId).toBeTruthy();
    expect(html).toContain(`Request id: <code>${requestId}</code>`);
    expect(html).not.toMatch(/\bat .+\.ts:\d+|Error:/);
    expect(response.headers.get('content-security-policy')).toBe("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'");
    expect(response.headers.get('x-frame-options')).toBe('DENY');
    expect(response.headers.get('cache-control')).toBe('no-store');
  });

  it('sends an expired or forged consent back to the application to start again', async () => {
    const response = await fetch(`${stack.issuer}/oauth/consent`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'transaction=gone&csrf=x&decision=approve' });
    const html = await response.text();
    expect(response.status).toBe(400);
    expect(html).toContain('This sign-in has expired.');
    expect(html).toContain('Go back to the application and start signing in again from there.');
  });
});
