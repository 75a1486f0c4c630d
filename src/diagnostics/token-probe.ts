import { grantForm, TokenEndpoint, TokenRequestFailure, type TokenClientConfig } from '../upstream/tokens/token-endpoint.ts';
import { tokenHeader } from '../upstream/tokens/bearer-header.ts';

type Report = (what: string, detail: string) => void;

const GRANTS = { rfc8693: 'urn:ietf:params:oauth:grant-type:token-exchange', entra_obo: 'urn:ietf:params:oauth:grant-type:jwt-bearer' } as const;

/**
 * A token credential is probed at its token endpoint: client credentials by getting a token (whose
 * header the upstream probe then carries), token exchange by a request without a subject token, which
 * an endpoint that authenticated the client refuses as invalid_request (there is no user to exchange for).
 */
export async function probeTokenCredential(config: TokenClientConfig, allowHttp: boolean, pass: Report, fail: Report): Promise<Record<string, string> | undefined> {
  const endpoint = new TokenEndpoint(config, allowHttp);
  const what = `upstream token endpoint of ${endpoint.label}`;
  try {
    for (const problem of endpoint.missing()) fail(problem.path, problem.message);
    if (config.type === 'client_credentials') {
      const token = await endpoint.request(grantForm({ grant_type: 'client_credentials' }, config));
      pass(what, `client ${config.client_id} got a token (${config.auth_method}), valid for ${Math.round((token.expiresAt - Date.now()) / 1000)} s`);
      const header = tokenHeader(config.header);
      return { [header.name]: header.value(token.accessToken) };
    }
    await endpoint.request(new URLSearchParams({ grant_type: GRANTS[config.profile] }));
    fail(what, 'an exchange without a subject token was answered with a token');
  } catch (error) {
    const failure = error as TokenRequestFailure;
    if (config.type === 'token_exchange' && failure.oauthError === 'invalid_request') pass(what, `answers, and authenticates client ${config.client_id} (${config.auth_method}); a probe without a user token is invalid_request`);
    else fail(what, failure.message);
  } finally {
    endpoint.close();
  }
  return undefined;
}
