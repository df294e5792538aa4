/**
 * A listener that `lb run` could not bind at start, named by its key in
 * lb.toml and with what to do about it. Both listeners fail with the same
 * system error (`listen EADDRINUSE …`), so without the key a user cannot
 * tell whether `server.listen` or `admin.listen` is the one to change.
 */
export class ListenError extends Error {
  constructor(
    /** `server.listen` or `admin.listen`. */
    readonly keyPath: string,
    host: string,
    port: number,
    cause: unknown,
  ) {
    super(`${keyPath}: cannot listen on ${host}:${port}: ${whyNot(cause, keyPath)}`, { cause });
    this.name = 'ListenError';
  }
}

function whyNot(err: unknown, keyPath: string): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'EADDRINUSE':
      return `another process is already listening there (EADDRINUSE); stop it, or choose another port in ${keyPath}`;
    case 'EACCES':
      return `permission denied (EACCES); ports below 1024 need privileges: choose a port from 1024 up in ${keyPath}, or grant node CAP_NET_BIND_SERVICE`;
    case 'EADDRNOTAVAIL':
      return `this machine has no such address (EADDRNOTAVAIL); use one of its own addresses in ${keyPath}, e.g. 127.0.0.1 or 0.0.0.0`;
    default:
      return `${(err as Error)?.message ?? String(err)}; check ${keyPath}`;
  }
}
