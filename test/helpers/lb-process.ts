/**
 * `lb run` as a child process, the way users run it: `node dist/src/cli.js
 * run -c FILE`, its JSON log lines parsed as they arrive so a test can wait
 * for one. `stop()` sends SIGTERM and, if it lingers, SIGKILL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { delimiter, dirname } from 'node:path';
import { createInterface } from 'node:readline';

export const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
/** The installed `lb` command (a sh script that execs node with its flags on CLI). */
export const BIN = fileURLToPath(new URL('../../../bin/lb', import.meta.url));

export interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly [field: string]: unknown;
}

export interface LbProcess {
  readonly child: ChildProcess;
  /** Every JSON log line so far, in order. */
  readonly logs: LogLine[];
  /** Lines on stdout/stderr that were not JSON. */
  readonly text: string[];
  /** `http://127.0.0.1:PORT` from the "listening" line. */
  readonly url: string;
  readonly port: number;
  /** Resolves with the first log line at index >= `from` that matches; rejects after `timeoutMs`. */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs?: number, from?: number): Promise<LogLine>;
  stop(): Promise<void>;
}

export interface StartLbOptions {
  /**
   * Run it in a process group of its own (with `workers` > 1: the primary and
   * its workers); `stop()` then sends its signals to the whole group, so no
   * worker outlives the test.
   */
  readonly processGroup?: boolean;
  /** Run it through bin/lb (the `lb` command npm installs) instead of `node dist/src/cli.js`. */
  readonly viaBin?: boolean;
  /** Extra environment variables. */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * Start it under this open-files limit: through `sh -c 'ulimit -n N && exec …'`,
   * as a shell or systemd's LimitNOFILE would (exec: the pid stays lb's, for signals).
   */
  readonly openFilesLimit?: number;
}

/** Starts `lb run` and waits until it listens (or fails with its output). */
export async function startLb(file: string, args: readonly string[] = [], options: StartLbOptions = {}): Promise<LbProcess> {
  const group = options.processGroup === true;
  // bin/lb runs the `node` on PATH: make it this one.
  const env = { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`, ...options.env };
  const [lb, lbArgs] = options.viaBin ? [BIN, ['run', '-c', file, ...args]] : [process.execPath, [CLI, 'run', '-c', file, ...args]];
  const [command, argv] =
    options.openFilesLimit === undefined ? [lb, lbArgs] : ['/bin/sh', ['-c', `ulimit -n ${options.openFilesLimit} && exec "$@"`, 'sh', lb, ...lbArgs]];
  const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'], detached: group, env });
  const signal = (name: NodeJS.Signals) => {
    try {
      if (group) process.kill(-child.pid!, name);
      else child.kill(name);
    } catch {
      // Already gone.
    }
  };
  const logs: LogLine[] = [];
  const text: string[] = [];
  const waiters = new Set<() => void>();
  const onLine = (line: string) => {
    if (line.startsWith('{')) {
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        text.push(line);
      }
    } else if (line !== '') text.push(line);
    for (const wake of waiters) wake();
  };
  createInterface({ input: child.stdout! }).on('line', onLine);
  createInterface({ input: child.stderr! }).on('line', onLine);
  let exited = false;
  child.once('exit', () => {
    exited = true;
    for (const wake of waiters) wake();
  });

  const waitForLog = (match: (line: LogLine) => boolean, timeoutMs = 5000, from = 0) =>
    new Promise<LogLine>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const check = () => {
        for (let i = from; i < logs.length; i++) {
          if (match(logs[i]!)) {
            done();
            resolve(logs[i]!);
            return;
          }
        }
        if (exited) {
          done();
          reject(new Error(`lb exited before the expected log line; output:\n${[...text, ...logs.map((l) => JSON.stringify(l))].join('\n')}`));
        }
      };
      const done = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      timer = setTimeout(() => {
        done();
        reject(new Error(`no matching log line within ${timeoutMs}ms; logs:\n${logs.map((l) => JSON.stringify(l)).join('\n')}\n${text.join('\n')}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });

  const stop = async () => {
    if (exited || child.exitCode !== null) {
      // Its workers, should any have outlived it.
      if (group) signal('SIGKILL');
      return;
    }
    const exit = once(child, 'exit');
    signal('SIGTERM');
    const timer = setTimeout(() => signal('SIGKILL'), 5000);
    await exit;
    clearTimeout(timer);
    if (group) signal('SIGKILL');
  };

  try {
    const listening = await waitForLog((l) => typeof l.listen === 'string' && l.msg.includes('listening'), 10_000);
    const port = Number(String(listening.listen).split(':').pop());
    return { child, logs, text, url: `http://127.0.0.1:${port}`, port, waitForLog, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Runs `lb ARGS…` to completion: exit code and output. */
export async function runLb(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c));
  child.stderr.on('data', (c: Buffer) => (stderr += c));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}
