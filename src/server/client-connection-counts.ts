/**
 * The client connections of one process's traffic listener, for /status and
 * /metrics: how many are open now, and how many were refused since start
 * for being past the limit (client-connection-limit.ts). A refusal is
 * otherwise only a warning line whose repeats are counted per window; this
 * count is what an alert can follow.
 *
 * One per process, shared by every traffic listener it has had: a reload
 * that moves `server.listen` replaces the listener while the old one's
 * connections finish, and neither figure may start again from zero then.
 */

/** The figures as read (a cluster primary sums its workers' into one of these). */
export interface ClientConnectionFigures {
  /** Accepted and not closed yet, on the serving listener and on replaced ones still draining. */
  readonly open: number;
  /** Closed unanswered since start because the limit was reached (server.max_connections). */
  readonly refused: number;
}

/** Of a process that has not served yet (a cluster worker still starting, or one that exited). */
export const NO_CLIENT_CONNECTIONS: ClientConnectionFigures = Object.freeze({ open: 0, refused: 0 });

export class ClientConnectionCounts implements ClientConnectionFigures {
  open = 0;
  refused = 0;
}
