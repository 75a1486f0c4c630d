#!/usr/bin/env node
import './lifecycle/gc-flags.ts';
import { parseArgs } from 'node:util';
import { ConfigError } from './config/errors.ts';
import { loadConfigFile } from './config/load.ts';
import { checkDeployment, clientView } from './diagnostics/check.ts';
import { startWarden } from './server.ts';

const EXIT_CONFIG = 2;
const USAGE = `usage: mcp-warden --config FILE         run (or MCP_WARDEN_CONFIG=FILE)
       mcp-warden check --config FILE   probe issuers, keys, introspection and the upstream, then exit

Puts OAuth 2.1 in front of an unmodified MCP server. See config.example.yaml.`;

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const path = values.config ?? process.env.MCP_WARDEN_CONFIG;
  if (!path) {
    console.error(`mcp-warden: no config given\n${USAGE}`);
    process.exit(EXIT_CONFIG);
  }
  const config = loadConfigFile(path);
  if (positionals[0] === 'check') {
    const results = await checkDeployment(config);
    console.log(['mcp-warden check', ...clientView(config).map((line) => `  ${line}`), ''].join('\n'));
    for (const result of results) console.log(`  ${result.ok ? 'ok  ' : 'FAIL'}  ${result.what}: ${result.detail}`);
    const failed = results.filter((result) => !result.ok).length;
    console.log(failed === 0 ? '\nall checks passed' : `\n${failed} check(s) failed`);
    process.exit(failed === 0 ? 0 : 1);
  }
  if (positionals.length > 0) {
    console.error(`mcp-warden: unknown command ${positionals[0]}\n${USAGE}`);
    process.exit(EXIT_CONFIG);
  }
  const warden = await startWarden(config);
  let signals = 0;
  const stop = (signal: NodeJS.Signals) => {
    signals += 1;
    // A second signal means the operator will not wait for the drain.
    if (signals > 1) process.exit(1);
    console.error(`mcp-warden: ${signal}, draining`);
    warden.shutdown().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error('mcp-warden: shutdown failed', error);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    console.error(`mcp-warden: invalid configuration\n${error.message}`);
    process.exit(EXIT_CONFIG);
  }
  console.error('mcp-warden: failed to start:', error instanceof Error ? error.message : error);
  process.exit(1);
});
