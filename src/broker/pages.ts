import type { ServerResponse } from 'node:http';

/**
 * Headers of every page the broker shows a browser: never framed (clickjacking a consent button), never
 * cached, no referrer carrying the query to another site, and no script at all.
 */
const PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  'x-frame-options': 'DENY',
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
} as const;

const STYLE = 'body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;line-height:1.5}code{background:#eee;padding:0 .2rem}button{font-size:1rem;padding:.4rem 1.2rem;margin-right:.6rem}';

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

function sendPage(res: ServerResponse, status: number, title: string, body: string, headers: Readonly<Record<string, string>> = {}): void {
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title><style>${STYLE}</style></head><body>${body}</body></html>`;
  res.writeHead(status, { ...PAGE_HEADERS, ...headers, 'content-length': Buffer.byteLength(html) });
  res.end(res.req?.method === 'HEAD' ? undefined : html);
}

export interface ConsentView {
  readonly action: string;
  readonly transaction: string;
  readonly csrf: string;
  readonly clientName: string;
  readonly clientId: string;
  readonly redirectHost: string;
  readonly scopes: readonly string[];
  readonly resource: string;
}

/** The confused-deputy guard: the user sees who is asking, where the answer goes, and for what. */
export function sendConsentPage(res: ServerResponse, view: ConsentView): void {
  const scopes = view.scopes.length > 0 ? view.scopes.map((scope) => `<li><code>${escapeHtml(scope)}</code></li>`).join('') : '<li>no scopes</li>';
  const hidden = (name: string, value: string) => `<input type="hidden" name="${name}" value="${escapeHtml(value)}">`;
  sendPage(
    res,
    200,
    'Allow access?',
    `<h1>Allow access?</h1>
<p><strong>${escapeHtml(view.clientName)}</strong> (client <code>${escapeHtml(view.clientId)}</code>) asks to use <code>${escapeHtml(view.resource)}</code> on your behalf.</p>
<p>If you allow it, you will sign in and the answer goes to <strong>${escapeHtml(view.redirectHost)}</strong>.</p>
<p>It asks for:</p><ul>${scopes}</ul>
<form method="post" action="${escapeHtml(view.action)}">${hidden('transaction', view.transaction)}${hidden('csrf', view.csrf)}
<button type="submit" name="decision" value="approve">Allow</button><button type="submit" name="decision" value="deny">Deny</button></form>`,
  );
}

/** A problem that must not be sent to the client's redirect URI (it may not be the client's). */
export function sendErrorPage(res: ServerResponse, status: number, message: string, headers: Readonly<Record<string, string>> = {}): void {
  sendPage(res, status, 'Authorization failed', `<h1>Authorization failed</h1><p>${escapeHtml(message)}</p>`, headers);
}
