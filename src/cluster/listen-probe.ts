/**
 * Tries, in the cluster primary, an address a reload moves `server.listen`
 * to, before any worker is asked to bind it.
 *
 * Why the primary tries it first: with SCHED_NONE a worker's listen() goes
 * through node:cluster — the primary binds a handle and passes it to the
 * worker. On Linux a bind to a taken address only fails at listen() (libuv
 * defers EADDRINUSE), by then the handle has been passed, and Node (20 and
 * 22) then reports the error without closing it: the primary keeps its
 * handle for that worker, and the worker keeps its copy. Every refused save
 * of a busy `server.listen` left one socket open in the primary and one in
 * each worker, for good. An address this process could not listen on is
 * refused here, and the workers never try it. (One taken in the moment
 * between this try and the workers' binds still leaks: rare, and at most one
 * socket per process per such save.)
 */
import net from 'node:net';

/** Resolves once a listener of this process has bound `host:port` and let it go again; rejects with the listen error. */
export function probeListen(host: string, port: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    // exclusive: bind here, not through node:cluster (a primary binds itself anyway; this says so).
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', reject);
      server.close(() => resolve());
    });
  });
}
