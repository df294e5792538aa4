/**
 * Errors that say this process ran short of something of its own — file
 * descriptors, socket memory, local ports — rather than that a backend
 * failed. Under local overload (more client connections than `ulimit -n`
 * allows, say) every connection to every backend fails this way at once: a
 * health check or passive detection that took it as the backend's failure
 * would take every backend out, and turn the overload into a pool-wide
 * outage that lasts until the checks pass again. So the health checker
 * treats such a probe as inconclusive, and a request gets
 * LB_ERR_LOCAL_RESOURCES without blaming its backend.
 *
 * The code is read from the error itself or its `cause` chain: fetch()
 * wraps socket errors (`TypeError: fetch failed`, the errno error as its
 * cause), and third-party health checkers may wrap them again.
 */

/** The errno codes of a local resource error. */
export type LocalResourceCode = 'EMFILE' | 'ENFILE' | 'ENOBUFS' | 'ENOMEM' | 'EADDRNOTAVAIL';

/** What ran short, and what an operator can do about it, by code: the end of every log line about one. */
const SHORTAGES: Readonly<Record<LocalResourceCode, string>> = {
  EMFILE:
    'this process is out of file descriptors (EMFILE); raise its open-files limit (ulimit -n, or LimitNOFILE= in its systemd unit) or lower the number of client connections',
  ENFILE:
    'the system is out of file descriptors (ENFILE); raise its limit (sysctl fs.file-max) or lower the number of client connections',
  ENOBUFS: 'the kernel is out of socket buffer memory (ENOBUFS); lower the number of client connections or give the host more memory',
  ENOMEM: 'the system is out of memory (ENOMEM); lower the number of client connections or give the host more memory',
  EADDRNOTAVAIL:
    'no local address or port is free to connect from (EADDRNOTAVAIL); lower the number of connections to backends (pools.NAME.max_connections), widen net.ipv4.ip_local_port_range, or check that the backend address is reachable from this host',
};

/** How many `cause` links are followed: enough for fetch's wrapping and a checker's own, and no loop can hold it up. */
const MAX_CAUSE_DEPTH = 4;

function isLocalResourceCode(code: unknown): code is LocalResourceCode {
  return typeof code === 'string' && Object.hasOwn(SHORTAGES, code);
}

/** The local resource error code of `err` or of an error in its `cause` chain; undefined for any other error. */
export function localResourceCode(err: unknown): LocalResourceCode | undefined {
  let current = err;
  for (let depth = 0; depth <= MAX_CAUSE_DEPTH; depth++) {
    if (current === null || typeof current !== 'object') return undefined;
    const { code, cause } = current as { code?: unknown; cause?: unknown };
    if (isLocalResourceCode(code)) return code;
    current = cause;
  }
  return undefined;
}

/** What ran short and what to do about it, for a log line: `this process is out of file descriptors (EMFILE); raise …`. */
export function describeShortage(code: LocalResourceCode): string {
  return SHORTAGES[code];
}
