#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { ConfigError } from './config/errors.ts';
import { loadConfigFile } from './config/load.ts';
import { startWarden } from './server.ts';

const EXIT_CONFIG = 2;
const USAGE = `usage: mcp-warden --config FILE   (or MCP_WARDEN_CONFIG=FILE)

Puts OAuth 2.1 in front of an unmodified MCP server. See config.example.yaml.`;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } }, strict: true });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const path = values.config ?? process.env.MCP_WARDEN_CONFIG;
  if (!path) {
    console.error(`mcp-warden: no config given\n${USAGE}`);
    process.exit(EXIT_CONFIG);
  }
  const warden = await startWarden(loadConfigFile(path));
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
