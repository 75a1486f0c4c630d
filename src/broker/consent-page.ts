import type { ServerResponse } from 'node:http';
import type { BrokerConfig, Config } from '../config/schema.ts';
import { isLoopbackHost } from '../config/urls.ts';
import type { ClientKind } from './clients.ts';
import { escapeHtml, sendPage } from './pages.ts';

/** What the operator configured for the page: the same for every login. */
export interface ConsentPageSettings {
  /** resource.name; the page falls back to the resource's URL. */
  readonly resourceName: string | undefined;
  readonly scopeDescriptions: Readonly<Record<string, string>>;
  /** Where the user signs in next: broker.identity_provider.display_name, or the issuer's host. */
  readonly identityProvider: string;
  readonly title: string | undefined;
  readonly logoUrl: string | undefined;
}

export interface ConsentClient {
  readonly kind: ClientKind;
  readonly id: string;
  /** Whatever the client (or, pre-registered, the operator) calls it: never trusted as markup. */
  readonly name: string | undefined;
  readonly redirectUri: string;
}

export interface ConsentView {
  readonly action: string;
  readonly transaction: string;
  readonly csrf: string;
  readonly client: ConsentClient;
  readonly resource: string;
  readonly scopes: readonly string[];
}

const DEFAULT_TITLE = 'Allow access?';

export function consentPageSettings(resource: Config['resource'], broker: BrokerConfig): ConsentPageSettings {
  return {
    resourceName: resource.name,
    scopeDescriptions: resource.scope_descriptions ?? {},
    identityProvider: broker.identity_provider.display_name ?? new URL(broker.identity_provider.issuer).host,
    title: broker.consent.title,
    logoUrl: broker.consent.logo_url,
  };
}

/**
 * The confused-deputy guard: the user sees who is asking, as far as it can be verified, where the answer
 * goes, what it may do, and where they sign in next. A name is only ever shown as a claim; what the
 * broker checked (a metadata document's host, the operator's configuration) is said as such.
 */
export function sendConsentPage(res: ServerResponse, settings: ConsentPageSettings, view: ConsentView): void {
  const title = settings.title ?? DEFAULT_TITLE;
  const logo = settings.logoUrl ? `<img class="logo" src="${escapeHtml(settings.logoUrl)}" alt="">` : '';
  const resourceName = settings.resourceName ?? view.resource;
  const resourceUrl = settings.resourceName ? `<p class="small">${escapeHtml(view.resource)}</p>` : '';
  const hidden = (name: string, value: string) => `<input type="hidden" name="${name}" value="${escapeHtml(value)}">`;
  sendPage(res, {
    status: 200,
    title,
    imgSrc: settings.logoUrl && logoSource(settings.logoUrl),
    body: `${logo}<h1>${escapeHtml(title)}</h1>
<p class="lead"><strong>${whoIsAsking(view.client)}</strong> wants to use <strong>${escapeHtml(resourceName)}</strong> on your behalf.</p>${resourceUrl}
<h2>Who is asking</h2>${clientCard(view.client)}
<h2>What it will be able to do</h2>${scopeList(view.scopes, settings.scopeDescriptions)}
<h2>What happens next</h2><p>If you allow it, you sign in at <strong>${escapeHtml(settings.identityProvider)}</strong>, then go back to the application. If you deny it, the application is told you refused.</p>
<form method="post" action="${escapeHtml(view.action)}">${hidden('transaction', view.transaction)}${hidden('csrf', view.csrf)}
<div class="actions"><button type="submit" name="decision" value="approve" class="primary">Allow</button><button type="submit" name="decision" value="deny">Deny</button></div></form>`,
  });
}

/** The CSP source a logo needs: its https origin, or inline data. */
function logoSource(logoUrl: string): string {
  return logoUrl.startsWith('data:') ? 'data:' : new URL(logoUrl).origin;
}

function whoIsAsking(client: ConsentClient): string {
  if (client.kind === 'metadata-document') return `An application from ${escapeHtml(new URL(client.id).host)}`;
  if (client.kind === 'pre-registered') return escapeHtml(client.name ?? client.id);
  return 'An unverified application';
}

function clientCard(client: ConsentClient): string {
  const id = `<p class="small">Client id: <code>${escapeHtml(client.id)}</code></p>`;
  const name = client.name === undefined ? 'gives no name' : `calls itself “${escapeHtml(client.name)}”`;
  switch (client.kind) {
    case 'metadata-document':
      return `<div class="card"><p><span class="verified">Verified origin:</span> <strong class="prominent">${escapeHtml(new URL(client.id).host)}</strong></p>
<p>It ${name} <span class="small">(provided by the application, not checked)</span>.</p>${redirectLine(client.redirectUri, false)}${id}</div>`;
    case 'pre-registered':
      return `<div class="card"><p><strong class="prominent">${escapeHtml(client.name ?? client.id)}</strong></p>
<p class="small">Configured by the operator of this server.</p>${redirectLine(client.redirectUri, false)}${id}</div>`;
    case 'registered':
      return `<div class="card warning" role="note"><p><strong>Unverified application.</strong> It ${name}, but any application can register with any name here: this server has not checked it.</p>
${redirectLine(client.redirectUri, true)}<p>Allow it only if you have just started signing in from an application you trust.</p>${id}</div>`;
  }
}

/** Where the authorization code goes: the one thing about a registered client that is certain. */
function redirectLine(redirectUri: string, prominent: boolean): string {
  const url = new URL(redirectUri);
  const device = isLoopbackHost(url.hostname) ? ' (an application on this device)' : '';
  const host = `<strong${prominent ? ' class="prominent"' : ''}>${escapeHtml(url.host || redirectUri)}</strong>`;
  return `<p>The answer is sent to ${host}${device}.</p>`;
}

function scopeList(scopes: readonly string[], descriptions: Readonly<Record<string, string>>): string {
  if (scopes.length === 0) return '<p>It asks for no particular permission (no scopes).</p>';
  const items = scopes.map((scope) => {
    const description = Object.hasOwn(descriptions, scope) ? `${escapeHtml(descriptions[scope]!)} ` : '';
    return `<li>${description}<code>${escapeHtml(scope)}</code></li>`;
  });
  return `<ul class="scopes">${items.join('')}</ul>`;
}
