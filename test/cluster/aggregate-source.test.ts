/**
 * ClusterAdminSource keeps what exited worker processes counted, so that a
 * restart does not make counters go backwards — for backends still
 * configured only: one a reload removed is forgotten, as a single process
 * forgets its Backend, so churn of backend addresses does not pile up.
 * Refused client connections belong to no backend: they are kept for good.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClusterAdminSource } from '../../src/cluster/aggregate-source.js';
import type { BackendCounters } from '../../src/cluster/messages.js';
import type { Switchyard } from '../../src/server/switchyard.js';
import type { WorkerSlot } from '../../src/cluster/worker-slot.js';
import { NO_CLIENT_CONNECTIONS, type ClientConnectionFigures } from '../../src/server/client-connection-counts.js';
import { BackendRegistry } from '../../src/pool/backend-registry.js';

const OPTIONS = { connectTimeout: 1000, maxConnections: 8 };
const URL_A = 'http://127.0.0.1:1';

/** A slot whose process last reported `clients` (and no backend counters). */
function slotWith(clients: ClientConnectionFigures): WorkerSlot {
  return { counters: [], clients, refreshCounters: () => Promise.resolve(true) } as unknown as WorkerSlot;
}

function counted(url: string, requests: number): BackendCounters {
  return { url, active: 0, requests, failures: 0, responses: [0, requests, 0, 0, 0], durationCounts: [requests], durationSumMs: requests };
}

test('counters of exited workers: kept for a configured backend, forgotten once a reload removes it, and not taken up for a removed one', async () => {
  const registry = new BackendRegistry();
  const source = new ClusterAdminSource({ registry } as unknown as Switchyard, () => []);
  try {
    const first = registry.acquire(URL_A, OPTIONS);
    source.retire([counted(URL_A, 7)], NO_CLIENT_CONNECTIONS);
    await source.refresh();
    assert.equal(first.requests, 7, 'a worker that exited still counts');

    registry.release(first);
    // A worker that was still draining the removed backend exits after the reload.
    source.retire([counted(URL_A, 3)], NO_CLIENT_CONNECTIONS);
    const again = registry.acquire(URL_A, OPTIONS);
    await source.refresh();
    assert.equal(again.requests, 0, 'listed again later, the backend starts from zero, as in a single process');
    assert.deepEqual(again.responses, [0, 0, 0, 0, 0]);
  } finally {
    await registry.closeAll();
  }
});

test('client connections: open ones summed over the running workers, refused ones over those and every worker process that exited', async () => {
  const registry = new BackendRegistry();
  const slots = [slotWith({ open: 2, refused: 1 }), slotWith({ open: 3, refused: 4 })];
  const source = new ClusterAdminSource({ registry } as unknown as Switchyard, () => slots);
  await source.refresh();
  assert.deepEqual(source.clientConnections, { open: 5, refused: 5 });

  // Worker 1 is killed and restarted: its slot reports a new process, which has refused nothing yet.
  source.retire([], slots[0]!.clients);
  slots[0] = slotWith(NO_CLIENT_CONNECTIONS);
  await source.refresh();
  assert.deepEqual(source.clientConnections, { open: 3, refused: 5 }, 'its refusals are kept, its open connections went with it');

  // Worker 2 is retired (fewer workers): its slot goes.
  source.retire([], slots[1]!.clients);
  slots.pop();
  await source.refresh();
  assert.deepEqual(source.clientConnections, { open: 0, refused: 5 });
});
