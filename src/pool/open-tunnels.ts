/**
 * The Upgrade (WebSocket) tunnels open to each backend. A tunnel has left
 * the undici Pool that carried its handshake — undici hands its socket
 * over — so neither the backend's client nor a generation knows of it: it is counted here, as an active
 * connection of its backend (`Backend.active`), and closed here when a
 * reload removes its backend (see closeTunnelsAfter).
 */
import type { Backend } from './backend.js';

/** What a tunnel exposes to its backend's bookkeeping: closing it closes both sides. */
export interface OpenTunnel {
  close(): void;
}

const tunnels = new WeakMap<Backend, Set<OpenTunnel>>();

/** How a released backend's tunnels are closed (see closeTunnelsAfter). */
interface Release {
  readonly graceMs: number;
  readonly onClosed: (count: number) => void;
}

/**
 * Backends the registry let go of. An Upgrade whose handshake outlasted
 * the grace of the generation it started on opens its tunnel after that:
 * it gets the same grace from then on, instead of staying open for good.
 */
const released = new WeakMap<Backend, Release>();

/** Open Upgrade tunnels to `backend`. */
export function tunnelCount(backend: Backend): number {
  return tunnels.get(backend)?.size ?? 0;
}

/** A tunnel to `backend` opened: it counts as an active connection until tunnelClosed(). */
export function tunnelOpened(backend: Backend, tunnel: OpenTunnel): void {
  let open = tunnels.get(backend);
  if (open === undefined) tunnels.set(backend, (open = new Set()));
  open.add(tunnel);
  backend.active++;
  const release = released.get(backend);
  if (release !== undefined) setTimeout(closeTunnels, release.graceMs, backend, release.onClosed).unref();
}

export function tunnelClosed(backend: Backend, tunnel: OpenTunnel): void {
  if (tunnels.get(backend)?.delete(tunnel) === true) backend.active--;
}

/**
 * `backend` left the configuration (the registry let it go): its tunnels
 * may finish within `graceMs`, as requests in flight may when a generation
 * is replaced; then the ones still open are closed, and `onClosed` is told
 * how many. Without this a WebSocket would stay on a removed backend for as
 * long as it is used, out of sight of /status.
 */
export function closeTunnelsAfter(backend: Backend, graceMs: number, onClosed: (count: number) => void): void {
  released.set(backend, { graceMs, onClosed });
  if (tunnelCount(backend) === 0) return;
  setTimeout(closeTunnels, graceMs, backend, onClosed).unref();
}

function closeTunnels(backend: Backend, onClosed: (count: number) => void): void {
  const open = tunnels.get(backend);
  if (open === undefined || open.size === 0) return;
  const count = open.size;
  // close() removes each from the set (tunnelClosed): iterate a copy.
  for (const tunnel of [...open]) tunnel.close();
  onClosed(count);
}
