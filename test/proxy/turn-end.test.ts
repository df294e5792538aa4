import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { setImmediate as nextCheckPhase } from 'node:timers/promises';
import { backendRequestEnded, backendRequestStarted, batchWithTurn, type TurnEndTask } from '../../src/proxy/turn-end.js';
import { within } from '../helpers/waiting.js';

class Recorder implements TurnEndTask {
  constructor(
    readonly name: string,
    readonly log: string[],
    readonly then?: () => void,
  ) {}
  atTurnEnd(): void {
    this.log.push(this.name);
    this.then?.();
  }
}

/** Runs `body` with one backend request counted as in flight, as a busy proxy has. */
async function withRequestInFlight(body: () => Promise<void>): Promise<void> {
  backendRequestStarted();
  try {
    await body();
  } finally {
    backendRequestEnded();
  }
}

describe('batchWithTurn (writes held to the end of the event loop turn)', () => {
  it('with backend requests in flight: runs the tasks of a turn together, in order, after the microtasks', () =>
    withRequestInFlight(async () => {
      const log: string[] = [];
      batchWithTurn(new Recorder('a', log));
      batchWithTurn(new Recorder('b', log));
      queueMicrotask(() => log.push('microtask'));
      process.nextTick(() => batchWithTurn(new Recorder('c', log)));
      assert.deepEqual(log, [], 'nothing runs on the spot');
      // Queued after the tasks' own check-phase callback, so it runs after it in the same phase.
      await nextCheckPhase();
      assert.deepEqual(log, ['microtask', 'a', 'b', 'c']);
    }));

  it('with nothing in flight and nothing held, a task runs at once; once one is held, the next waits with it', async () => {
    const log: string[] = [];
    batchWithTurn(new Recorder('alone', log));
    assert.deepEqual(log, ['alone'], 'a single client: nothing could share the turn');
    await withRequestInFlight(async () => batchWithTurn(new Recorder('held', log)));
    batchWithTurn(new Recorder('after', log));
    assert.deepEqual(log, ['alone'], 'held with the first held task of the turn');
    await nextCheckPhase();
    assert.deepEqual(log, ['alone', 'held', 'after']);
  });

  it('a task added while the tasks run waits for the next turn, and each task runs once', () =>
    withRequestInFlight(async () => {
      const log: string[] = [];
      batchWithTurn(new Recorder('first', log, () => batchWithTurn(new Recorder('added', log))));
      await nextCheckPhase();
      assert.deepEqual(log, ['first']);
      await nextCheckPhase();
      assert.deepEqual(log, ['first', 'added']);
      await nextCheckPhase();
      assert.deepEqual(log, ['first', 'added']);
    }));

  it('a task that throws does not keep the others of its turn from running; the error is then thrown', async () => {
    const script = `
      import { backendRequestStarted, batchWithTurn } from ${JSON.stringify(new URL('../../src/proxy/turn-end.js', import.meta.url).href)};
      backendRequestStarted();
      batchWithTurn({ atTurnEnd() { throw new Error('the first task broke'); } });
      batchWithTurn({ atTurnEnd() { console.log('the second task ran'); } });
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    try {
      const code = await within(new Promise<number | null>((resolve) => child.on('close', resolve)), 10_000, 'the child to exit');
      assert.equal(out.trim(), 'the second task ran');
      assert.match(err, /the first task broke/);
      assert.notEqual(code, 0);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
