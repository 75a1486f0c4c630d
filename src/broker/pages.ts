import type { ServerResponse } from 'node:http';
import { PAGE_STYLE } from './page-style.ts';

/**
 * The Content-Security-Policy of every page the broker shows a browser: nothing loads and no script runs
 * (`default-src 'none'`), only the inline stylesheet and, when one is configured, the logo's source.
 */
function contentSecurityPolicy(imgSrc: string | undefined): string {
  return ["default-src 'none'", "style-src 'unsafe-inline'", ...(imgSrc ? [`img-src ${imgSrc}`] : []), "frame-ancestors 'none'", "base-uri 'none'"].join('; ');
}

/**
 * Headers of every page: never framed (clickjacking a consent button), never cached, no referrer carrying
 * the query to another site, and no sniffing the HTML as something else. `same-origin`, not `no-referrer`:
 * under `no-referrer` browsers send `Origin: null` with the consent form's POST, which the Origin check
 * then refuses, so no real browser could ever answer the page.
 */
const PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  'x-frame-options': 'DENY',
  'referrer-policy': 'same-origin',
  'x-content-type-options': 'nosniff',
} as const;

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

export interface Page {
  readonly status: number;
  /** Plain text, escaped here. */
  readonly title: string;
  /** HTML, everything from a client already escaped. */
  readonly body: string;
  /** The one image source the page may load from (a logo's origin, or `data:`). */
  readonly imgSrc?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

export function sendPage(res: ServerResponse, page: Page): void {
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(page.title)}</title><style>${PAGE_STYLE}</style></head><body><main>${page.body}</main></body></html>`;
  res.writeHead(page.status, { ...PAGE_HEADERS, 'content-security-policy': contentSecurityPolicy(page.imgSrc), ...page.headers, 'content-length': Buffer.byteLength(html) });
  res.end(res.req?.method === 'HEAD' ? undefined : html);
}
