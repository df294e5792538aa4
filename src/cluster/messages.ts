/**
 * What a cluster primary and its workers say to each other over the IPC
 * channel node:cluster gives them. Plain JSON-able objects; every message has
 * a `type`, and each direction is one union so a `switch` on it is checked
 * for exhaustiveness by the compiler.
 */
import type { ConfigIssue } from '../config/issues.js';
import type { BackendState } from '../pool/backend.js';
import type { ClientConnectionFigures } from '../server/client-connection-counts.js';

/** One backend's health as the primary's registry holds it. */
export interface BackendStateUpdate {
  readonly url: string;
  readonly state: BackendState;
  readonly reason: string;
  /** Date.now() of the primary's last change. */
  readonly changedAt: number;
}

/** One backend's traffic counters in one worker (the fields of Backend the admin API sums). */
export interface BackendCounters {
  readonly url: string;
  readonly active: number;
  readonly requests: number;
  readonly failures: number;
  /** By status class: [1xx, 2xx, 3xx, 4xx, 5xx]. */
  readonly responses: readonly number[];
  /** Per DURATION_BUCKETS_MS bucket, then one for longer; not cumulative. */
  readonly durationCounts: readonly number[];
  readonly durationSumMs: number;
}

// ---- primary → worker ----

/**
 * The configuration to start with: the text the primary validated and built
 * (a worker never reads lb.toml itself, so it never sees a half-written
 * file), the generation number to give it, and every backend's health now.
 */
export interface ConfigMessage {
  readonly type: 'config';
  /** Absolute path of lb.toml: relative plugin paths and TLS files resolve against its folder. */
  readonly file: string;
  readonly source: string;
  readonly generation: number;
  readonly states: readonly BackendStateUpdate[];
}

/**
 * The first half of a reload: a configuration the primary has validated.
 * Build it as generation `generation` (and bind its listener, when
 * `server.listen` changed) without serving it, answer with a
 * PreparedMessage, then wait for the primary's CommitMessage or
 * AbortMessage: the primary commits only when every worker has prepared it,
 * so a configuration is applied on all of them or on none.
 */
export interface PrepareMessage {
  readonly type: 'prepare';
  /** Names this reload in the answer and the decision (a generation number is used again after an abort). */
  readonly reload: number;
  readonly file: string;
  readonly source: string;
  readonly generation: number;
  readonly trigger: string;
  /** The primary's backend states, the configuration's new backends included: replace what the worker was told before. */
  readonly states: readonly BackendStateUpdate[];
}

/** Every worker prepared `generation`: serve it, then answer with a CommittedMessage. */
export interface CommitMessage {
  readonly type: 'commit';
  readonly reload: number;
  readonly generation: number;
}

/** Some process could not prepare `generation` (or did not answer): undo what was prepared and keep serving. */
export interface AbortMessage {
  readonly type: 'abort';
  readonly reload: number;
  readonly generation: number;
}

/** One backend's health changed in the primary (an active check, a passive report, a cooldown). */
export interface BackendStateMessage extends BackendStateUpdate {
  readonly type: 'backend-state';
}

/** Asks for a StatsMessage answering `id`. */
export interface StatsRequestMessage {
  readonly type: 'stats-request';
  readonly id: number;
}

/** Stop accepting, finish in-flight requests within `graceMs`, exit 0. */
export interface ShutdownMessage {
  readonly type: 'shutdown';
  readonly graceMs: number;
}

export type PrimaryMessage =
  | ConfigMessage
  | PrepareMessage
  | CommitMessage
  | AbortMessage
  | BackendStateMessage
  | StatsRequestMessage
  | ShutdownMessage;

// ---- worker → primary ----

/** The worker listens for messages now (anything sent before could be lost): send it its configuration. */
export interface HelloMessage {
  readonly type: 'hello';
}

/** The worker's listener accepts connections, serving `generation`. */
export interface ReadyMessage {
  readonly type: 'ready';
  readonly generation: number;
  /** Where the listener is bound, e.g. `127.0.0.1:8080`. */
  readonly listen: string;
  readonly protocol: 'http' | 'https';
}

/** The worker could not start from the ConfigMessage; it exits next. */
export interface StartFailedMessage {
  readonly type: 'start-failed';
  readonly problems: readonly string[];
  /** When they are configuration problems (a plugin's create() threw): each at its file:line:col, for `lb run` to report as such. */
  readonly issues?: readonly ConfigIssue[];
}

/** The outcome of a PrepareMessage. */
export interface PreparedMessage {
  readonly type: 'prepared';
  readonly reload: number;
  readonly generation: number;
  readonly ok: boolean;
  /** When not ok: every problem, one per line (the worker serves on as before). */
  readonly problems: readonly string[];
}

/** The worker serves `generation` now (it committed it). */
export interface CommittedMessage {
  readonly type: 'committed';
  readonly reload: number;
  readonly generation: number;
}

/** Passive detection in the worker took a backend out (locally, already); the primary makes it cluster-wide and brings it back. */
export interface PassiveDownMessage {
  readonly type: 'passive-down';
  readonly url: string;
  /** The pool the failing request was for: its passive_cooldown applies. */
  readonly pool: string;
  readonly reason: string;
}

/**
 * The worker's traffic counters: the answer to a StatsRequestMessage, or
 * (`id` 0) pushed every COUNTERS_PUSH_MS while they change, so that a worker
 * that dies takes at most that much of its counting with it.
 */
export interface StatsMessage {
  readonly type: 'stats';
  /** The StatsRequestMessage answered; 0 when pushed. */
  readonly id: number;
  readonly generation: number;
  readonly backends: readonly BackendCounters[];
  /** Its client connections: open now, refused past its share of server.max_connections since it started. */
  readonly clients: ClientConnectionFigures;
}

export type WorkerMessage =
  | HelloMessage
  | ReadyMessage
  | StartFailedMessage
  | PreparedMessage
  | CommittedMessage
  | PassiveDownMessage
  | StatsMessage;

/** How often a worker pushes its counters while they change: the most of its counting a worker killed outright can lose. */
export const COUNTERS_PUSH_MS = 1_000;

/** Environment variables a worker is forked with. */
export const WORKER_ENV = {
  /** The worker's slot, 1…N: stable across restarts, unlike cluster's own ids. */
  id: 'LB_WORKER_ID',
  logLevel: 'LB_WORKER_LOG_LEVEL',
  /** "1" when the primary accepts every connection and hands it to a worker (SCHED_RR): see StartOptions.connectionsHandedOver. */
  connectionsHandedOver: 'LB_WORKER_CONNECTIONS_HANDED_OVER',
} as const;

/** Anything on the IPC channel that is not one of ours is ignored (cluster's own messages never reach 'message' listeners). */
export function isMessage<T extends { type: string }>(value: unknown): value is T {
  return value !== null && typeof value === 'object' && typeof (value as { type?: unknown }).type === 'string';
}
