/**
 * `max_connections` per backend with a bounded wait queue (`max_queue`).
 * The backend client opens at most `connections` sockets and queues every
 * other request without bound; here a request that would wait behind `max_queue`
 * others is refused at once (503) instead, so a stalled backend costs
 * neither unbounded memory nor unbounded latency.
 *
 * `Backend.active` counts requests in flight (on a socket or in the
 * client's queue) plus open Upgrade tunnels. A tunnel has left the client — undici
 * hands its socket over — so tunnels (counted in open-tunnels.ts) are left
 * out of the admission check.
 */
import type { Backend } from './backend.js';
import { tunnelCount } from './open-tunnels.js';

/** True when one more request to `backend` fits in its connections plus its wait queue. */
export function hasQueueRoom(backend: Backend, maxConnections: number, maxQueue: number): boolean {
  return backend.active - tunnelCount(backend) < maxConnections + maxQueue;
}
