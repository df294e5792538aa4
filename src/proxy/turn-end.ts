/**
 * Writes held to the end of the event loop's turn, so that the writes made
 * in one turn leave together.
 *
 * Under load one turn serves many sockets: a single poll hands over several
 * client requests and backend responses. Written as each is ready, every
 * write wakes its reader (a backend, a client) anew when that reader had
 * gone back to sleep between two of them, and waking a process on another
 * core is the costliest part of a small write: an inter-processor
 * interrupt, on a VM a trip through the hypervisor. Held to the turn's
 * check phase, the writes of a turn go out back to back, and a sleeping
 * reader wakes once for all of them. Netty's FlushConsolidationHandler
 * gathers flushes for the same reason.
 *
 * Measured on the 2-core bench VM (bench/RESULTS.md, "Writes held to the
 * end of the event loop's turn"): at 64 connections, kernel time per
 * proxied request fell from 30–37 µs to 19–20, and req/s went from
 * 1.02–1.04× the minimal undici proxy to 1.30–1.33× in paired rounds. A
 * write waits at most for the rest of its turn's callbacks.
 *
 * Holding costs a check-phase callback, and only pays when another write
 * can land in the same turn: with no backend request in flight but the
 * writer's own and nothing held yet, there is none (a single client), and
 * the write goes out at once. Held always, one connection lost 5% req/s.
 */

/** Something with writes to release once the current turn's callbacks have run. */
export interface TurnEndTask {
  /** Must not throw: a throw is reported only after every other task of the turn has run. */
  atTurnEnd(): void;
}

let due: TurnEndTask[] = [];
/** The list being run, kept to be reused: tasks added while it runs go to `due`, for the next turn. */
let running: TurnEndTask[] = [];
let scheduled = false;

/** Backend requests written and not answered yet, over every backend: their answers arrive in the turns to come. */
let backendRequestsInFlight = 0;

/** A request went to a backend (after its own write was batched). */
export function backendRequestStarted(): void {
  backendRequestsInFlight++;
}

/** A backend request was answered, failed or abandoned. */
export function backendRequestEnded(): void {
  backendRequestsInFlight--;
}

/**
 * Runs `task.atTurnEnd()` in this turn's check phase (setImmediate), after
 * the callbacks of its poll, with the other tasks of the turn; or at once
 * when nothing else could share the turn (see above).
 */
export function batchWithTurn(task: TurnEndTask): void {
  if (backendRequestsInFlight <= 0 && due.length === 0) {
    task.atTurnEnd();
    return;
  }
  due.push(task);
  if (scheduled) return;
  scheduled = true;
  setImmediate(runDue);
}

function runDue(): void {
  scheduled = false;
  const tasks = due;
  due = running;
  running = tasks;
  let failure: unknown;
  let failed = false;
  for (let i = 0; i < tasks.length; i++) {
    try {
      tasks[i]!.atTurnEnd();
    } catch (err) {
      // The others still run: a task left undone can be a socket left corked for good.
      if (!failed) failure = err;
      failed = true;
    }
  }
  tasks.length = 0;
  if (failed) throw failure;
}
