import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { Metrics } from '../../src/observability/metrics.ts';

const read = (path: string) => readFileSync(new URL(`../../deploy/observability/${path}`, import.meta.url), 'utf8');

async function registeredNames(): Promise<Set<string>> {
  const metrics = new Metrics(['https://idp.example.com'], { version: 'test' });
  return new Set((await metrics.registry.getMetricsAsJSON()).map((metric) => metric.name));
}

/** Metric names an expression uses, with histogram series suffixes folded into the histogram. */
function namesIn(expression: string): string[] {
  return [...expression.matchAll(/mcp_warden_[a-z0-9_]+/g)].map(([name]) => name.replace(/_(bucket|sum|count)$/, ''));
}

describe('deploy/observability', () => {
  it('the Grafana dashboard parses and queries only metrics the code registers', async () => {
    const dashboard = JSON.parse(read('grafana-dashboard.json')) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> };
    const registered = await registeredNames();
    const used = dashboard.panels.flatMap((panel) => panel.targets.flatMap((target) => namesIn(target.expr)));
    expect(dashboard.panels.length).toBeGreaterThanOrEqual(6);
    expect(used.filter((name) => !registered.has(name))).toEqual([]);
    for (const needed of ['mcp_warden_auth_failures_total', 'mcp_warden_token_verification_seconds', 'mcp_warden_introspection_cache_lookups_total', 'mcp_warden_upstream_errors_total', 'mcp_warden_open_streams', 'mcp_warden_requests_total']) {
      expect(used, needed).toContain(needed);
    }
  });

  it('the alert rules parse and use only metrics the code registers', async () => {
    const rules = parse(read('prometheus-rules.yaml')) as { kind: string; spec: { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> } };
    expect(rules.kind).toBe('PrometheusRule');
    const all = rules.spec.groups.flatMap((group) => group.rules);
    const registered = await registeredNames();
    expect(all.flatMap((rule) => namesIn(rule.expr)).filter((name) => !registered.has(name))).toEqual([]);
    expect(all.map((rule) => rule.alert).sort()).toEqual(['McpWardenAuthFailureSpike', 'McpWardenBrokerReplay', 'McpWardenJwksFetchFailing', 'McpWardenNoTraffic', 'McpWardenUpstreamErrors', 'McpWardenVerifierUnavailable']);
    expect(all.find((rule) => rule.alert === 'McpWardenVerifierUnavailable')!.expr).toContain('reason="verifier_unavailable"');
  });
});
