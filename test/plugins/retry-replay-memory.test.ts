/**
 * plugins/retry/replay-memory.ts on its own: reservations against a
 * process-wide cap on the request-body bytes held for replay.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReplayMemory } from '../../plugins/retry/replay-memory.js';

test('reserve: exactly the bytes asked for, while they fit; refused, and nothing taken, when they do not', () => {
  const memory = new ReplayMemory(1000);
  const a = memory.reserve(600);
  assert.equal(a?.bytes, 600);
  assert.deepEqual({ held: memory.held, available: memory.available }, { held: 600, available: 400 });
  assert.equal(memory.reserve(401), undefined, 'one byte too many');
  assert.equal(memory.held, 600, 'a refusal takes nothing');
  const b = memory.reserve(400);
  assert.equal(b?.bytes, 400, 'exactly what is left fits');
  assert.equal(memory.available, 0);
  assert.equal(memory.reserve(1), undefined, 'full');
});

test('reserveUpTo: what is asked for, or what is left when less; refused only when nothing is left', () => {
  const memory = new ReplayMemory(1000);
  assert.equal(memory.reserveUpTo(300)?.bytes, 300);
  assert.equal(memory.reserveUpTo(5000)?.bytes, 700, 'cut to what is left');
  assert.equal(memory.reserveUpTo(5000), undefined, 'nothing left');
  assert.equal(memory.held, 1000);
});

test('shrink: lowers a reservation to what its request holds, never raises it, never below 0', () => {
  const memory = new ReplayMemory(1000);
  const r = memory.reserve(800)!;
  memory.shrink(r, 300);
  assert.deepEqual({ bytes: r.bytes, held: memory.held }, { bytes: 300, held: 300 });
  memory.shrink(r, 900);
  assert.deepEqual({ bytes: r.bytes, held: memory.held }, { bytes: 300, held: 300 }, 'shrinking to more is no growth');
  memory.shrink(r, -5);
  assert.deepEqual({ bytes: r.bytes, held: memory.held }, { bytes: 0, held: 0 }, 'clamped at 0');
  assert.equal(memory.reserve(1000)?.bytes, 1000, 'what was shrunk away can be reserved again');
});

test('release: gives the bytes back once; releasing again, or after a shrink, never makes held negative', () => {
  const memory = new ReplayMemory(1000);
  const a = memory.reserve(600)!;
  const b = memory.reserve(400)!;
  memory.shrink(a, 100);
  memory.release(a);
  memory.release(a);
  assert.deepEqual({ held: memory.held, a: a.bytes }, { held: 400, a: 0 }, 'a second release takes nothing from b');
  memory.release(b);
  memory.release(b);
  assert.equal(memory.held, 0);
  assert.equal(memory.available, 1000);
});

test('a zero-byte limit refuses every body with bytes, and a zero-byte reservation costs nothing', () => {
  const memory = new ReplayMemory(0);
  assert.equal(memory.reserve(1), undefined);
  assert.equal(memory.reserveUpTo(1), undefined);
  assert.equal(memory.reserve(0)?.bytes, 0);
  assert.equal(memory.held, 0);
});

test('a size that is not a number of bytes is refused', () => {
  const memory = new ReplayMemory(1000);
  assert.equal(memory.reserve(Number.NaN), undefined);
  assert.equal(memory.reserve(-1), undefined);
  assert.equal(memory.held, 0);
});
