import { request } from 'undici';
import { challengeFor } from '../auth/challenge.ts';
import { AuthFailure } from '../auth/failure.ts';
import { introspect } from '../auth/introspection.ts';
import { issuerMetadataSource } from '../auth/issuer-metadata.ts';
import { KeySet } from '../auth/key-set.ts';
import { brokerEndpoints, brokerIssuerOf } from '../broker/endpoints.ts';
import type { Config } from '../config/schema.ts';
import { openSecretSource } from '../config/secret-source.ts';
import { buildProtectedResourceMetadata } from '../metadata/protected-resource.ts';
import { createUpstreamCredential } from '../upstream/create-credential.ts';
import { PROBE_INITIALIZE } from './probe-initialize.ts';
import { probeStdioUpstream } from './stdio-probe.ts';
import { probeTokenCredential } from './token-probe.ts';

export interface CheckResult {
  readonly ok: boolean;
  readonly what: string;
  readonly detail: string;
}

const PROBE_TOKEN = 'mcp-warden-check-probe-not-a-token';

/**
 * Probes everything a running proxy depends on, in the order a request meets it, and says in plain
 * words what works and what does not. Nothing here changes state anywhere, but for an MCP session the
 * upstream opens for the probe and which is deleted again.
 */
export async function checkDeployment(config: Config): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const pass = (what: string, detail: string) => results.push({ ok: true, what, detail });
  const fail = (what: string, detail: string) => results.push({ ok: false, what, detail });
  const timeoutMs = config.tokens.jwks.timeout;

  for (const server of config.authorization_servers) {
    const metadata = issuerMetadataSource(server.issuer, timeoutMs);
    const needsDiscovery = (server.verify_jwt && !server.jwks_uri) || (server.introspection && !server.introspection.endpoint);
    if (needsDiscovery) {
      try {
        await metadata();
        pass(`issuer ${server.issuer}`, 'metadata discovered, and it names this issuer');
      } catch (error) {
        fail(`issuer ${server.issuer}`, `discovery failed: ${(error as Error).message}`);
        continue;
      }
    }
    if (server.verify_jwt) await probeSigningKeys(`signing keys of ${server.issuer}`, server.jwks_uri, metadata, server.algorithms, timeoutMs, pass, fail);
    if (server.introspection) {
      const settings = server.introspection;
      const secret = openSecretSource(settings.client_secret);
      try {
        await introspect(PROBE_TOKEN, {
          issuer: server.issuer,
          endpoint: async () => settings.endpoint ?? String((await metadata()).introspection_endpoint ?? ''),
          clientId: settings.client_id,
          clientSecret: secret,
          authMethod: settings.auth_method,
          timeoutMs: settings.timeout,
          audiences: [config.resource.url],
          clockToleranceSeconds: 0,
        });
        fail(`introspection at ${server.issuer}`, 'a made-up token was reported active');
      } catch (error) {
        const reason = (error as AuthFailure).reason;
        if (reason === 'inactive') pass(`introspection at ${server.issuer}`, `client ${settings.client_id} accepted (a made-up token is inactive)`);
        else fail(`introspection at ${server.issuer}`, (error as Error).message);
      } finally {
        secret.close();
      }
    }
  }

  if (config.broker) await checkIdentityProvider(config.broker.identity_provider, timeoutMs, pass, fail);
  for (const trusted of config.broker?.enterprise?.trusted_issuers ?? []) {
    const what = `ID-JAG signing keys of ${trusted.issuer}`;
    await probeSigningKeys(what, trusted.jwks_uri, issuerMetadataSource(trusted.issuer, timeoutMs), trusted.algorithms, timeoutMs, pass, fail);
  }

  if (config.upstream.stdio) {
    await probeStdioUpstream(config.upstream.stdio, config.upstream.credential, pass, fail);
    return results;
  }
  const upstreamCredential = config.upstream.credential;
  if (upstreamCredential.type === 'client_credentials' || upstreamCredential.type === 'token_exchange') {
    const headers = await probeTokenCredential(upstreamCredential, config.insecure_allow_http, pass, fail);
    if (headers) await probeUpstream(config, headers, pass, fail);
    else if (upstreamCredential.type === 'token_exchange') await probeUpstream(config, {}, pass, fail);
    return results;
  }
  if (config.upstream.credential.type === 'user_token') {
    pass('upstream credential', "each user's own identity provider token (user_token); the upstream is probed without one");
    await probeUpstream(config, {}, pass, fail);
    return results;
  }
  const credential = createUpstreamCredential(config.upstream.credential);
  try {
    const headers = await credential.headers();
    if (!headers.ok) fail('upstream credential', headers.problem);
    else await probeUpstream(config, headers.headers, pass, fail);
  } finally {
    credential.close();
  }
  return results;
}

/** An issuer's key set, fetched once as the verifier would: from `jwksUri`, else the discovered one. */
async function probeSigningKeys(
  what: string,
  jwksUri: string | undefined,
  metadata: ReturnType<typeof issuerMetadataSource>,
  algorithms: readonly string[],
  timeoutMs: number,
  pass: (what: string, detail: string) => void,
  fail: (what: string, detail: string) => void,
): Promise<void> {
  let count = 0;
  const keys = new KeySet({
    jwksUri: async () => jwksUri ?? String((await metadata()).jwks_uri ?? ''),
    timeoutMs,
    cooldownMs: 0,
    refreshMs: Number.POSITIVE_INFINITY,
    maxStaleMs: Number.POSITIVE_INFINITY,
    onFetch: (_result, keyCount) => (count = keyCount),
  });
  try {
    await keys.refresh();
    pass(what, `${count} usable key(s); accepted algorithms ${algorithms.join(', ')}`);
  } catch (error) {
    fail(what, (error as Error).message);
  }
}

/** Broker mode: what the login at the identity provider needs, short of a user. */
async function checkIdentityProvider(
  idp: NonNullable<Config['broker']>['identity_provider'],
  timeoutMs: number,
  pass: (what: string, detail: string) => void,
  fail: (what: string, detail: string) => void,
): Promise<void> {
  const what = `identity provider ${idp.issuer}`;
  const secret = openSecretSource(idp.client_secret);
  const value = secret.current();
  secret.close();
  if (!value.ok) fail(`${what} client secret`, value.problem);
  let metadata: Awaited<ReturnType<ReturnType<typeof issuerMetadataSource>>>;
  try {
    metadata = await issuerMetadataSource(idp.issuer, timeoutMs)();
  } catch (error) {
    fail(what, `discovery failed: ${(error as Error).message}`);
    return;
  }
  const missing = ['authorization_endpoint', 'token_endpoint', 'jwks_uri'].filter((member) => typeof metadata[member] !== 'string');
  const methods = metadata.code_challenge_methods_supported;
  if (missing.length > 0) fail(what, `its metadata lacks ${missing.join(', ')}`);
  else if (Array.isArray(methods) && !methods.includes('S256')) fail(what, 'it does not offer PKCE S256');
  else pass(what, `discovered; the broker logs users in there as client ${idp.client_id}`);
}

async function probeUpstream(
  config: Config,
  credential: Record<string, string>,
  pass: (what: string, detail: string) => void,
  fail: (what: string, detail: string) => void,
): Promise<void> {
  const target = new URL(new URL(config.resource.url).pathname, config.upstream.url!).href;
  const body = JSON.stringify(PROBE_INITIALIZE);
  try {
    const response = await request(target, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...credential },
      body,
      signal: AbortSignal.timeout(config.upstream.connect_timeout + config.upstream.response_timeout),
    });
    const text = await response.body.text();
    const sessionId = response.headers['mcp-session-id'];
    const server = /"serverInfo"\s*:\s*(\{[^}]*\})/.exec(text)?.[1];
    if (response.statusCode === 200 && server) pass(`upstream ${target}`, `answers initialize: ${server}`);
    else fail(`upstream ${target}`, `initialize answered ${response.statusCode}${response.statusCode === 401 || response.statusCode === 403 ? ' (it refuses the proxy credential)' : ''}`);
    if (typeof sessionId === 'string') {
      await request(target, { method: 'DELETE', headers: { 'mcp-session-id': sessionId, ...credential } })
        .then((closing) => closing.body.dump())
        .catch(() => undefined);
    }
  } catch (error) {
    fail(`upstream ${target}`, `unreachable: ${(error as Error).message}`);
  }
}

/** What a client will see: printed with the report. */
export function clientView(config: Config): string[] {
  const brokerIssuer = brokerIssuerOf(config);
  const metadata = buildProtectedResourceMetadata(config, brokerIssuer);
  const challenge = challengeFor('missing_token', { resourceMetadataUrl: metadata.url, scope: config.tokens.required_scopes });
  const lines = [
    `resource (token audience)  ${config.resource.url}`,
    `metadata URL               ${metadata.url}`,
    `401 challenge              WWW-Authenticate: ${challenge.headers['www-authenticate']}`,
  ];
  if (brokerIssuer) {
    lines.push(`broker issuer              ${brokerIssuer}`, `redirect URI to register   ${brokerEndpoints(brokerIssuer).callback} (at the identity provider)`);
  }
  return lines;
}
