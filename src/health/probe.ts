/**
 * One health probe: a checker plugin's `check()` bounded by a timeout, its
 * answer (boolean, { healthy, reason }, or a throw) turned into one outcome
 * with a reason fit for a log line and /status.
 *
 * A throw with a local resource error (EMFILE, ENOBUFS…: see
 * src/local-resource-error.ts) is classified here, not in each checker: the
 * built-in ones throw their socket errors, and a third-party checker may
 * throw one of its own. Such a probe is inconclusive — the check could not
 * run, which says nothing about the backend.
 */
import { localResourceCode, type LocalResourceCode } from '../local-resource-error.js';
import type { HealthInstance, HealthTarget } from '../plugin/types.js';

export interface ProbeOutcome {
  /** False for an inconclusive probe too: read `inconclusive` first. */
  readonly healthy: boolean;
  /** e.g. `status 503`, `ECONNREFUSED`, `timeout after 1s`; for an inconclusive probe, its code (`EMFILE`). */
  readonly reason: string;
  /** Time from the start of the probe to its outcome. */
  readonly ms: number;
  /**
   * Set when the check could not run because this process ran short of a
   * resource of its own (the checker threw this code): the probe is neither
   * a pass nor a failure of the backend, and must not be counted as one.
   */
  readonly inconclusive?: LocalResourceCode;
}

/** "1s", "1.5s", "250ms": how a timeout reads in a reason. */
export function formatDuration(ms: number): string {
  return ms >= 1000 && ms % 100 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

const ERRNO_CODE = /^E[A-Z0-9]+$/;

/**
 * The short reason for a failed check: a system error code (ECONNREFUSED,
 * ECONNRESET, EHOSTUNREACH) when there is one — also one level down, as
 * fetch() wraps them — else the error's message.
 */
export function reasonOf(err: unknown): string {
  if (err === null || typeof err !== 'object') return String(err);
  const e = err as { code?: unknown; message?: unknown; cause?: { code?: unknown } };
  if (typeof e.code === 'string' && ERRNO_CODE.test(e.code)) return e.code;
  if (typeof e.cause?.code === 'string' && ERRNO_CODE.test(e.cause.code)) return e.cause.code;
  if (typeof e.message === 'string' && e.message !== '') return e.message;
  return String(err);
}

/**
 * Runs `checker.check()` with `controller.signal`. Resolves to the outcome,
 * or to undefined when `controller` was aborted from outside before the
 * check answered (the probe was abandoned: reload, shutdown). At `timeoutMs`
 * the signal is aborted and the outcome is a failure, whether or not the
 * checker honours the signal, so a stuck checker cannot stall the scheduler.
 */
export function runProbe(
  checker: HealthInstance,
  target: HealthTarget,
  controller: AbortController,
  timeoutMs: number,
): Promise<ProbeOutcome | undefined> {
  const started = performance.now();
  return new Promise<ProbeOutcome | undefined>((resolve) => {
    let done = false;
    const finish = (healthy: boolean, reason: string, inconclusive?: LocalResourceCode): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      controller.signal.removeEventListener('abort', onAbandon);
      const ms = performance.now() - started;
      resolve(inconclusive === undefined ? { healthy, reason, ms } : { healthy, reason, ms, inconclusive });
    };
    const onAbandon = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(undefined);
    };
    const timer = setTimeout(() => {
      finish(false, `timeout after ${formatDuration(timeoutMs)}`);
      controller.abort(new DOMException(`health check timed out after ${formatDuration(timeoutMs)}`, 'TimeoutError'));
    }, timeoutMs);
    controller.signal.addEventListener('abort', onAbandon, { once: true });

    let answer: Promise<unknown>;
    try {
      answer = Promise.resolve(checker.check(target, controller.signal));
    } catch (err) {
      answer = Promise.reject(err);
    }
    answer.then(
      (result) => {
        if (typeof result === 'boolean') finish(result, result ? 'check passed' : 'check failed');
        else if (result !== null && typeof result === 'object' && typeof (result as { healthy?: unknown }).healthy === 'boolean') {
          const { healthy, reason } = result as { healthy: boolean; reason?: unknown };
          finish(healthy, typeof reason === 'string' && reason !== '' ? reason : healthy ? 'check passed' : 'check failed');
        } else {
          finish(false, 'the health checker returned neither true/false nor { healthy, reason }');
        }
      },
      (err: unknown) => {
        const shortage = localResourceCode(err);
        if (shortage === undefined) finish(false, reasonOf(err));
        else finish(false, shortage, shortage);
      },
    );
  });
}
