import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { judgeBody } from '../../src/mcp/judge.ts';
import { Policy } from '../../src/mcp/policy.ts';
import { staged, through } from '../helpers/answers.ts';
import { fuzz, fuzzTimeout } from './runs.ts';

interface Kind {
  readonly list: string;
  readonly call: string;
  /** The allowlist's key for this kind. */
  readonly exposeKey: 'tools' | 'prompts' | 'resources';
  /** Where the list result keeps its entries, what names an entry, and what names the target in a call. */
  readonly member: string;
  readonly entryKey: 'name' | 'uri';
  readonly paramKey: 'name' | 'uri';
}

// resources/templates/list is left out on purpose: a template is judged by its `uriTemplate` as written,
// which is not a name any resources/read would send.
const KINDS: readonly Kind[] = [
  { list: 'tools/list', call: 'tools/call', exposeKey: 'tools', member: 'tools', entryKey: 'name', paramKey: 'name' },
  { list: 'prompts/list', call: 'prompts/get', exposeKey: 'prompts', member: 'prompts', entryKey: 'name', paramKey: 'name' },
  { list: 'resources/list', call: 'resources/read', exposeKey: 'resources', member: 'resources', entryKey: 'uri', paramKey: 'uri' },
];

const SCOPES = ['s1', 's2', 's3'];
const REQUIRED = 'base';

/** Names and globs over one tiny alphabet, so that globs hit names often and miss them often. */
const name = fc.string({ unit: fc.constantFrom('a', 'b', '/'), minLength: 1, maxLength: 3 });
const glob = fc.string({ unit: fc.constantFrom('a', 'b', '/', '*', '?'), minLength: 1, maxLength: 3 });

const CALL_OF = { tool: 'tools/call', prompt: 'prompts/get', uri: 'resources/read' } as const;

const scopes = fc.subarray(SCOPES, { minLength: 1 });

/**
 * A rule naming a target must name its call method exactly (config validation); one without a target
 * takes a method glob that hits the call method, the list method (refusing the list itself), another
 * kind's methods, or all of them. Rules for the other kinds stay in, since they must not speak here.
 */
const rule = fc.oneof(
  fc.record({ key: fc.constantFrom('tool', 'prompt', 'uri'), target: glob, scopes }).map(({ key, target, scopes }) => ({ match: { method: CALL_OF[key], [key]: target }, scopes })),
  fc.record({
    method: fc.constantFrom('tools/call', 'prompts/get', 'resources/read', 'tools/*', 'prompts/*', 'resources/*', '*', '*/call', '*/list', 'tools/list', '*s/*'),
    scopes,
  }).map(({ method, scopes }) => ({ match: { method }, scopes })),
);

const setting = fc.record({
  rules: fc.array(rule, { maxLength: 4 }),
  hierarchy: fc.option(fc.dictionary(fc.constantFrom(...SCOPES), fc.subarray(SCOPES)), { nil: undefined }),
  expose: fc.option(fc.array(glob, { maxLength: 3 }), { nil: undefined, freq: 3 }),
  required: fc.boolean(),
  granted: fc.subarray(SCOPES),
  version: fc.constantFrom(undefined, '2025-06-18', '2026-07-28'),
  names: fc.uniqueArray(name, { maxLength: 8 }),
});

type Setting = typeof setting extends fc.Arbitrary<infer T> ? T : never;

function policyOf(kind: Kind, { rules, hierarchy, expose, required }: Setting) {
  return validateConfig({
    resource: { url: 'https://mcp.example.com/mcp' },
    authorization_servers: [{ issuer: 'https://idp.example.com' }],
    upstream: { url: 'http://127.0.0.1:3000' },
    tokens: { required_scopes: required ? [REQUIRED] : [] },
    policy: {
      rules,
      ...(hierarchy && { scope_hierarchy: hierarchy }),
      ...(expose && { expose: { [kind.exposeKey]: expose } }),
    },
  });
}

const rpc = (method: string, params?: Record<string, unknown>) => JSON.stringify({ jsonrpc: '2.0', id: 1, method, ...(params && { params }) });

/** What the caller is shown of a list of every name; undefined when the list request itself is refused. */
async function listed(kind: Kind, config: Config, policy: Policy, granted: ReadonlySet<string>, setup: Setting): Promise<Set<string> | undefined> {
  const headers = setup.version === undefined ? {} : { 'mcp-protocol-version': setup.version };
  const { judgement, stream } = await staged(config, policy, rpc(kind.list), granted, headers);
  if (!judgement.allowed) return undefined;
  const entries = setup.names.map((target) => ({ [kind.entryKey]: target, description: 'x' }));
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { [kind.member]: entries, nextCursor: 'next' } });
  const shown = stream ? JSON.parse((await through(stream, [body])).toString()) : JSON.parse(body);
  return new Set((shown.result[kind.member] as Array<Record<string, string>>).map((entry) => entry[kind.entryKey]!));
}

describe('one decision serves a list and the call that uses what it names', () => {
  it.each(KINDS)(
    '$list never shows what $call refuses, and never hides what it allows',
    async (kind) => {
      const seen = { listedAndAllowed: 0, hiddenAndRefused: 0, listRefused: 0 };
      await fc.assert(
        fc.asyncProperty(setting, async (setup) => {
          const config = policyOf(kind, setup);
          const policy = new Policy(config);
          // A token without the required scopes is refused before any body is read.
          const granted = new Set(setup.required ? [REQUIRED, ...setup.granted] : setup.granted);
          const shown = await listed(kind, config, policy, granted, setup);
          if (shown === undefined) {
            seen.listRefused += 1;
            return;
          }
          for (const target of setup.names) {
            const call = judgeBody({}, Buffer.from(rpc(kind.call, { [kind.paramKey]: target, arguments: {} })), granted, false, policy);
            expect(shown.has(target), `${target}: listed ${shown.has(target)}, call allowed ${call.allowed}`).toBe(call.allowed);
            if (call.allowed) seen.listedAndAllowed += 1;
            else seen.hiddenAndRefused += 1;
          }
        }),
        fuzz,
      );
      // Agreement is vacuous if every name went one way, or nearly every list was refused before it was read.
      expect(seen.listedAndAllowed).toBeGreaterThan(0);
      expect(seen.hiddenAndRefused).toBeGreaterThan(0);
      expect(seen.listRefused).toBeLessThan(fuzz.numRuns / 2);
    },
    fuzzTimeout,
  );
});
