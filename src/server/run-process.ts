/**
 * `lb run` in one process: start, reload on save or SIGHUP (a bad save is
 * logged and changes nothing), shut down gracefully on SIGTERM/SIGINT.
 */
import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { pino } from 'pino';
import { ConfigError, formatIssue } from '../config/issues.js';
import { loadConfigFile } from '../config/load.js';
import { ConfigWatcher } from './config-watcher.js';
import { Switchyard, type RootLogger } from './switchyard.js';

export interface RunOptions {
  readonly file: string;
  readonly watch: boolean;
  readonly logLevel: string;
}

export async function runProcess(options: RunOptions): Promise<void> {
  const logger = pino({ name: 'switchyard', level: options.logLevel }) as unknown as RootLogger;
  const lb = await Switchyard.start(await loadConfigFile(options.file), { logger });

  let reloading = Promise.resolve();
  const reload = (why: string) => {
    reloading = reloading.then(async () => {
      try {
        const source = await readFile(options.file);
        if (createHash('sha256').update(source).digest('hex') === lb.generation.config.hash) return;
        await lb.reloadFile(options.file);
      } catch (err) {
        if (err instanceof ConfigError) {
          logger.error(
            { trigger: why, issues: err.issues.map(formatIssue) },
            `configuration not applied, still serving generation ${lb.generation.id}:\n${err.issues.map(formatIssue).join('\n')}`,
          );
        } else {
          logger.error({ trigger: why, err }, `configuration not applied, still serving generation ${lb.generation.id}: ${(err as Error).message}`);
        }
      }
    });
  };

  const watcher = options.watch ? new ConfigWatcher(options.file, () => reload('file saved')) : undefined;
  await watcher?.start();
  process.on('SIGHUP', () => reload('SIGHUP'));

  const shutdown = (signal: string) => {
    logger.info({ signal }, `${signal}: shutting down gracefully`);
    void (async () => {
      await watcher?.close();
      await lb.close();
      logger.info('shutdown complete');
      process.exit(0);
    })();
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}
