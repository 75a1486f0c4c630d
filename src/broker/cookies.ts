import type { ServerResponse } from 'node:http';

export type CookieName = 'csrf' | 'login' | 'session';

/**
 * The broker's browser cookies. On https they carry the `__Host-` prefix (Secure, no Domain, Path=/),
 * so a sibling subdomain cannot plant or read them. All are HttpOnly; the CSRF cookie is SameSite=Strict
 * (the consent form posts to its own site), the others Lax because they must come along on the top-level
 * redirects back from the client and the identity provider.
 */
export class BrowserCookies {
  readonly #secure: boolean;

  constructor(issuer: string) {
    this.#secure = new URL(issuer).protocol === 'https:';
  }

  name(cookie: CookieName): string {
    return `${this.#secure ? '__Host-' : ''}mcp-warden-${cookie}`;
  }

  set(res: ServerResponse, cookie: CookieName, value: string, maxAgeMs: number): void {
    const sameSite = cookie === 'csrf' ? 'Strict' : 'Lax';
    const attributes = [`${this.name(cookie)}=${value}`, 'Path=/', 'HttpOnly', `SameSite=${sameSite}`, `Max-Age=${Math.max(0, Math.floor(maxAgeMs / 1000))}`];
    if (this.#secure) attributes.push('Secure');
    const existing = res.getHeader('set-cookie');
    res.setHeader('set-cookie', [...(Array.isArray(existing) ? existing : []), attributes.join('; ')]);
  }

  clear(res: ServerResponse, cookie: CookieName): void {
    this.set(res, cookie, '', 0);
  }
}
