import type { CredentialConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { UpstreamTokenMetrics } from '../observability/upstream-token-metrics.ts';
import { staticCredential, userTokenCredential, type UpstreamCredential, type UserTokenSource } from './credential.ts';
import { ExchangedTokens } from './tokens/exchanged-tokens.ts';
import { MachineToken } from './tokens/machine-token.ts';

/** What the credentials that are not static need besides their config. */
export interface CredentialParts {
  /** Broker mode: the identity provider's tokens of its users. */
  readonly users?: UserTokenSource;
  readonly tokenMetrics?: UpstreamTokenMetrics;
  readonly logger?: Logger;
  /** insecure_allow_http: a discovered token endpoint may then be plain http. */
  readonly allowHttp?: boolean;
}

/** The credential the config names; each type is its own module, this only picks one. */
export function createUpstreamCredential(config: CredentialConfig, parts: CredentialParts = {}): UpstreamCredential {
  switch (config.type) {
    case 'client_credentials':
    case 'token_exchange': {
      const { tokenMetrics, logger } = parts;
      if (!tokenMetrics || !logger) throw new TypeError(`an upstream credential of type ${config.type} needs its metrics and logger`);
      const allowHttp = parts.allowHttp ?? false;
      return config.type === 'client_credentials' ? new MachineToken(config, tokenMetrics, logger, allowHttp) : new ExchangedTokens(config, tokenMetrics, allowHttp);
    }
    case 'user_token':
      return userTokenCredential(parts.users);
    default:
      return staticCredential(config);
  }
}
