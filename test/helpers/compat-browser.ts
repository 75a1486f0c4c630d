// The scripted user agent for the compatibility tests: what a person's browser does between an MCP
// client's authorization URL and its loopback callback, with no person. In-process clients call
// `walkToCallback`; clients that launch a browser get `installBrowser`'s executable as `BROWSER`, which
// runs this file: it walks the flow, opens the callback URL (so the client's own listener gets the
// code, as from a real browser) and logs what it saw to `COMPAT_BROWSER_LOG`.
import { appendFileSync, chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { answerConsent, walkAuthorizationRedirects, type ScriptedBrowser } from '../../demo/oauth-client.ts';

const HOP_TIMEOUT_MS = 5_000;

/** One authorization the scripted browser went through, as the test reads it back. */
export interface BrowsedAuthorization {
  /** The authorization request the client sent the user to. */
  readonly authorizationUrl: string;
  /** Where the flow came back: the client's redirect URI with `code` (or `error`), `state`, `iss`. */
  readonly callbackUrl: string;
  /** What the client's callback listener answered (undefined for in-process clients: nothing was served). */
  readonly callbackStatus?: number;
}

/**
 * Follows `authorizationUrl` like a browser (cookies by name, the broker's consent page approved, the
 * identity provider's login followed) until a redirect targets the request's own `redirect_uri`, and
 * returns that redirect.
 */
export async function walkToCallback(authorizationUrl: URL, browser: ScriptedBrowser = { cookies: new Map(), onPage: answerConsent('approve') }): Promise<URL> {
  const redirectUri = authorizationUrl.searchParams.get('redirect_uri');
  if (!redirectUri) throw new Error('the authorization request names no redirect_uri');
  return walkAuthorizationRedirects(authorizationUrl, redirectUri, browser, HOP_TIMEOUT_MS);
}

/**
 * Writes an executable `BROWSER` into `dir` that runs this file with this Node; returns its path. The
 * bundled xdg-open of the `open` package (mcp-remote's and the Inspector's opener) runs `$BROWSER <url>`
 * when no desktop is detected, and so does every Linux fallback they try.
 */
export function installBrowser(dir: string): string {
  const path = join(dir, 'scripted-browser');
  writeFileSync(path, `#!/bin/sh\nexec "${process.execPath}" "${fileURLToPath(import.meta.url)}" "$@"\n`);
  chmodSync(path, 0o755);
  return path;
}

/** The browser process: walk, open the callback (the client's listener), log, exit 0 on success. */
async function main(): Promise<void> {
  const target = process.argv[2];
  const log = process.env.COMPAT_BROWSER_LOG;
  try {
    if (!target) throw new Error('no URL given');
    const authorizationUrl = new URL(target);
    const callbackUrl = await walkToCallback(authorizationUrl);
    const response = await fetch(callbackUrl, { signal: AbortSignal.timeout(HOP_TIMEOUT_MS) });
    await response.text();
    const entry: BrowsedAuthorization = { authorizationUrl: authorizationUrl.href, callbackUrl: callbackUrl.href, callbackStatus: response.status };
    if (log) appendFileSync(log, `${JSON.stringify(entry)}\n`);
  } catch (error) {
    if (log) appendFileSync(log, `${JSON.stringify({ authorizationUrl: target, error: String(error) })}\n`);
    process.exitCode = 1;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
