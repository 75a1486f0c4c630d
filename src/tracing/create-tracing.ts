import type { Config } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import { resolveTracingSettings } from './settings.ts';
import type { Tracing } from './tracing.ts';

/**
 * The tracing `tracing` and the OTEL_* variables ask for, or undefined when it is off: then nothing is
 * traced and nothing costs, not even loading the SDK.
 */
export async function createTracing(config: Config, logger: Logger, version: string, env: NodeJS.ProcessEnv = process.env): Promise<Tracing | undefined> {
  const settings = resolveTracingSettings(config.tracing, env);
  if (!settings) return undefined;
  const { Tracing } = await import('./tracing.ts');
  const endpoint = new URL(settings.url);
  // Origin and path only: a URL from the environment may carry credentials.
  logger.info({ endpoint: `${endpoint.origin}${endpoint.pathname}`, service_name: settings.serviceName, sample_ratio: settings.sampleRatio }, 'tracing on');
  return new Tracing(settings, logger, version);
}
