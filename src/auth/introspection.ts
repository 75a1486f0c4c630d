import { addClientCredentials, type ClientAuthMethod } from './client-credentials.ts';
import type { JWTPayload } from 'jose';
import type { SecretSource } from '../config/secret-source.ts';
import type { CircuitBreaker } from './circuit-breaker.ts';
import { AuthFailure, type AuthFailureReason } from './failure.ts';
import { FetchFailure, fetchJson, type FetchFailureKind } from './fetch-json.ts';
import { boundKeyOf, scopesOf, type Principal } from './principal.ts';
import { traced } from '../tracing/child-spans.ts';

const MAX_RESPONSE_BYTES = 64 * 1024;
/** token_type values (RFC 7662 §2.2) of tokens that must not pass as bearer access tokens; DPoP ones are sender-constrained. */
// `DPoP` is an access token too (RFC 9449 §6.2): its binding is in `cnf`, checked against the proof.
const NOT_BEARER_ACCESS_TOKENS = new Set(['refresh_token', 'id_token', 'logout_token']);

/** How an introspection call ended; a bounded metric label. */
export type IntrospectionResult = 'active' | 'inactive' | 'rejected' | 'no_credentials' | 'circuit_open' | FetchFailureKind;

export interface IntrospectionRules {
  readonly issuer: string;
  readonly endpoint: () => Promise<string>;
  readonly clientId: string;
  readonly clientSecret: SecretSource;
  readonly authMethod: ClientAuthMethod;
  readonly timeoutMs: number;
  /** The resource URL and any extra accepted audiences; `aud` must contain one of them. */
  readonly audiences: readonly string[];
  readonly clockToleranceSeconds: number;
  /** Opens after repeated failures of the endpoint, so requests fail fast while it is down. */
  readonly breaker?: CircuitBreaker;
  readonly onResult?: (result: IntrospectionResult, seconds: number) => void;
  readonly now?: () => number;
}

/**
 * Asks the authorization server about an opaque token (RFC 7662 §2.1) and checks the answer as strictly
 * as a JWT: only `active: true` passes, and then issuer, audience, expiry and type are ours to check too.
 * The endpoint being unreachable or answering garbage is `verifier_unavailable` (503), never a 401.
 */
export async function introspect(token: string, rules: IntrospectionRules): Promise<Principal> {
  const started = performance.now();
  const report = (result: IntrospectionResult) => rules.onResult?.(result, (performance.now() - started) / 1000);
  const unavailable = (detail: string) => new AuthFailure('verifier_unavailable', detail, rules.issuer);

  const secret = rules.clientSecret.current();
  if (!secret.ok) {
    report('no_credentials');
    throw unavailable(`introspection client secret unavailable: ${secret.problem}`);
  }
  const form = new URLSearchParams({ token, token_type_hint: 'access_token' });
  const headers = addClientCredentials(form, rules.authMethod, rules.clientId, secret.value);

  if (rules.breaker && !rules.breaker.allow()) {
    report('circuit_open');
    throw unavailable('introspection endpoint failing; calls paused');
  }
  let answer: unknown;
  try {
    const endpoint = await rules.endpoint();
    answer = await traced('token introspection', () => fetchJson(endpoint, { timeoutMs: rules.timeoutMs, maxBytes: MAX_RESPONSE_BYTES, form: { body: form.toString(), headers } }), { 'mcp_warden.issuer': rules.issuer });
  } catch (error) {
    // A 400 is the endpoint working and refusing this token (oidc-provider answers unsupported_token_type
    // for JWTs it did not issue): a verdict on the token, not an outage, so it neither opens the breaker
    // nor lets anyone turn garbage tokens into 503s for everybody else.
    if (error instanceof FetchFailure && error.status === 400) {
      rules.breaker?.success();
      report('inactive');
      throw new AuthFailure('inactive', 'the introspection endpoint refused the token', rules.issuer);
    }
    rules.breaker?.failure();
    const kind = error instanceof FetchFailure ? error.kind : 'network';
    report(kind);
    throw unavailable(`introspection failed: ${(error as Error).message}`);
  }
  if (typeof answer !== 'object' || answer === null || Array.isArray(answer)) {
    rules.breaker?.failure();
    report('invalid_json');
    throw unavailable('introspection answered something other than a JSON object');
  }
  rules.breaker?.success();
  try {
    const principal = checkAnswer(answer as Record<string, unknown>, rules);
    report('active');
    return principal;
  } catch (error) {
    report((error as AuthFailure).reason === 'inactive' ? 'inactive' : 'rejected');
    throw error;
  }
}

function checkAnswer(answer: Record<string, unknown>, rules: IntrospectionRules): Principal {
  const fail = (reason: AuthFailureReason, detail: string) => new AuthFailure(reason, detail, rules.issuer);
  if (answer.active === false) throw fail('inactive', 'active is false');
  // RFC 7662 §2.2: active is a required boolean; "true" or 1 is a protocol error, never a yes.
  if (answer.active !== true) throw fail('inactive', 'active is not the boolean true');
  if (answer.iss !== undefined && answer.iss !== rules.issuer) throw fail('wrong_issuer', 'iss is not this authorization server');
  const audiences = typeof answer.aud === 'string' ? [answer.aud] : Array.isArray(answer.aud) ? answer.aud : [];
  if (!audiences.some((audience) => typeof audience === 'string' && rules.audiences.includes(audience))) {
    throw fail('wrong_audience', 'aud does not name this resource');
  }
  const now = (rules.now ?? Date.now)() / 1000;
  for (const claim of ['exp', 'nbf', 'iat'] as const) {
    if (answer[claim] !== undefined && typeof answer[claim] !== 'number') throw fail('missing_claim', `${claim} is not a number`);
  }
  if (typeof answer.exp === 'number' && answer.exp <= now - rules.clockToleranceSeconds) throw fail('expired', 'exp has passed');
  if (typeof answer.nbf === 'number' && answer.nbf > now + rules.clockToleranceSeconds) throw fail('not_yet_valid', 'nbf is in the future');
  if (typeof answer.token_type === 'string' && NOT_BEARER_ACCESS_TOKENS.has(answer.token_type.toLowerCase())) {
    throw fail('wrong_type', 'not a bearer access token');
  }
  const jkt = boundKeyOf(answer.cnf, () => fail('sender_constrained', 'cnf binds the token to a key this proxy does not check'));
  // A DPoP token whose key the answer does not name cannot be checked, and must not pass as a bearer token.
  if (typeof answer.token_type === 'string' && answer.token_type.toLowerCase() === 'dpop' && jkt === undefined) throw fail('sender_constrained', 'a DPoP token without cnf.jkt');

  const { active: _active, ...claims } = answer;
  return {
    jkt,
    issuer: rules.issuer,
    subject: typeof answer.sub === 'string' ? answer.sub : undefined,
    clientId: typeof answer.client_id === 'string' ? answer.client_id : undefined,
    scopes: scopesOf(claims as JWTPayload),
    expiresAt: typeof answer.exp === 'number' ? answer.exp : undefined,
    claims: claims as JWTPayload,
  };
}
