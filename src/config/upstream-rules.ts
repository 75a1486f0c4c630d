import type { ConfigProblem } from './errors.ts';
import type { Config } from './schema.ts';

type UpstreamConfig = Config['upstream'];
type Credential = UpstreamConfig['credential'];

/** What the upstream section must satisfy across its keys; every problem with its YAML path. */
export function upstreamProblems(upstream: UpstreamConfig): ConfigProblem[] {
  return [...upstreamKindProblems(upstream), ...tokenCredentialProblems(upstream.credential, upstream.stdio !== undefined)];
}

/** A stdio child takes its credential and identity as environment, an HTTP server as headers: never the other way. */
function upstreamKindProblems(upstream: UpstreamConfig): ConfigProblem[] {
  const { credential, stdio } = upstream;
  if (!stdio) {
    return credential.type === 'env' ? [{ path: 'upstream.credential.type', message: 'env is for a stdio upstream (command); an HTTP upstream takes header, bearer, client_credentials or token_exchange' }] : [];
  }
  const problems: ConfigProblem[] = [];
  // token_exchange is refused below, with its reason.
  if (credential.type === 'header' || credential.type === 'bearer' || credential.type === 'user_token') {
    problems.push({ path: 'upstream.credential.type', message: `a stdio upstream (command) takes its credential as environment: expected none, env or client_credentials, got ${credential.type}` });
  }
  if (Object.keys(upstream.identity_headers).length > 0) problems.push({ path: 'upstream.identity_headers', message: 'a stdio upstream gets no headers: use identity_env' });
  if (upstream.strip_response_headers.length > 0) problems.push({ path: 'upstream.strip_response_headers', message: 'only for an HTTP upstream (url)' });
  const named = new Map<string, string>();
  const claim = (path: string, name: string) => {
    const earlier = named.get(name);
    if (earlier) problems.push({ path, message: `${name} is already set by ${earlier}` });
    named.set(name, path);
  };
  if (credential.type === 'env') claim('upstream.credential.name', credential.name);
  if (credential.type === 'client_credentials' && credential.env) claim('upstream.credential.env', credential.env);
  for (const name of Object.keys(stdio.identity_env)) claim(`upstream.identity_env.${name}`, name);
  for (const name of Object.keys(stdio.env)) claim(`upstream.env.${name}`, name);
  for (const name of stdio.env_passthrough) claim(`upstream.env_passthrough`, name);
  return problems;
}

/** A token credential needs one place to get tokens and the means to authenticate there, and fits its upstream kind. */
function tokenCredentialProblems(credential: Credential, stdio: boolean): ConfigProblem[] {
  if (credential.type !== 'client_credentials' && credential.type !== 'token_exchange') return [];
  const problems: ConfigProblem[] = [];
  const at = (key: string, message: string) => problems.push({ path: `upstream.credential.${key}`, message });
  if ((credential.issuer === undefined) === (credential.token_endpoint === undefined)) at('issuer', 'give exactly one of issuer (its token endpoint is discovered) and token_endpoint');
  if (credential.auth_method === 'private_key_jwt') {
    if (!credential.private_key) at('private_key', 'required with auth_method private_key_jwt: a private JWK file, e.g. ${file:/var/run/secrets/upstream/key.jwk}');
    if (credential.client_secret) at('client_secret', 'not used with auth_method private_key_jwt');
  } else {
    if (!credential.client_secret) at('client_secret', `required with auth_method ${credential.auth_method}`);
    if (credential.private_key) at('private_key', 'only with auth_method private_key_jwt');
  }
  if (credential.type === 'token_exchange') {
    if (stdio) at('type', "a stdio child lives longer than a user's exchanged token and could not get a fresh one: use client_credentials (or none/env) for a stdio upstream");
    if (credential.profile === 'entra_obo' && credential.scope.length === 0) at('scope', 'Entra ID on-behalf-of needs the upstream scope, e.g. [api://upstream-app/.default]');
    if (credential.profile === 'rfc8693' && !credential.resource && !credential.audience) at('audience', 'name the upstream: audience, resource, or both');
  }
  if (credential.type === 'client_credentials') {
    if (stdio && !credential.env) at('env', 'a stdio child gets its token as an environment variable: name it');
    if (!stdio && credential.env) at('env', 'only for a stdio upstream (command)');
  }
  return problems;
}
