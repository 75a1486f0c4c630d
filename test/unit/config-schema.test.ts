import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { configJsonSchema } from '../../src/config/json-schema.ts';

describe('the config JSON Schema', () => {
  it('committed at schema/config.schema.json equals the one generated from the validator (npm run schema)', () => {
    const committed = JSON.parse(readFileSync(new URL('../../schema/config.schema.json', import.meta.url), 'utf8'));
    expect(committed).toEqual(configJsonSchema());
  });

  it('knows every top-level key the example config uses, and the example points editors at it', () => {
    const schema = configJsonSchema() as { properties: Record<string, unknown>; additionalProperties: boolean };
    const text = readFileSync(new URL('../../config.example.yaml', import.meta.url), 'utf8');
    expect(text.split('\n')[0]).toBe('# yaml-language-server: $schema=./schema/config.schema.json');
    for (const key of Object.keys(parse(text) as object)) expect(schema.properties, key).toHaveProperty(key);
    expect(schema.additionalProperties).toBe(false);
  });
});
