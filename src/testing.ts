/**
 * Test helper for plugin authors and for Switchyard's own tests: start a real
 * Switchyard from TOML text in a few lines. The TOML is written to a fresh
 * temporary folder (so relative plugin paths resolve against `dir` if given),
 * the proxy runs in this process, and `close()` removes everything.
 *
 * @example
 * ```ts
 * const lb = await startSwitchyard({ toml: `
 *   [server]
 *   listen = "127.0.0.1:0"
 *   [pools.web]
 *   backends = [{ url = "${backend.url}" }]
 * ` });
 * const res = await fetch(lb.url);
 * await lb.close();
 * ```
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfigFile } from './config/load.js';
import { Switchyard, type RootLogger } from './server/switchyard.js';

export interface StartSwitchyardOptions {
  /** lb.toml content; use `listen = "127.0.0.1:0"` for a free port. */
  readonly toml: string;
  /** Folder to write lb.toml into (for relative plugin paths); default: a new temp folder. */
  readonly dir?: string;
  /** Log level; default "silent" (set LB_TEST_LOG=debug to see logs). */
  readonly logLevel?: string;
}

export interface RunningSwitchyard {
  /** `http://127.0.0.1:PORT` of the traffic listener. */
  readonly url: string;
  readonly port: number;
  readonly file: string;
  readonly lb: Switchyard;
  /** Rewrites lb.toml and applies it (throws ConfigError when it is invalid). */
  reload(toml: string): Promise<void>;
  close(): Promise<void>;
}

export async function startSwitchyard(options: StartSwitchyardOptions): Promise<RunningSwitchyard> {
  const tempDir = options.dir === undefined ? await mkdtemp(join(tmpdir(), 'switchyard-')) : undefined;
  const dir = options.dir ?? tempDir!;
  const file = join(dir, tempDir ? 'lb.toml' : `lb-${process.pid}-${Date.now()}.toml`);
  await writeFile(file, options.toml);
  const logger = pino({ level: options.logLevel ?? process.env.LB_TEST_LOG ?? 'silent' }) as unknown as RootLogger;
  let lb: Switchyard;
  try {
    lb = await Switchyard.start(await loadConfigFile(file), { logger });
  } catch (err) {
    if (tempDir) await rm(tempDir, { recursive: true, force: true });
    else await rm(file, { force: true });
    throw err;
  }
  const { port } = lb.address;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    file,
    lb,
    async reload(toml: string) {
      await writeFile(file, toml);
      await lb.reloadFile(file);
    },
    async close() {
      await lb.close(1000);
      if (tempDir) await rm(tempDir, { recursive: true, force: true });
      else await rm(file, { force: true });
    },
  };
}
