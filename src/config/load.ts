import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { ConfigError, type ConfigProblem } from './errors.ts';
import { configSchema, type Config } from './schema.ts';
import { legacyClientProblems } from './legacy-client-rules.ts';
import { upstreamProblems } from './upstream-rules.ts';
import { brokerProblems, scopeDescriptionProblems } from './broker-rules.ts';
import { isLoopbackHost } from './urls.ts';

/** Reads, substitutes and validates a YAML config file. Throws ConfigError listing every problem. */
export function loadConfigFile(path: string): Config {
  let source: string;
  try {
    source = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(path, [{ path: '', message: `cannot read the config file (${(error as NodeJS.ErrnoException).code ?? 'error'})` }]);
  }
  return parseConfigText(source, path);
}

export function parseConfigText(source: string, name = 'config'): Config {
  const document = parseDocument(source, { prettyErrors: true, uniqueKeys: true });
  if (document.errors.length > 0) {
    throw new ConfigError(
      name,
      document.errors.map((error) => ({
        path: error.linePos ? `line ${error.linePos[0].line}, column ${error.linePos[0].col}` : '',
        message: `invalid YAML: ${yamlProblem(error.message)}`,
      })),
    );
  }
  const raw: unknown = document.toJS();
  if (raw === null || raw === undefined) throw new ConfigError(name, [{ path: '', message: 'the config is empty' }]);
  return validateConfig(raw, name);
}

/**
 * What the YAML parser found wrong, without the position it appends (" at line 2, column 1:" and an
 * excerpt of the source, which could show a secret written in the file by mistake): the position is
 * given beside it.
 */
function yamlProblem(message: string): string {
  const first = (message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
  // "Flow map in …" reads as a sentence start after "invalid YAML:"; an acronym ("YAML …") is kept.
  return /^[A-Z][a-z]/.test(first) ? first[0]!.toLowerCase() + first.slice(1) : first;
}

export function validateConfig(raw: unknown, name = 'config'): Config {
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.flatMap(toProblems);
    // Cross-field checks do not run on a config with other problems; this one is worth naming anyway.
    const given = typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>) : {};
    const servers = given.authorization_servers;
    if ((servers === undefined || (Array.isArray(servers) && servers.length === 0)) && given.broker === undefined) problems.push(NO_ISSUER);
    throw new ConfigError(name, problems);
  }
  const problems = crossFieldProblems(parsed.data);
  if (problems.length > 0) throw new ConfigError(name, problems);
  return parsed.data;
}

const NO_ISSUER: ConfigProblem = { path: 'authorization_servers', message: 'at least one authorization server is required, unless broker is configured' };

function toProblems(issue: z.core.$ZodIssue): ConfigProblem[] {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => ({ path: formatPath([...issue.path, key]), message: 'unknown key' }));
  }
  if (issue.code === 'invalid_type' && issue.input === undefined) {
    return [{ path: formatPath(issue.path), message: `required (expected ${issue.expected})` }];
  }
  return [{ path: formatPath(issue.path), message: issue.message }];
}

export function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((out, part) => (typeof part === 'number' ? `${out}[${part}]` : out ? `${out}.${String(part)}` : String(part)), '');
}

/** Checks that need more than one field: they run only once every field is well-formed. */
function crossFieldProblems(config: Config): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const requireSecureUrl = (path: string, value: string | undefined) => {
    if (value === undefined || config.insecure_allow_http) return;
    const url = new URL(value);
    if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
      problems.push({ path, message: 'plain http:// is allowed only for loopback hosts; use https:// (or insecure_allow_http for a lab setup)' });
    }
  };
  requireSecureUrl('resource.url', config.resource.url);
  const { credential: upstreamCredential } = config.upstream;
  if (upstreamCredential.type === 'client_credentials' || upstreamCredential.type === 'token_exchange') {
    // The client's secret, and for an exchange the user's token, travel to this endpoint.
    requireSecureUrl('upstream.credential.issuer', upstreamCredential.issuer);
    requireSecureUrl('upstream.credential.token_endpoint', upstreamCredential.token_endpoint);
  }
  if (config.authorization_servers.length === 0 && !config.broker) problems.push(NO_ISSUER);
  problems.push(...brokerProblems(config, requireSecureUrl));
  problems.push(...scopeDescriptionProblems(config));
  const seen = new Set<string>();
  config.authorization_servers.forEach((server, index) => {
    requireSecureUrl(`authorization_servers[${index}].issuer`, server.issuer);
    requireSecureUrl(`authorization_servers[${index}].jwks_uri`, server.jwks_uri);
    requireSecureUrl(`authorization_servers[${index}].introspection.endpoint`, server.introspection?.endpoint);
    if (!server.verify_jwt && !server.introspection) {
      problems.push({ path: `authorization_servers[${index}]`, message: 'with verify_jwt off, introspection is required: no token could be verified' });
    }
    if (seen.has(server.issuer)) problems.push({ path: `authorization_servers[${index}].issuer`, message: 'this issuer is listed twice' });
    seen.add(server.issuer);
  });
  config.policy.rules.forEach((rule, index) => {
    const { method, tool, prompt, uri } = rule.match;
    const expected = tool !== undefined ? 'tools/call' : prompt !== undefined ? 'prompts/get' : uri !== undefined ? 'resources/read' : undefined;
    if ([tool, prompt, uri].filter((value) => value !== undefined).length > 1) {
      problems.push({ path: `policy.rules[${index}].match`, message: 'name at most one of tool, prompt and uri' });
    } else if (expected && method !== expected) {
      problems.push({ path: `policy.rules[${index}].match.method`, message: `must be ${expected} when the rule names a ${tool !== undefined ? 'tool' : prompt !== undefined ? 'prompt' : 'uri'}` });
    }
  });
  const credential = config.upstream.credential;
  if (credential.type === 'user_token' && !config.broker) {
    problems.push({ path: 'upstream.credential.type', message: 'user_token needs broker mode: only the broker holds the identity provider tokens of its users' });
  } else if (credential.type === 'user_token' && !config.broker?.encryption_key) {
    problems.push({ path: 'broker.encryption_key', message: 'required with upstream.credential user_token: the identity provider tokens are kept encrypted' });
  }
  problems.push(...upstreamProblems(config.upstream));
  problems.push(...legacyClientProblems(config));
  const credentialHeader =
    credential.type === 'header' ? credential.name
    : credential.type === 'bearer' || credential.type === 'user_token' ? 'authorization'
    : credential.type === 'client_credentials' || credential.type === 'token_exchange' ? credential.header
    : undefined;
  for (const name of Object.keys(config.upstream.identity_headers)) {
    if (credentialHeader && normalizeHeaderName(name) === normalizeHeaderName(credentialHeader)) {
      problems.push({ path: `upstream.identity_headers.${name}`, message: 'collides with the upstream credential header' });
    }
  }
  return problems;
}

/** `X_Api_Key` and `x-api-key` reach many servers as the same header, so they are compared as one. */
export function normalizeHeaderName(name: string): string {
  return name.toLowerCase().replaceAll('_', '-');
}
