import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { chromium, type Browser, type Page } from 'playwright-core';

/** Debian's chromium package (CI installs it; see .ci/run): playwright-core drives it and downloads nothing. */
export const CHROMIUM = '/usr/bin/chromium';

/** Browser tests run where chromium is installed, and always in CI: there a missing browser is a failure. */
export const skipWithoutChromium = !existsSync(CHROMIUM) && !process.env.CI;

if (skipWithoutChromium) process.stderr.write(`${CHROMIUM} not found: skipping the broker page browser tests (test/browser/); install Debian's chromium (.ci/run does) to run them\n`);

/** Headless, and quiet on the network: nothing but the loopback servers the test starts. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

export interface AxeViolation {
  readonly id: string;
  readonly impact: string | null;
  readonly help: string;
  readonly nodes: ReadonlyArray<{ readonly target: readonly string[] }>;
}

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/**
 * axe-core's WCAG 2.x A/AA rules and best practices run in the page. The page's CSP forbids every script,
 * so the page must come from a context created with `bypassCSP: true`: only the scan uses one.
 */
export async function axeViolations(page: Page): Promise<AxeViolation[]> {
  await page.addScriptTag({ content: AXE_SOURCE });
  const options = { resultTypes: ['violations'], runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] } };
  // A string, not a function: the project's type check has no DOM library, and this runs in the page.
  const violations = await page.evaluate(`axe.run(document, ${JSON.stringify(options)}).then((result) => result.violations.map(({ id, impact, help, nodes }) => ({ id, impact, help, nodes: nodes.map((node) => ({ target: node.target })) })))`);
  return violations as AxeViolation[];
}

/**
 * The application's side, on its own loopback port: the redirect URI the broker answers at, a client ID
 * metadata document naming that redirect URI, and a page of another site that frames whatever it is given.
 */
export interface ApplicationSite {
  readonly origin: string;
  readonly callback: string;
  readonly metadataDocument: string;
  framing(src: string): string;
  close(): Promise<void>;
}

export async function startApplicationSite(clientName: string): Promise<ApplicationSite> {
  let origin = '';
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', origin);
    const html = (body: string) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<!doctype html><html lang="en"><head><title>Application</title></head><body>${body}</body></html>`);
    };
    if (url.pathname === '/client.json') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ client_id: `${origin}/client.json`, client_name: clientName, redirect_uris: [`${origin}/callback`], token_endpoint_auth_method: 'none' }));
    }
    if (url.pathname === '/callback') return html('<h1>Back in the application</h1>');
    if (url.pathname === '/frame') return html(`<h1>Another site</h1><iframe id="victim" title="framed" src="${(url.searchParams.get('src') ?? '').replace(/"/g, '&quot;')}"></iframe>`);
    res.writeHead(404);
    res.end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    callback: `${origin}/callback`,
    metadataDocument: `${origin}/client.json`,
    framing: (src) => `${origin}/frame?src=${encodeURIComponent(src)}`,
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}
