/**
 * ClusterAdminSource keeps what exited worker processes counted, so that a
 * restart does not make counters go backwards — for backends still
 * configured only: one a reload removed is forgotten, as a single process
 * forgets its Backend, so churn of backend addresses does not pile up.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClusterAdminSource } from '../../src/cluster/aggregate-source.js';
import type { BackendCounters } from '../../src/cluster/messages.js';
import type { Switchyard } from '../../src/server/switchyard.js';
import { BackendRegistry } from '../../src/pool/backend-registry.js';

const OPTIONS = { connectTimeout: 1000, maxConnections: 8 };
const URL_A = 'http://127.0.0.1:1';

function counted(url: string, requests: number): BackendCounters {
  return { url, active: 0, requests, failures: 0, responses: [0, requests, 0, 0, 0], durationCounts: [requests], durationSumMs: requests };
}

test('counters of exited workers: kept for a configured backend, forgotten once a reload removes it, and not taken up for a removed one', async () => {
  const registry = new BackendRegistry();
  const source = new ClusterAdminSource({ registry } as unknown as Switchyard, () => []);
  try {
    const first = registry.acquire(URL_A, OPTIONS);
    source.retire([counted(URL_A, 7)]);
    await source.refresh();
    assert.equal(first.requests, 7, 'a worker that exited still counts');

    registry.release(first);
    // A worker that was still draining the removed backend exits after the reload.
    source.retire([counted(URL_A, 3)]);
    const again = registry.acquire(URL_A, OPTIONS);
    await source.refresh();
    assert.equal(again.requests, 0, 'listed again later, the backend starts from zero, as in a single process');
    assert.deepEqual(again.responses, [0, 0, 0, 0, 0]);
  } finally {
    await registry.closeAll();
  }
});
