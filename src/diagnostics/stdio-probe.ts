import { pino } from 'pino';
import { Registry } from 'prom-client';
import { isJSONRPCErrorResponse, isJSONRPCResultResponse, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { CredentialConfig } from '../config/schema.ts';
import type { StdioSettings } from '../config/upstream-schema.ts';
import { StdioMetrics } from '../observability/stdio-metrics.ts';
import { ChildEnvironments } from '../upstream/stdio/child-environment.ts';
import { McpChild } from '../upstream/stdio/child-process.ts';
import { PROBE_INITIALIZE } from './probe-initialize.ts';

type Report = (what: string, detail: string) => void;

/**
 * A stdio upstream is probed as a session would start it: the command with the environment a child
 * gets (no identity claims, there is no user), an initialize within startup_timeout, then the end.
 */
export async function probeStdioUpstream(settings: StdioSettings, credential: CredentialConfig, pass: Report, fail: Report): Promise<void> {
  const what = `stdio upstream ${settings.command.join(' ')}`;
  const environments = new ChildEnvironments(settings, credential);
  const missing = environments.missing();
  const environment = environments.for({ issuer: 'mcp-warden check', subject: undefined, clientId: undefined, scopes: new Set(), expiresAt: undefined, claims: {} });
  environments.close();
  for (const problem of missing) fail(problem.path, problem.message);
  if (!environment.ok) return;
  let answered: (message: JSONRPCMessage | undefined) => void = () => undefined;
  const answer = new Promise<JSONRPCMessage | undefined>((resolve) => (answered = resolve));
  let exit = '';
  const child = new McpChild(settings, environment.env, pino({ level: 'silent' }), new StdioMetrics(new Registry(), () => 0), {
    onMessage: (message) => {
      if ((isJSONRPCResultResponse(message) || isJSONRPCErrorResponse(message)) && message.id === PROBE_INITIALIZE.id) answered(message);
    },
    onExit: ({ code, signal, spawnError }) => {
      exit = spawnError ? `could not start (${spawnError})` : `exited (code ${code}, signal ${signal})`;
      answered(undefined);
    },
  });
  const timer = setTimeout(() => answered(undefined), settings.startup_timeout);
  child.send(PROBE_INITIALIZE);
  const message = await answer;
  clearTimeout(timer);
  // Only an exit before the answer (or its absence) explains it; the one end() causes does not.
  const early = exit;
  await child.end(settings.kill_grace);
  const server = message && isJSONRPCResultResponse(message) ? (message.result as { serverInfo?: unknown }).serverInfo : undefined;
  if (server) pass(what, `answers initialize: ${JSON.stringify(server)} (pid ${child.pid}, ended again)`);
  else if (message) fail(what, `initialize answered with an error: ${JSON.stringify((message as { error?: unknown }).error)}`);
  else fail(what, early || `no answer to initialize within ${settings.startup_timeout} ms`);
}
