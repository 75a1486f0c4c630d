import { z } from 'zod';
import { configSchema } from './schema.ts';

/**
 * The config's JSON Schema, generated from the validator itself, so editors complete and check the
 * same keys the proxy accepts. It describes what is written in the YAML (strings such as `30s` and
 * `${env:NAME}`), not what they become.
 */
export function configJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' }),
    title: 'mcp-warden configuration',
  };
}
