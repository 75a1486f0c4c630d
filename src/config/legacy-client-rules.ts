import type { ConfigProblem } from './errors.ts';
import type { Config } from './schema.ts';

/** Where 2025-03-26 clients look at the MCP server's origin; `legacy_clients` answers these paths itself. */
export const LEGACY_CLIENT_PATHS = ['/.well-known/oauth-authorization-server', '/authorize', '/token', '/register'] as const;

/**
 * What `legacy_clients: true` needs: one authorization server whose metadata and endpoints the origin
 * can stand for, no broker (which already is the origin's authorization server), and a resource that
 * does not live at one of the paths taken over.
 */
export function legacyClientProblems(config: Config): ConfigProblem[] {
  if (!config.legacy_clients) return [];
  const problems: ConfigProblem[] = [];
  if (config.broker) {
    problems.push({
      path: 'legacy_clients',
      message:
        'not with broker: the broker is the authorization server, and with broker.issuer at the origin (the default) it serves /.well-known/oauth-authorization-server there itself, which 2025-03-26 clients read; remove legacy_clients',
    });
  } else if (config.authorization_servers.length !== 1) {
    problems.push({
      path: 'legacy_clients',
      message: `needs exactly one authorization server (found ${config.authorization_servers.length}): a 2025-03-26 client knows only the origin, so the origin can stand for one issuer only`,
    });
  }
  const resourcePath = new URL(config.resource.url).pathname;
  if ((LEGACY_CLIENT_PATHS as readonly string[]).includes(resourcePath)) {
    problems.push({ path: 'legacy_clients', message: `resource.url's path ${resourcePath} is one of the paths legacy_clients answers itself` });
  }
  return problems;
}
