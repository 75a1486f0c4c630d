import type { IncomingMessage, ServerResponse } from 'node:http';
import { checkAuthorizationRequest, responseUrl, type AuthorizationRequest, type ResourceTerms } from './authorization-request.ts';
import type { ClientRegistry } from './clients.ts';
import type { BrowserCookies } from './cookies.ts';
import type { BrokerEndpoints } from './endpoints.ts';
import { readCookies, readForm, redirect } from './http.ts';
import { LoginFailure, type IdentityProvider, type ProviderTokens } from './identity-provider.ts';
import { sendConsentPage, type ConsentPageSettings } from './consent-page.ts';
import { sendErrorPage } from './error-page.ts';
import { hashSecret, matchesHash, newSecret, s256 } from './secrets.ts';
import type { BrokerRateLimits } from './rate-limits.ts';
import type { BrokerStore } from './store.ts';
import type { UserTokens } from './user-tokens.ts';
import type { Logger } from '../observability/logger.ts';

/** A login in progress, from /authorize to the code: kept under the hash of its id. */
interface Transaction {
  readonly request: AuthorizationRequest;
  /** Set when the consent page is shown; the form must come back with the matching cookie. */
  readonly csrfHash?: string;
  /** The user approved this client in this login. */
  readonly approved: boolean;
  readonly nonce: string;
  readonly idpVerifier: string;
  /** Known once the identity provider has answered, when consent is still to be given. */
  readonly subject?: string;
}

/** What a redeemed authorization code stands for. */
export interface CodeGrant {
  readonly request: AuthorizationRequest;
  readonly subject: string;
  /** The grant (token family) this code starts; a replay revokes it. */
  readonly grantId: string;
}

export interface LoginFlowOptions {
  readonly store: BrokerStore;
  readonly clients: ClientRegistry;
  readonly identityProvider: IdentityProvider;
  readonly endpoints: BrokerEndpoints;
  readonly cookies: BrowserCookies;
  readonly terms: ResourceTerms;
  readonly loginTtlMs: number;
  readonly codeTtlMs: number;
  readonly consentTtlMs: number;
  readonly onEvent: (event: 'authorize' | 'consent' | 'login', result: string) => void;
  readonly logger: Logger;
  readonly limits: BrokerRateLimits;
  /** Set when the upstream gets each user's own provider token: the login's tokens are kept for it. */
  readonly userTokens: UserTokens | undefined;
  readonly consentPage: ConsentPageSettings;
}

/**
 * The browser's way through the broker: /authorize checks the request, asks for consent unless this
 * browser's user approved the client before, sends the user to the identity provider, and on the way
 * back issues a code to the client's redirect URI. Consent always comes before a code, and (unless
 * remembered) before the identity provider is involved, so a client cannot ride an existing login there.
 */
export class LoginFlow {
  readonly #o: LoginFlowOptions;

  constructor(options: LoginFlowOptions) {
    this.#o = options;
  }

  async authorize(req: IncomingMessage, res: ServerResponse, query: string): Promise<void> {
    const { clients, terms } = this.#o;
    const params = new URLSearchParams(query);
    const wait = await this.#o.limits.take('authorize', req.socket.remoteAddress ?? '', params.get('client_id') ?? undefined);
    if (wait > 0) {
      this.#o.onEvent('authorize', 'rate_limited');
      return sendErrorPage(res, 429, 'There were too many sign-in attempts from your network or this application.', 'wait', { 'retry-after': String(wait) });
    }
    const check = await checkAuthorizationRequest(params, clients, terms);
    if (!check.ok) {
      this.#o.onEvent('authorize', check.redirect === undefined ? 'invalid_client' : check.error.code);
      if (check.redirect === undefined) return sendErrorPage(res, 400, check.message, 'developer');
      return this.#sendBack(res, { redirect_uri: check.redirect, state: check.state }, check.error.code, check.error.message);
    }
    this.#o.onEvent('authorize', 'ok');
    const id = newSecret();
    const transaction: Transaction = { request: check.request, approved: false, nonce: newSecret(), idpVerifier: newSecret() };
    const subject = await this.#rememberedUser(req);
    if (subject !== undefined && (await this.#hasConsent(subject, check.request.client_id))) {
      await this.#save(id, transaction);
      return this.#toIdentityProvider(res, id, transaction);
    }
    await this.#showConsent(res, id, transaction, check.client.client_name);
  }

  /** The consent form's answer. Without this browser's CSRF cookie matching the form, nothing happens. */
  async consent(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== new URL(this.#o.endpoints.issuer).origin) {
      this.#o.onEvent('consent', 'csrf');
      return sendErrorPage(res, 403, 'The consent form was submitted from another site, so it was not accepted.', 'retry');
    }
    const form = await readForm(req);
    const id = form.get('transaction') ?? '';
    const csrf = form.get('csrf');
    const cookie = readCookies(req).get(this.#o.cookies.name('csrf'));
    const transaction = id ? await this.#o.store.get<Transaction>('transaction', hashSecret(id)) : undefined;
    if (!transaction) return sendErrorPage(res, 400, 'This sign-in has expired.', 'retry');
    if (!csrf || cookie !== csrf || !transaction.csrfHash || !matchesHash(csrf, transaction.csrfHash)) {
      this.#o.onEvent('consent', 'csrf');
      return sendErrorPage(res, 403, 'The consent form could not be verified as the one this browser was shown.', 'retry');
    }
    this.#o.cookies.clear(res, 'csrf');
    const { request } = transaction;
    if (form.get('decision') !== 'approve') {
      this.#o.onEvent('consent', 'denied');
      await this.#o.store.delete('transaction', hashSecret(id));
      return this.#sendBack(res, request, 'access_denied', 'the user denied access');
    }
    this.#o.onEvent('consent', 'approved');
    const approved: Transaction = { ...transaction, approved: true };
    if (approved.subject !== undefined) {
      await this.#o.store.delete('transaction', hashSecret(id));
      await this.#recordConsent(approved.subject, request.client_id);
      return this.#issueCode(res, approved, approved.subject);
    }
    await this.#save(id, approved);
    return this.#toIdentityProvider(res, id, approved);
  }

  /** The identity provider sends the user back here. */
  async callback(req: IncomingMessage, res: ServerResponse, query: string): Promise<void> {
    const params = new URLSearchParams(query);
    const id = params.get('state') ?? '';
    const cookie = readCookies(req).get(this.#o.cookies.name('login'));
    // The login cookie ties the answer to the browser that started the login (login CSRF).
    if (!id || cookie !== id) {
      this.#o.onEvent('login', 'wrong_browser');
      return sendErrorPage(res, 400, 'This sign-in was not started in this browser.', 'retry');
    }
    this.#o.cookies.clear(res, 'login');
    const used = await this.#o.store.use<Transaction>('transaction', hashSecret(id));
    if (!used?.first) {
      this.#o.onEvent('login', 'expired');
      return sendErrorPage(res, 400, 'This sign-in has expired or was already completed.', 'retry');
    }
    const transaction = used.value;
    const { request } = transaction;
    const back = (error: string, description: string) => this.#sendBack(res, request, error, description);
    let subject: string;
    let tokens: ProviderTokens | undefined;
    try {
      await this.#o.identityProvider.checkResponseIssuer(params.get('iss') ?? undefined);
      const error = params.get('error');
      if (error !== null) {
        this.#o.onEvent('login', 'refused');
        return back('access_denied', 'the identity provider did not sign the user in');
      }
      const code = params.get('code');
      if (!code) throw new LoginFailure('the identity provider sent no code');
      ({ subject, tokens } = await this.#o.identityProvider.redeem(code, transaction.idpVerifier, this.#o.endpoints.callback, transaction.nonce));
    } catch (error) {
      // Whatever went wrong at the identity provider (a refused code, a bad ID token, an outage), the
      // client learns only that the login failed; the operator reads why.
      this.#o.onEvent('login', 'failed');
      this.#o.logger.warn({ client_id: request.client_id, problem: (error as Error).message, kind: error instanceof LoginFailure ? 'login' : 'identity_provider' }, 'broker login failed');
      return back('server_error', 'signing in at the identity provider failed');
    }
    this.#o.onEvent('login', 'ok');
    if (this.#o.userTokens && tokens) await this.#o.userTokens.save(subject, tokens);
    await this.#rememberUser(res, subject);
    if (transaction.approved) {
      await this.#recordConsent(subject, request.client_id);
      return this.#issueCode(res, transaction, subject);
    }
    // Consent was remembered for whoever used this browser before; it must be this user's own.
    if (await this.#hasConsent(subject, request.client_id)) return this.#issueCode(res, transaction, subject);
    const client = await this.#o.clients.find(request.client_id);
    await this.#showConsent(res, newSecret(), { ...transaction, subject }, client?.client_name);
  }

  /** Takes a code once. `first: false` is a replay: the caller revokes what the first use issued. */
  async redeemCode(code: string): Promise<{ grant: CodeGrant; first: boolean } | undefined> {
    const used = await this.#o.store.use<CodeGrant>('code', hashSecret(code));
    return used && { grant: used.value, first: used.first };
  }

  /** An error for the client, at its redirect URI (RFC 6749 §4.1.2.1), with `state` and `iss`. */
  #sendBack(res: ServerResponse, to: { readonly redirect_uri: string; readonly state: string | undefined }, error: string, description: string): void {
    redirect(res, responseUrl(to.redirect_uri, this.#o.endpoints.issuer, { error, error_description: description, state: to.state }));
  }

  async #showConsent(res: ServerResponse, id: string, transaction: Transaction, clientName: string | undefined): Promise<void> {
    const csrf = newSecret();
    await this.#save(id, { ...transaction, csrfHash: hashSecret(csrf) });
    this.#o.cookies.set(res, 'csrf', csrf, this.#o.loginTtlMs);
    const { request } = transaction;
    sendConsentPage(res, this.#o.consentPage, {
      action: this.#o.endpoints.consent,
      transaction: id,
      csrf,
      client: { kind: this.#o.clients.kindOf(request.client_id), id: request.client_id, name: clientName, redirectUri: request.redirect_uri },
      scopes: request.scope,
      resource: request.resource,
    });
  }

  async #toIdentityProvider(res: ServerResponse, id: string, transaction: Transaction): Promise<void> {
    let location: string;
    try {
      location = await this.#o.identityProvider.authorizationUrl({
        state: id,
        nonce: transaction.nonce,
        codeChallenge: s256(transaction.idpVerifier),
        redirectUri: this.#o.endpoints.callback,
      });
    } catch (error) {
      this.#o.logger.error({ problem: (error as Error).message }, 'identity provider unavailable');
      return sendErrorPage(res, 502, 'The sign-in service cannot be reached right now.', 'operator');
    }
    this.#o.cookies.set(res, 'login', id, this.#o.loginTtlMs);
    redirect(res, location);
  }

  async #issueCode(res: ServerResponse, transaction: Transaction, subject: string): Promise<void> {
    const code = newSecret();
    const grant: CodeGrant = { request: transaction.request, subject, grantId: newSecret().slice(0, 22) };
    await this.#o.store.put('code', hashSecret(code), grant, Date.now() + this.#o.codeTtlMs);
    redirect(res, responseUrl(transaction.request.redirect_uri, this.#o.endpoints.issuer, { code, state: transaction.request.state }));
  }

  #save(id: string, transaction: Transaction): Promise<boolean> {
    return this.#o.store.put('transaction', hashSecret(id), transaction, Date.now() + this.#o.loginTtlMs);
  }

  async #rememberedUser(req: IncomingMessage): Promise<string | undefined> {
    const session = readCookies(req).get(this.#o.cookies.name('session'));
    if (!session) return undefined;
    return (await this.#o.store.get<{ subject: string }>('session', hashSecret(session)))?.subject;
  }

  async #rememberUser(res: ServerResponse, subject: string): Promise<void> {
    const session = newSecret();
    await this.#o.store.put('session', hashSecret(session), { subject }, Date.now() + this.#o.consentTtlMs);
    this.#o.cookies.set(res, 'session', session, this.#o.consentTtlMs);
  }

  #recordConsent(subject: string, clientId: string): Promise<boolean> {
    return this.#o.store.put('consent', consentKey(subject, clientId), {}, Date.now() + this.#o.consentTtlMs);
  }

  async #hasConsent(subject: string, clientId: string): Promise<boolean> {
    return (await this.#o.store.get('consent', consentKey(subject, clientId))) !== undefined;
  }
}

/** Consent is kept under a hash of who approved which client, so the store does not list users' choices. */
function consentKey(subject: string, clientId: string): string {
  return hashSecret(`${subject}\n${clientId}`);
}
