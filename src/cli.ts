#!/usr/bin/env node
import './lifecycle/gc-flags.ts';
import { parseArgs } from 'node:util';
import { ConfigError } from './config/errors.ts';
import { loadConfigFile } from './config/load.ts';
import { requireSecrets } from './config/secret-problems.ts';
import { readTlsPair } from './lifecycle/tls-listener.ts';
import { packageVersion } from './package-version.ts';

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_CONFIG = 2;
const COMMANDS = ['run', 'check', 'validate'] as const;
type Command = (typeof COMMANDS)[number];

const USAGE = `usage: mcp-warden [run] --config FILE     run the proxy
       mcp-warden check --config FILE     validate, then probe issuer discovery, keys, introspection and
                                          the upstream; print what a client will see
       mcp-warden validate --config FILE  validate offline and exit: YAML, schema, cross-field rules, and
                                          that every \${env:NAME} and \${file:/path} can be read now;
                                          no network request is made (for CI and init containers)
       mcp-warden --version | --help

options:
  -c, --config FILE  the YAML config (default: $MCP_WARDEN_CONFIG)
  -v, --version      print "mcp-warden <version>" and exit
  -h, --help         print this help and exit

signals (run): SIGTERM or SIGINT drain and stop; SIGHUP reloads the config file (a change of its content
  reloads it too); an invalid file or a change that needs a restart is logged and the running config stays

exit codes:
  0  run: drained and stopped after SIGTERM or SIGINT; check: every probe passed; validate: the config is valid
  1  run: failed at start for a reason other than the config, failed to shut down, or a second signal
     cut the drain short; check: a probe failed
  2  the config is invalid or a secret it names cannot be read (run exits before it listens), or the
     command line is wrong

Puts OAuth 2.1 in front of an unmodified MCP server. See config.example.yaml.`;

/** A command line that names no command we have, an unknown option, or a flag without its value. */
class UsageError extends Error {}

function parseCommandLine(argv: string[]): { command: Command; config: string | undefined; help: boolean; version: boolean } {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' }, version: { type: 'boolean', short: 'v' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    // parseArgs throws a TypeError with a code (ERR_PARSE_ARGS_*); its first sentence says what is wrong.
    throw new UsageError(firstSentence((error as Error).message));
  }
  const { values, positionals } = parsed;
  const [command = 'run', ...extra] = positionals;
  if (!isCommand(command)) throw new UsageError(`unknown command ${command}`);
  if (extra.length > 0) throw new UsageError(`unexpected argument ${extra[0]}`);
  return { command, config: values.config, help: values.help ?? false, version: values.version ?? false };
}

function isCommand(name: string): name is Command {
  return (COMMANDS as readonly string[]).includes(name);
}

function firstSentence(message: string): string {
  const sentence = message.split(/\.(\s|$)/)[0] ?? message;
  return sentence.charAt(0).toLowerCase() + sentence.slice(1);
}

async function main(): Promise<void> {
  const { command, config: configOption, help, version } = parseCommandLine(process.argv.slice(2));
  if (help) {
    console.log(USAGE);
    return;
  }
  if (version) {
    console.log(`mcp-warden ${packageVersion()}`);
    return;
  }
  const path = configOption ?? process.env.MCP_WARDEN_CONFIG;
  if (!path) throw new UsageError('no config given');
  const config = loadConfigFile(path);
  if (command === 'check') {
    // A secret that cannot be read is one of the probes' findings here, not a reason to stop.
    const { checkDeployment, clientView } = await import('./diagnostics/check.ts');
    const results = await checkDeployment(config);
    console.log(['mcp-warden check', ...clientView(config).map((line) => `  ${line}`), ''].join('\n'));
    for (const result of results) console.log(`  ${result.ok ? 'ok  ' : 'FAIL'}  ${result.what}: ${result.detail}`);
    const failed = results.filter((result) => !result.ok).length;
    console.log(failed === 0 ? '\nall checks passed' : `\n${failed} check(s) failed`);
    process.exit(failed === 0 ? EXIT_OK : EXIT_FAILED);
  }
  requireSecrets(config, path);
  // The certificate and key are plain paths, not secret references: read and matched here as run will.
  const tls = config.listen.tls ? readTlsPair(config.listen.tls) : undefined;
  if (tls && !tls.ok) throw new ConfigError(path, tls.problems);
  if (command === 'validate') {
    console.log(`${path}: valid`);
    return;
  }
  // Loaded only to run, so that validate touches nothing the proxy's wiring does at import.
  const { startWarden } = await import('./server.ts');
  const warden = await startWarden(config, { configFile: path }).catch((error: unknown) => {
    // A problem found while starting is still a problem of this file: name it as the others are.
    throw error instanceof ConfigError ? new ConfigError(path, error.problems) : error;
  });
  let signals = 0;
  const stop = (signal: NodeJS.Signals) => {
    signals += 1;
    // A second signal means the operator will not wait for the drain.
    if (signals > 1) process.exit(EXIT_FAILED);
    console.error(`mcp-warden: ${signal}, draining`);
    warden.shutdown().then(
      () => process.exit(EXIT_OK),
      (error: unknown) => {
        console.error('mcp-warden: shutdown failed', error);
        process.exit(EXIT_FAILED);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // SIGHUP reloads the file now, as a change of its content does within a poll (Kubernetes: a ConfigMap swap).
  process.on('SIGHUP', () => void warden.reloadFile?.());
}

main().catch((error: unknown) => {
  if (error instanceof UsageError) {
    console.error(`mcp-warden: ${error.message}\n${USAGE}`);
    process.exit(EXIT_CONFIG);
  }
  if (error instanceof ConfigError) {
    console.error(`mcp-warden: invalid configuration\n${error.message}`);
    process.exit(EXIT_CONFIG);
  }
  console.error('mcp-warden: failed to start:', error instanceof Error ? error.message : error);
  process.exit(EXIT_FAILED);
});
