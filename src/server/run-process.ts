/**
 * `lb run` in one process: start, reload on save or SIGHUP (a bad save is
 * logged and changes nothing), shut down gracefully on SIGTERM/SIGINT.
 * With `workers` > 1 the process becomes a cluster primary instead
 * (src/cluster/primary.ts); with 1, nothing of the cluster is loaded or run.
 */
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { loadConfigText } from '../config/load.js';
import type { LbConfig } from '../config/types.js';
import { ConfigSaves, readConfigSave, type ConfigSave } from './config-saves.js';
import { ConfigWatcher } from './config-watcher.js';
import { EarlySignals, type StopSignal } from './early-signals.js';
import { createProcessLogger, exitProcess } from './process-log.js';
import { problemsOf, locatePluginFailure } from './reload-history.js';
import { Switchyard, type RootLogger } from './switchyard.js';
import { workerCount } from '../cluster/worker-count.js';

export interface RunOptions {
  readonly file: string;
  readonly watch: boolean;
  readonly logLevel: string;
}

export async function runProcess(options: RunOptions): Promise<void> {
  const signals = new EarlySignals();
  const logger = createProcessLogger(options.logLevel);
  const source = await readFile(options.file, 'utf8');
  const config = await loadConfigText(source, options.file);
  if (workerCount(config.server.workers) > 1) {
    const { runClusterPrimary } = await import('../cluster/primary.js');
    return runClusterPrimary({ ...options, logger, config, source, signals });
  }
  const lb = await startFrom(config, source, logger);

  let reloading = Promise.resolve();
  /** Set on SIGTERM/SIGINT: from then on saves and SIGHUP change nothing, and that is no error (as in a cluster's primary). */
  let shuttingDown = false;
  /**
   * `force` (SIGHUP) reloads even when lb.toml is unchanged: plugin modules
   * and TLS certificates it names may have changed on their own.
   */
  const saves = new ConfigSaves();
  const reload = (trigger: string, force: boolean) => {
    reloading = reloading.then(async () => {
      if (shuttingDown) {
        logger.debug({ trigger }, 'shutting down: lb.toml is not reloaded');
        return;
      }
      let save: ConfigSave | undefined;
      try {
        save = await readConfigSave(options.file);
        const notReload = force ? undefined : saves.whyNotReload(save, lb.generation.config.hash);
        if (notReload !== undefined) {
          logger.debug({ trigger }, notReload);
          return;
        }
        const generation = await lb.reloadText(save.bytes.toString('utf8'), options.file, trigger);
        saves.decided(save, true);
        const workers = workerCount(generation.config.server.workers);
        if (workers > 1) {
          logger.warn({ workers }, `server.workers is now ${workers}: restart lb to serve with ${workers} worker processes; still serving from this one`);
        }
      } catch (err) {
        if (save !== undefined) saves.decided(save, false);
        const problems = problemsOf(err);
        // A reload under way when the shutdown began: it undid itself, nothing went wrong.
        if (shuttingDown) {
          logger.debug({ trigger, problems }, 'shutting down: the reload under way was not applied');
          return;
        }
        logger.error(
          { trigger, generation: lb.generation.id, problems },
          `configuration not applied, still serving generation ${lb.generation.id}:\n${problems.join('\n')}`,
        );
      }
    });
  };

  const watcher = options.watch ? new ConfigWatcher(options.file, () => reload('file saved', false), logger) : undefined;

  const shutdown = (signal: StopSignal) => {
    if (shuttingDown) {
      // A second signal: the operator does not want to wait for in-flight requests.
      logger.warn({ signal }, `${signal} again: exiting now without waiting for in-flight requests`);
      exitProcess(128 + os.constants.signals[signal]);
      return;
    }
    shuttingDown = true;
    logger.info({ signal }, `${signal}: shutting down gracefully (send it again to exit at once)`);
    void (async () => {
      await watcher?.close();
      await lb.close();
      logger.info('shutdown complete');
      exitProcess(0);
    })();
  };
  // Before the watcher starts: lb serves from here on, and a signal must find the graceful path.
  signals.handOver(shutdown, () => reload('SIGHUP', true));

  if (watcher) {
    await watcher.start();
    // A save between reading the file at startup and the watcher being ready
    // raised no event: compare once now (a no-op when nothing changed).
    reload('file saved', false);
    if (!shuttingDown) logger.info({ watching: options.file }, `watching ${options.file} for changes`);
  }
}

/** Starts from a validated config; a plugin that fails to start is reported at its place in the file. */
async function startFrom(config: LbConfig, source: string, logger: RootLogger): Promise<Switchyard> {
  try {
    return await Switchyard.start(config, { logger });
  } catch (err) {
    throw locatePluginFailure(err, config.file, source);
  }
}
