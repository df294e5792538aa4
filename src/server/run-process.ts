/**
 * `lb run` in one process: start, reload on save or SIGHUP (a bad save is
 * logged and changes nothing), shut down gracefully on SIGTERM/SIGINT.
 */
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { createHash } from 'node:crypto';
import { pino } from 'pino';
import { loadConfigText } from '../config/load.js';
import { ConfigWatcher } from './config-watcher.js';
import { problemsOf, locatePluginFailure } from './reload-history.js';
import { Switchyard, type RootLogger } from './switchyard.js';

export interface RunOptions {
  readonly file: string;
  readonly watch: boolean;
  readonly logLevel: string;
}

export async function runProcess(options: RunOptions): Promise<void> {
  const logger = pino({ name: 'switchyard', level: options.logLevel }) as unknown as RootLogger;
  const lb = await startFromFile(options.file, logger);

  let reloading = Promise.resolve();
  /**
   * `force` (SIGHUP) reloads even when lb.toml is unchanged: plugin modules
   * and TLS certificates it names may have changed on their own.
   */
  const reload = (trigger: string, force: boolean) => {
    reloading = reloading.then(async () => {
      try {
        if (!force) {
          const source = await readFile(options.file);
          // Saving in place truncates the file before writing it: an empty
          // file is a save in progress (lb.toml is never valid empty), and
          // the write that completes it raises another event.
          if (source.length === 0) {
            logger.debug({ trigger }, 'lb.toml is empty, probably mid-save: waiting for the next change');
            return;
          }
          if (createHash('sha256').update(source).digest('hex') === lb.generation.config.hash) {
            logger.debug({ trigger }, 'lb.toml saved without changes: nothing to reload');
            return;
          }
        }
        await lb.reloadFile(options.file, trigger);
      } catch (err) {
        const problems = problemsOf(err);
        logger.error(
          { trigger, generation: lb.generation.id, problems },
          `configuration not applied, still serving generation ${lb.generation.id}:\n${problems.join('\n')}`,
        );
      }
    });
  };

  const watcher = options.watch ? new ConfigWatcher(options.file, () => reload('file saved', false)) : undefined;
  if (watcher) {
    await watcher.start();
    // A save between reading the file at startup and the watcher being ready
    // raised no event: compare once now (a no-op when nothing changed).
    reload('file saved', false);
    logger.info({ watching: options.file }, `watching ${options.file} for changes`);
  }
  process.on('SIGHUP', () => reload('SIGHUP', true));

  let shuttingDown = false;
  const shutdown = (signal: 'SIGTERM' | 'SIGINT') => {
    if (shuttingDown) {
      // A second signal: the operator does not want to wait for in-flight requests.
      logger.warn({ signal }, `${signal} again: exiting now without waiting for in-flight requests`);
      process.exit(128 + os.constants.signals[signal]);
    }
    shuttingDown = true;
    logger.info({ signal }, `${signal}: shutting down gracefully (send it again to exit at once)`);
    void (async () => {
      await watcher?.close();
      await lb.close();
      logger.info('shutdown complete');
      process.exit(0);
    })();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

/** Starts from a file; a plugin that fails to start is reported at its place in the file. */
async function startFromFile(file: string, logger: RootLogger): Promise<Switchyard> {
  const source = await readFile(file, 'utf8');
  const config = await loadConfigText(source, file);
  try {
    return await Switchyard.start(config, { logger });
  } catch (err) {
    throw locatePluginFailure(err, config.file, source);
  }
}
