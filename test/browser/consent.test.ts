import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, BrowserContextOptions, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { axeViolations, launchChromium, skipWithoutChromium, startApplicationSite, type ApplicationSite } from '../helpers/browser.ts';
import { pkce, startBrokerStack, type BrokerStack } from '../helpers/broker-stack.ts';

/** Written on every run, git-ignored: each page at two sizes, light and dark, for a person to look at. */
const SCREENSHOTS = join(import.meta.dirname, 'screenshots');
const LOGO_SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="96" height="32" viewBox="0 0 96 32"><rect width="32" height="32" rx="6" fill="#1a56db"/><text x="40" y="23" font-family="sans-serif" font-size="18" fill="#888">Acme</text></svg>';
const LOGO = `data:image/svg+xml;base64,${Buffer.from(LOGO_SVG).toString('base64')}`;
const INJECTED = `<script>globalThis.injected=1;console.log('injected')</script><img src=x onerror="globalThis.injected=2">`;

type PageKind = 'consent-dcr' | 'consent-cimd' | 'error';
const VIEWPORTS = [
  { width: 1280, height: 800 },
  { width: 390, height: 844 },
] as const;
const SCHEMES = ['light', 'dark'] as const;

// Code that runs in the page is passed as a string: the project's type check has no DOM library.

/**
 * The broker's pages in headless Chromium, as a person meets them: the consent page for a dynamically
 * registered client and for a client ID metadata document client, Allow and Deny, an error page. Also
 * what must never happen there: a script running, the page inside another site's frame.
 */
describe.skipIf(skipWithoutChromium)('broker pages in a real browser', () => {
  let stack: BrokerStack;
  let app: ApplicationSite;
  let browser: Browser;
  let registered: string;
  let hostile: string;

  beforeAll(async () => {
    app = await startApplicationSite('Acme Notes');
    stack = await startBrokerStack(
      { client_metadata: { allow_private_addresses: true, insecure_allow_http_loopback: true }, consent: { logo_url: LOGO } },
      {
        config: (raw) => {
          const broker = raw.broker as Record<string, unknown>;
          return {
            ...raw,
            resource: { ...(raw.resource as object), name: 'Acme documents', scope_descriptions: { 'mcp:read': 'Read your documents', 'mcp:write': 'Create and change your documents' } },
            broker: { ...broker, identity_provider: { ...(broker.identity_provider as object), display_name: 'Acme Login' } },
          };
        },
      },
    );
    browser = await launchChromium();
    [registered, hostile] = await Promise.all([register('Claude Desktop'), register(INJECTED)]);
    mkdirSync(SCREENSHOTS, { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
    await stack?.close();
    await app?.close();
  });

  async function register(name: string): Promise<string> {
    const response = await fetch(`${stack.issuer}/oauth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: name, redirect_uris: [app.callback], token_endpoint_auth_method: 'none' }),
    });
    return ((await response.json()) as { client_id: string }).client_id;
  }

  const authorizeUrl = (clientId: string): string => {
    const url = new URL(`${stack.issuer}/oauth/authorize`);
    const params = { response_type: 'code', client_id: clientId, redirect_uri: app.callback, code_challenge_method: 'S256', code_challenge: pkce().challenge, state: 'st', resource: stack.mcpUrl, scope: 'mcp:read mcp:write' };
    for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
    return url.href;
  };

  const urlOf = (kind: PageKind): string => (kind === 'consent-dcr' ? authorizeUrl(registered) : kind === 'consent-cimd' ? authorizeUrl(app.metadataDocument) : authorizeUrl('nobody-registered-this'));

  /** A fresh browser profile per test: no cookie, so no remembered consent, carries over. */
  async function withPage<T>(options: BrowserContextOptions, use: (page: Page, context: BrowserContext) => Promise<T>): Promise<T> {
    const context = await browser.newContext(options);
    try {
      return await use(await context.newPage(), context);
    } finally {
      await context.close();
    }
  }

  it('shows a registered client as unverified, with where the answer goes, the scopes in words and the provider', async () => {
    await withPage({}, async (page) => {
      await page.goto(urlOf('consent-dcr'));
      await expect(page.title()).resolves.toBe('Allow access?');
      const text = await page.locator('main').innerText();
      expect(text).toContain('An unverified application wants to use Acme documents on your behalf.');
      expect(text).toContain('Unverified application. It calls itself “Claude Desktop”, but any application can register with any name here');
      expect(text).toContain(`The answer is sent to ${new URL(app.origin).host} (an application on this device).`);
      expect(text).toContain('Read your documents mcp:read');
      expect(text).toContain('Create and change your documents mcp:write');
      expect(text).toContain('you sign in at Acme Login');
      expect(text).toContain(stack.mcpUrl);
      await expect(page.getByRole('note').innerText()).resolves.toContain('Unverified application.');
      expect(await page.getByRole('button').allInnerTexts()).toEqual(['Allow', 'Deny']);
      // The logo is allowed by the page's CSP (img-src data:) and so actually drawn.
      expect(await page.evaluate("document.querySelector('img.logo').naturalWidth")).toBeGreaterThan(0);
    });
  });

  it('shows a metadata document client by its verified origin, its name as provided by the application', async () => {
    await withPage({}, async (page) => {
      await page.goto(urlOf('consent-cimd'));
      const text = await page.locator('main').innerText();
      const host = new URL(app.origin).host;
      expect(text).toContain(`An application from ${host} wants to use Acme documents on your behalf.`);
      expect(text).toContain(`Verified origin: ${host}`);
      expect(text).toContain('It calls itself “Acme Notes” (provided by the application, not checked).');
      expect(text).not.toContain('Unverified application');
      expect(text).toContain('you sign in at Acme Login');
    });
  });

  it('runs no script from a client name: it shows as text, and neither inline code nor an event handler executes', async () => {
    await withPage({}, async (page) => {
      const console: string[] = [];
      page.on('console', (message) => console.push(message.text()));
      page.on('dialog', (dialog) => void dialog.dismiss());
      await page.goto(authorizeUrl(hostile));
      expect(await page.locator('main').innerText()).toContain(`It calls itself “${INJECTED}”`);
      expect(await page.locator('main script, main img[src="x"]').count()).toBe(0);
      expect(await page.evaluate(() => (globalThis as { injected?: number }).injected)).toBeUndefined();
      expect(console.filter((line) => line.includes('injected'))).toEqual([]);
    });
  });

  it('cannot be framed: another site framing the page in the same browser gets nothing', async () => {
    await withPage({}, async (page) => {
      const console: string[] = [];
      page.on('console', (message) => console.push(message.text()));
      await page.goto(app.framing(urlOf('consent-dcr')));
      await expect(page.locator('h1').innerText()).resolves.toBe('Another site');
      await expect.poll(() => console.some((line) => line.includes("violates the following Content Security Policy directive: \"frame-ancestors 'none'\""))).toBe(true);
      // Chromium puts its own error document in the refused frame: nothing of the broker's page is in it.
      const frame = page.frames().find((candidate) => candidate !== page.mainFrame())!;
      expect(frame.url()).not.toContain(new URL(stack.issuer).host);
      expect(await frame.locator('button, form').count()).toBe(0);
      expect(await frame.evaluate('document.body.innerText')).not.toMatch(/Allow|Acme/);
    });
  });

  it('lets a keyboard user approve: Tab reaches Allow first, with a visible focus outline, and Enter goes on to the identity provider', async () => {
    await withPage({}, async (page) => {
      await page.goto(urlOf('consent-dcr'));
      await page.keyboard.press('Tab');
      const focused = await page.evaluate('({ text: document.activeElement.textContent, outline: getComputedStyle(document.activeElement).outlineStyle })');
      expect(focused).toEqual({ text: 'Allow', outline: 'solid' });
      const atProvider = page.waitForRequest((request) => request.url().startsWith(stack.idp.issuer));
      await page.keyboard.press('Enter');
      await atProvider;
      await page.waitForURL((url) => url.href.startsWith(app.callback));
      expect(new URL(page.url()).searchParams.get('code')).toBeTruthy();
    });
  });

  it('Deny sends the user back to the application with access_denied, past no identity provider', async () => {
    await withPage({}, async (page) => {
      const visits = stack.idp.requestCount('/auth');
      await page.goto(urlOf('consent-cimd'));
      await page.getByRole('button', { name: 'Deny' }).click();
      await page.waitForURL((url) => url.href.startsWith(app.callback));
      expect(new URL(page.url()).searchParams.get('error')).toBe('access_denied');
      expect(stack.idp.requestCount('/auth')).toBe(visits);
    });
  });

  it('explains an error: what happened, what to do next, and a request id', async () => {
    await withPage({}, async (page) => {
      const response = await page.goto(urlOf('error'));
      expect(response?.status()).toBe(400);
      const text = await page.locator('main').innerText();
      expect(text).toContain('This sign-in cannot continue');
      expect(text).toContain('The application that sent you here is not registered with this server.');
      expect(text).toContain("Contact the application's developer");
      expect(text).toContain(`Request id: ${await response!.headerValue('x-request-id')}`);
    });
  });

  it('reflows at 320 px wide (a 640 px window at 200 % zoom) without sideways scrolling', async () => {
    await withPage({ viewport: { width: 320, height: 640 } }, async (page) => {
      for (const kind of ['consent-dcr', 'consent-cimd', 'error'] as const) {
        await page.goto(urlOf(kind));
        expect(await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth'), kind).toBe(true);
      }
    });
  });

  describe.each(['consent-dcr', 'consent-cimd', 'error'] as const)('%s page', (kind) => {
    it('is screenshotted at 1280×800 and 390×844, light and dark', async () => {
      for (const viewport of VIEWPORTS) {
        for (const colorScheme of SCHEMES) {
          await withPage({ viewport, colorScheme }, async (page) => {
            await page.goto(urlOf(kind));
            await page.screenshot({ path: join(SCREENSHOTS, `${kind}-${viewport.width}x${viewport.height}-${colorScheme}.png`) });
          });
        }
      }
    });

    it('has no serious or critical axe-core violation, light or dark', async () => {
      for (const colorScheme of SCHEMES) {
        // bypassCSP only here: axe is a script, which the page's CSP (rightly) refuses to run.
        const violations = await withPage({ colorScheme, bypassCSP: true }, async (page) => {
          await page.goto(urlOf(kind));
          return axeViolations(page);
        });
        expect(violations.filter((violation) => violation.impact === 'serious' || violation.impact === 'critical'), `${kind}, ${colorScheme}`).toEqual([]);
      }
    });
  });
});
