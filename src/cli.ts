#!/usr/bin/env node
/**
 * `lb run`, `lb validate`, `lb schema`. Exit codes: 0 fine, 1 invalid
 * configuration, 2 usage or I/O problem.
 */
import { Command, CommanderError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError, formatIssue } from './config/issues.js';
import { loadConfigFile } from './config/load.js';
import { fullSchema } from './config/full-schema.js';

const EXIT_INVALID = 1;
const EXIT_USAGE = 2;

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

function reportLoadFailure(err: unknown, file: string): number {
  if (err instanceof ConfigError) {
    for (const issue of err.issues) process.stderr.write(`${formatIssue(issue)}\n`);
    process.stderr.write(`${err.issues.length} problem(s) in ${file}\n`);
    return EXIT_INVALID;
  }
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ENOENT') process.stderr.write(`${file}: no such file; pass the config with -c PATH\n`);
  else if (e.code === 'EISDIR') process.stderr.write(`${file}: is a directory; pass the config file itself with -c PATH/lb.toml\n`);
  else if (e.code === 'EACCES') process.stderr.write(`${file}: permission denied; make it readable by this user, or pass another with -c PATH\n`);
  else process.stderr.write(`${file}: ${e.message}\n`);
  return EXIT_USAGE;
}

const program = new Command('lb')
  .description('Switchyard: an HTTP load balancer and reverse proxy configured by one hot-reloaded lb.toml.')
  .version(pkg.version)
  .showHelpAfterError('(run lb --help for usage)')
  .exitOverride();

program
  .command('run')
  .description('Start the load balancer, reloading the config whenever the file is saved (SIGHUP reloads too).')
  .option('-c, --config <file>', 'configuration file', 'lb.toml')
  .option('--no-watch', 'do not watch the config file for changes')
  .addOption(
    new Option('--log-level <level>', 'least severe level logged')
      .choices(['trace', 'debug', 'info', 'warn', 'error'])
      .env('LB_LOG_LEVEL')
      .default('info'),
  )
  .action(async (opts: { config: string; watch: boolean; logLevel: string }) => {
    const file = resolve(opts.config);
    try {
      // Imported here: validate and schema need none of the server (undici, pino, the proxy).
      const { runProcess } = await import('./server/run-process.js');
      await runProcess({ file, watch: opts.watch, logLevel: opts.logLevel });
    } catch (err) {
      process.exitCode = reportLoadFailure(err, opts.config);
    }
  });

program
  .command('validate')
  .description('Check a config file: prints every problem as file:line:col key.path: message. Exit 0 valid, 1 invalid, 2 unreadable.')
  .option('-c, --config <file>', 'configuration file', 'lb.toml')
  .action(async (opts: { config: string }) => {
    try {
      await loadConfigFile(opts.config);
      process.stdout.write(`${resolve(opts.config)}: valid\n`);
    } catch (err) {
      process.exitCode = reportLoadFailure(err, opts.config);
    }
  });

program
  .command('schema')
  .description('Print the JSON Schema of lb.toml (for editor completion, e.g. with Taplo or Even Better TOML).')
  .action(async () => {
    process.stdout.write(`${JSON.stringify(await fullSchema(), null, 2)}\n`);
  });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode === 0 ? 0 : EXIT_USAGE;
  } else {
    throw err;
  }
}
