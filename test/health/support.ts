/**
 * Shared pieces of the health and admin tests: backends with a switchable
 * /healthz that count their probes, polling with a deadline, and a way to
 * see who serves traffic.
 */
import type http from 'node:http';
import { startBackend, type TestBackend } from '../helpers/backends.js';

/** A backend whose /healthz answers `healthStatus` and which counts probes apart from traffic. */
export interface CheckedBackend extends TestBackend {
  /** Status /healthz answers; anything else answers the backend's name. */
  healthStatus: number;
  /** When true, /healthz never answers (a hung health endpoint). */
  healthHangs: boolean;
  /** /healthz requests received. */
  probes: number;
  /** Requests other than /healthz received. */
  traffic: number;
}

export async function startCheckedBackend(name: string, port = 0): Promise<CheckedBackend> {
  const backend = (await startBackend(name, undefined, port)) as CheckedBackend;
  backend.healthStatus = 200;
  backend.healthHangs = false;
  backend.probes = 0;
  backend.traffic = 0;
  backend.handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (req.url === '/healthz') {
      backend.probes++;
      if (backend.healthHangs) return;
      res.writeHead(backend.healthStatus, { 'content-type': 'text/plain' }).end(backend.healthStatus < 400 ? 'ok' : 'sick');
      return;
    }
    backend.traffic++;
    res.writeHead(200, { 'content-type': 'text/plain' }).end(name);
  };
  return backend;
}

export async function startCheckedBackends(count: number): Promise<CheckedBackend[]> {
  const out: CheckedBackend[] = [];
  for (let i = 0; i < count; i++) out.push(await startCheckedBackend(`b${i + 1}`));
  return out;
}

/**
 * Polls `probe` every `everyMs` until it returns something other than
 * undefined/false, and resolves to that; rejects naming `what` after `timeoutMs`.
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 5000,
  everyMs = 20,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** Sends `count` sequential GETs and counts the answers by body (`status NNN` for non-200s). */
export async function spread(url: string, count: number): Promise<Record<string, number>> {
  const tally: Record<string, number> = {};
  for (let i = 0; i < count; i++) {
    const res = await fetch(url);
    const body = await res.text();
    const key = res.status === 200 ? body : `status ${res.status}`;
    tally[key] = (tally[key] ?? 0) + 1;
  }
  return tally;
}

export async function getJson<T = any>(url: string): Promise<T> {
  const res = await fetch(url);
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as T;
}

export function closeAll(backends: readonly { close(): Promise<void> }[]): Promise<unknown> {
  return Promise.all(backends.map((b) => b.close()));
}

/** The admin base URL of a running Switchyard. */
export function adminUrl(lb: { adminAddress: { port: number } | undefined }): string {
  if (lb.adminAddress === undefined) throw new Error('the admin listener is not running');
  return `http://127.0.0.1:${lb.adminAddress.port}`;
}
