/**
 * The JSON log of an `lb run` process (the single process, a cluster's
 * primary, each worker) on stdout, and the way such a process exits.
 *
 * pino writes stdout asynchronously, so a slow or stalled log reader never
 * blocks the traffic. But on `process.exit()` pino flushes what is left
 * synchronously, and sonic-boom's flushSync retries for as long as the write
 * fails: every 100 ms while the reader is stalled (EAGAIN), and forever once
 * it is gone (EPIPE is retried too). A balancer whose log shipper hung or
 * died could then not be stopped by SIGTERM, nor by a second one. So every
 * exit goes through exitProcess(): the log gets a bounded time to drain,
 * and what a reader did not take by then is dropped.
 *
 * While the reader is stalled, what is logged waits in memory, up to
 * LOG_BACKLOG_MAX; lines past that are dropped and counted (sonic-boom's
 * maxLength), and once the reader has caught up one warning says how
 * many were lost. HAProxy drops log lines the same way rather than wait
 * for a log server.
 *
 * A cluster's workers log to pipes of their own, which the primary copies
 * into its log (cluster/worker-output.ts): only the primary writes stdout,
 * so only its writes meet the reader, and its exit covers theirs.
 */
import { pino } from 'pino';
import type { RootLogger } from './switchyard.js';

/** How long an exit waits for the log to drain; a reader that takes longer is stalled. */
const EXIT_LOG_GRACE_MS = 1000;

/** Log bytes held for a reader that does not keep up; lines past this are dropped and counted. */
export const LOG_BACKLOG_MAX = 4 * 1024 * 1024;

/** The part of pino's stdout stream (sonic-boom) an exit and a relay need. */
interface LogStream {
  write(text: string): boolean;
  end(): void;
  destroy(): void;
  once(event: 'close', listener: () => void): unknown;
  on(event: 'drop', listener: (data: string | Buffer) => void): unknown;
  on(event: 'drain', listener: () => void): unknown;
}

let destination: LogStream | undefined;
let exiting = false;
/** Output still being copied into the log (a worker's pipe, until it ends): an exit waits for it within its grace. */
const copying = new Set<Promise<void>>();

/** Lines in what was dropped: one of pino's, or several copied from a worker. */
function countLines(data: string | Buffer): number {
  let lines = 0;
  for (let at = data.indexOf('\n'); at !== -1; at = data.indexOf('\n', at + 1)) lines++;
  return Math.max(lines, 1);
}

/** Counts the lines `stream` drops, and logs the count once its reader has caught up. */
function reportDrops(stream: LogStream, logger: RootLogger, backlogMax: number): void {
  let dropped = 0;
  stream.on('drop', (data) => (dropped += countLines(data)));
  // 'drain': everything held was written, so the reader reads again and the warning has room.
  stream.on('drain', () => {
    if (dropped === 0) return;
    const lines = dropped;
    dropped = 0;
    logger.warn({ dropped: lines }, `${lines} log lines were dropped: the log reader fell ${backlogMax / 1024 / 1024} MB behind. Check what reads this process's stdout`);
  });
}

/**
 * The process's logger on stdout; call once per process. `backlogMax` 0:
 * no bound, for a cluster worker, whose reader is its primary: the primary
 * reads at once and bounds what it copies on, so a line is dropped in one
 * place and counted there (a worker's own count of dropped lines would be
 * one more line the primary could drop).
 */
export function createProcessLogger(level: string, backlogMax = LOG_BACKLOG_MAX): RootLogger {
  // pino's default stream (for a pipe, fd 1 non-blocking: a stalled reader
  // makes writes wait on a timer, not hold a libuv thread that exit would
  // wait for), with a bound on what waits for the reader.
  const stream = pino.destination({ dest: process.stdout.fd ?? 1, maxLength: backlogMax }) as unknown as LogStream;
  const logger = pino({ name: 'switchyard', level }, stream as unknown as pino.DestinationStream);
  destination = stream;
  if (backlogMax > 0) reportDrops(stream, logger as unknown as RootLogger, backlogMax);
  return logger as unknown as RootLogger;
}

/**
 * Appends `text` (whole lines, as written by another process) to this
 * process's log, after what it logged so far and through the same
 * asynchronous stream, so the exit's drain-then-drop covers it too.
 */
export function writeLog(text: string): void {
  if (destination === undefined) process.stdout.write(text);
  else destination.write(text);
}

/** Makes an exit wait, within its grace, until `done` settles: output still being copied into the log. */
export function holdExitFor(done: Promise<void>): void {
  copying.add(done);
  void done.finally(() => copying.delete(done));
}

/**
 * Exits with `code` once the log is written out, or after `graceMs` with
 * whatever a stalled or vanished reader left unwritten dropped.
 */
export function exitProcess(code: number, graceMs = EXIT_LOG_GRACE_MS): void {
  const log = destination;
  if (log === undefined) process.exit(code);
  const exit = (): void => {
    clearTimeout(timer);
    // Destroyed, it is skipped by pino's exit-time flushSync, the loop that never
    // ends on a broken pipe (destroy() does nothing to a stream already closed).
    log.destroy();
    process.exit(code);
  };
  if (exiting) {
    // Called again while the log drains (a second signal): no more waiting.
    log.destroy();
    process.exit(code);
  }
  exiting = true;
  const timer = setTimeout(exit, graceMs);
  // What is still being copied in (a worker's last lines) first; then 'close'
  // comes once everything written so far is out.
  void Promise.allSettled(copying).then(() => {
    log.once('close', exit);
    log.end();
  });
}
