/**
 * How many client connections one process's traffic listener holds open at
 * once (`server.max_connections`, enforced as Node's `server.maxConnections`).
 *
 * Why there is always a limit when one can be known: every descriptor comes
 * from one open-files limit (ulimit -n). Without a limit, idle clients can
 * take all of them, and then the health checks fail with EMFILE and take
 * healthy backends out — an overload becomes an outage. So, as HAProxy's
 * default `maxconn`, the limit is derived from the open-files limit: a
 * proxied connection needs two descriptors (client and backend), and a few
 * dozen are kept for health checks, config reads, logs and Node itself.
 *
 * Pure: the text of /proc/self/limits and the configuration in, numbers and
 * words out (open-files-limit.ts reads the file).
 */

/** Descriptors kept out of the derivation: Node's own (~20), health probes, config reads, logs, the admin listener. */
export const RESERVED_DESCRIPTORS = 64;

/**
 * The soft `Max open files` limit in the text of /proc/self/limits;
 * undefined when it is "unlimited" or the text does not say.
 */
export function parseOpenFilesLimit(procLimits: string): number | undefined {
  const match = /^Max open files\s+(\S+)\s+\S+/m.exec(procLimits);
  if (match === null || !/^\d+$/.test(match[1]!)) return undefined;
  return Number(match[1]);
}

/** Client connections that fit in `openFiles` descriptors: half of what the reserve leaves, at least 1. */
export function connectionsForOpenFiles(openFiles: number): number {
  return Math.max(1, Math.floor((openFiles - RESERVED_DESCRIPTORS) / 2));
}

export interface ClientConnectionLimit {
  /** Connections this process accepts at once; undefined: no limit. */
  readonly max: number | undefined;
  /** Where it comes from, for logs: "server.max_connections", "half of the open-files limit 1024", … */
  readonly source: string;
  /** True when it was derived (or is absent) because server.max_connections is not set. */
  readonly derived: boolean;
}

/**
 * The limit of one process's listener. `configured` is server.max_connections
 * as written, shared by the `processes` that serve (the workers of a
 * cluster, or 1): each takes ceil(configured / processes). Unset, it is
 * derived from `openFiles`, this process's soft open-files limit (each
 * process has descriptors of its own, so it is not split).
 */
export function clientConnectionLimit(configured: number | undefined, processes: number, openFiles: number | undefined): ClientConnectionLimit {
  if (configured !== undefined) {
    if (processes <= 1) return { max: configured, source: 'server.max_connections', derived: false };
    return { max: Math.ceil(configured / processes), source: `server.max_connections = ${configured} over ${processes} workers`, derived: false };
  }
  if (openFiles === undefined) return { max: undefined, source: 'the open-files limit is unlimited or unknown', derived: true };
  return { max: connectionsForOpenFiles(openFiles), source: `half of the open-files limit ${openFiles}`, derived: true };
}

/**
 * The line logged at start: e.g. "accepting at most 480 client connections
 * (half of the open-files limit 1024; set server.max_connections to choose)".
 * `perWorker`: said by a cluster primary for its workers.
 */
export function describeClientConnectionLimit(limit: ClientConnectionLimit, perWorker: boolean): string {
  const each = perWorker ? ' in each worker' : '';
  const choose = limit.derived ? '; set server.max_connections to choose' : '';
  if (limit.max === undefined) return `accepting client connections without a limit${each} (${limit.source}${choose})`;
  return `accepting at most ${limit.max} client connections${each} (${limit.source}${choose})`;
}
